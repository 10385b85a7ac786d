"""Every model file keras-alexnet writes, read back as one classifier: check what you ship.

``load_classifier(path)`` takes ``model.keras``, a SavedModel folder, a ``.tflite`` file or an
``.onnx`` file and returns a ``Classifier``: the class names (from each format's own
metadata) and ``probabilities(images)`` for images as that format takes them. ``predict`` and
``evaluate`` run any of them the same way, so an exported file is checked on labelled photos
before it is deployed:

- ``.keras``: torchvision's eval transform, normalised, in batches;
- SavedModel: the original uint8 image, any size (the resize, crop and normalisation are in
  the graph, as TF Serving gets it), one image a call;
- TFLite and ONNX: torchvision's resize and centre crop to the model's input size, uint8
  (normalised inside), one image a call for TFLite (its input has batch 1), batches for ONNX.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from keras_alexnet._utils.runtime import quiet_native_output
from keras_alexnet._utils.text import printable
from keras_alexnet.formats import format_of, resolve
from keras_alexnet.layers import class_names_of, temperature_of
from keras_alexnet.model import load_model
from keras_alexnet.preprocessing import (
    eval_crop,
    eval_transform,
    imagenet_eval_layers,
    load_image,
    preprocess_input,
    tta_blend,
    tta_crops,
)
from keras_alexnet.saved_model_ops import check_saved_model
from keras_alexnet.saved_model_record import read_saved_model

CLASS_NAMES_KEY = "class_names"  # the metadata entry (a JSON list) every export writes
TEMPERATURE_KEY = "temperature"  # the fitted temperature (a JSON number), where the model has one


class MissingRuntime(ImportError):
    """The runtime a model file needs is not installed; the message names the package and the extra."""


class Classifier:
    """A model file as ``class_names`` and ``probabilities(images)``; ``transform(path)`` makes one image."""

    format = None

    def __init__(self, path, class_names, outputs, temperature=None):
        self.path = Path(path)
        # Text from a file: printed as text (an escape sequence in a class name cannot drive the terminal).
        self.class_names = [printable(name) for name in class_names] if class_names else None
        self.outputs = outputs
        self.temperature = temperature  # the fitted temperature the file records, or None

    def names(self):
        """The class names, or the output indices as text when the file has none."""
        return self.class_names or [str(i) for i in range(self.outputs)]

    def transform(self, path):
        """One image file as this format takes it."""
        raise NotImplementedError

    def views(self, path):
        """Test-time augmentation's views of one image file (``preprocessing.TTA_VIEWS``), as ``transform`` makes it
        (None where the format crops inside its graph)."""
        return None

    def probabilities(self, images):
        """Probabilities (n, classes) of ``images`` (a batch, or a list of what ``transform`` made)."""
        raise NotImplementedError


class KerasClassifier(Classifier):
    format = "keras"

    def __init__(self, model, path=None):
        if isinstance(model, (str, os.PathLike)):  # a model.keras file (read as formats.FORMATS' readers are)
            model, path = load_model(model), model
        super().__init__(path or model.name, class_names_of(model), int(model.output.shape[-1]), temperature_of(model))
        self.model = model

    def transform(self, path):
        return eval_transform(path)

    def views(self, path):
        return preprocess_input(tta_crops(path).astype(np.float32))

    def probabilities(self, images):
        import keras

        return np.asarray(keras.ops.convert_to_numpy(self.model.predict_on_batch(np.asarray(images))))


class SavedModelClassifier(Classifier):
    """A SavedModel keras-alexnet exported, read as data (``saved_model_record``): its graph never runs.

    The model is rebuilt from the record the export wrote and runs with the serving graph's own preprocessing
    (torchvision's eval transform as Keras layers) on uint8 images of any size, as TF Serving gets them; the
    export step checked that the graph answers the same.
    """

    format = "savedmodel"

    def __init__(self, path):
        check_saved_model(path)  # the second line: the graph's ops read, though nothing of it runs here
        self.model, record = read_saved_model(path)
        self.preprocess = imagenet_eval_layers(crop_size=record["image_size"])
        outputs = int(self.model.output.shape[-1])
        super().__init__(path, record["class_names"] or None, outputs, record.get("temperature"))

    def transform(self, path):
        return np.asarray(load_image(path), np.uint8)  # as sent to TF Serving: any size

    def probabilities(self, images):
        return np.concatenate(
            [np.asarray(self.model(self.preprocess(image[None]), training=False)) for image in images]
        )


def _input_size(shape, path, what):
    """The square image size of an NHWC uint8 input shape, or an error naming the file."""
    if len(shape) != 4 or shape[-1] != 3 or shape[1] != shape[2] or not isinstance(shape[1], (int, np.integer)):
        raise ValueError(
            f"{path} takes input of shape {list(shape)}, not square RGB images (N, size, size, 3): it is not a "
            f"{what} that `keras-alexnet export` wrote."
        )
    return int(shape[1])


class TFLiteClassifier(Classifier):
    format = "tflite"

    def __init__(self, path):
        import tensorflow as tf

        content = Path(path).read_bytes()
        try:
            with quiet_native_output():  # the interpreter's deprecation warning and XNNPACK's line
                interpreter = tf.lite.Interpreter(model_content=content)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{path} is not a TFLite model ({error}).") from None
        detail = interpreter.get_input_details()[0]
        if detail["dtype"] != np.uint8:
            raise ValueError(
                f"{path} takes {np.dtype(detail['dtype']).name} input, not uint8 images: it is not a TFLite model "
                "that `keras-alexnet export` wrote."
            )
        self.size = _input_size(tuple(detail["shape"]), path, "TFLite model")
        try:
            self.runner = interpreter.get_signature_runner()
        except ValueError as error:
            raise ValueError(
                f"{path} has no serving signature ({error}): it is not a TFLite model that "
                "`keras-alexnet export` wrote."
            ) from None
        if "probabilities" not in self.runner.get_output_details():
            raise ValueError(
                f"{path} answers {sorted(self.runner.get_output_details())}, not 'probabilities': it is not a TFLite "
                "model that `keras-alexnet export` wrote."
            )
        self._interpreter = interpreter
        outputs = int(interpreter.get_output_details()[0]["shape"][-1])
        metadata = tflite_metadata(content)
        super().__init__(path, metadata.get(CLASS_NAMES_KEY), outputs, metadata.get(TEMPERATURE_KEY))

    def transform(self, path):
        return eval_crop(path, crop_size=self.size)

    def views(self, path):
        return tta_crops(path, crop_size=self.size)

    def probabilities(self, images):
        (name,) = self.runner.get_input_details()
        return np.concatenate([self.runner(**{name: image[None]})["probabilities"] for image in images])


def onnx_session(model):
    """An ONNX Runtime session (CPU) of a file or of a model's bytes; a clear error without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingRuntime(
            "ONNX models run with onnxruntime, which is not installed: pip install onnxruntime "
            "(or pip install 'keras-alexnet[onnx]')."
        ) from None
    try:
        source = model if isinstance(model, bytes) else str(model)
        return onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types for a file it cannot read
        where = "the exported bytes" if isinstance(model, bytes) else model
        raise ValueError(f"{where} is not an ONNX model ONNX Runtime can load ({error}).") from None


class ONNXClassifier(Classifier):
    format = "onnx"

    def __init__(self, path):
        session = onnx_session(path)
        (inputs,) = session.get_inputs()
        if inputs.type != "tensor(uint8)":
            raise ValueError(
                f"{path} takes {inputs.type}, not uint8 images: it is not an ONNX model that `keras-alexnet export` "
                "wrote."
            )
        self.size = _input_size(tuple(inputs.shape), path, "ONNX model")
        self.session, self.input_name = session, inputs.name
        metadata = session.get_modelmeta().custom_metadata_map
        names = json.loads(metadata[CLASS_NAMES_KEY]) if CLASS_NAMES_KEY in metadata else None
        temperature = json.loads(metadata[TEMPERATURE_KEY]) if TEMPERATURE_KEY in metadata else None
        super().__init__(path, names, int(session.get_outputs()[0].shape[-1]), temperature)

    def transform(self, path):
        return eval_crop(path, crop_size=self.size)

    def views(self, path):
        return tta_crops(path, crop_size=self.size)

    def probabilities(self, images):
        return self.session.run(None, {self.input_name: np.asarray(images, np.uint8)})[0]


class TestTimeAugmented(Classifier):
    """``classifier`` over test-time augmentation's views (``preprocessing.TTA_VIEWS``), blended as ``tta.blend``.

    As fastai's ``Learner.tta``: the plain prediction (the centre view) weighs ``tta.BETA``, the
    mean of the other views the rest; the views are fixed (no random draws), so an evaluation
    repeats exactly. Costs ``len(TTA_VIEWS)`` times the inference of one view.
    """

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, classifier):
        if type(classifier).views is Classifier.views:
            raise ValueError(
                f"--tta needs a model that takes image crops (model.keras, .tflite, .onnx); {classifier.path} is a "
                f"{classifier.format} that resizes and crops inside its graph. Use the model.keras it was exported "
                "from with --tta."
            )
        super().__init__(classifier.path, classifier.class_names, classifier.outputs, classifier.temperature)
        self.inner = classifier
        self.format = classifier.format

    def transform(self, path):
        return self.inner.views(path)

    def probabilities(self, images):
        stacked = np.asarray(images)  # (n, views, ...)
        count, views = stacked.shape[:2]
        flat = self.inner.probabilities(stacked.reshape(count * views, *stacked.shape[2:]))
        return tta_blend(np.asarray(flat).reshape(count, views, -1))


def tflite_metadata(content):
    """The JSON entries a TFLite file's metadata holds (``add_tflite_metadata``): {name: value}."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    found = {}
    for entry in model.metadata or []:
        name = entry.name.decode()
        if name in (CLASS_NAMES_KEY, TEMPERATURE_KEY):
            found[name] = json.loads(bytes(model.buffers[entry.buffer].data).decode())
    return found


def add_tflite_metadata(content, entries):
    """A TFLite flatbuffer with ``entries`` ({name: JSON value}; None values left out) in its metadata (the
    interpreter ignores it)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    for name, value in entries.items():
        if value is None:
            continue
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(json.dumps(value).encode(), np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def load_classifier(path):
    """The ``Classifier`` of any model file keras-alexnet writes (``formats.FORMATS``), with clear errors."""
    return resolve(format_of(path).reader)(path)
