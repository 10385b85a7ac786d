"""Export to SavedModel (TF Serving), TFLite and ONNX, each verified against Keras on save.

The SavedModel's ``serving_default`` takes uint8 RGB images of any size,
batched, and does torchvision's eval preprocessing inside the graph; it returns
``probabilities``, ``class_index`` and ``class_name`` (and a ``class_names``
signature lists them). The TFLite and ONNX models take uint8 images already resized
and centre-cropped to 224x224 (the caller resizes) and return probabilities; the class
names are in their metadata. ``keras_alexnet.deployment`` reads all of them back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet._utils.choices import QUANTIZATIONS
from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.runtime import process_alive, quiet_native_output
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.datasets.files import decoded_batches
from keras_alexnet.deployment import CLASS_NAMES_KEY, TEMPERATURE_KEY, MissingRuntime, add_tflite_metadata, onnx_session
from keras_alexnet.layers import class_names_of, temperature_of
from keras_alexnet.preprocessing import CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, eval_crop, imagenet_eval_layers
from keras_alexnet.run_directory import RunDirectory

TOLERANCE = 1e-4  # max |exported - Keras| on probabilities, float32 throughout


class ExportCheckError(RuntimeError):
    """The exported artifact does not reproduce the Keras model; nothing was written."""


@dataclasses.dataclass
class ExportCheck:
    """How far the exported artifact's outputs are from the Keras model's."""

    path: Path
    max_abs_diff: float
    samples: int
    gate: AccuracyGate | None = None  # quantized TFLite: the accuracy before and after, on labelled images


@dataclasses.dataclass
class AccuracyGate:
    """A quantized export's accuracy against the float model's on labelled images, and the allowed drop."""

    float_accuracy: float
    exported_accuracy: float
    images: int
    max_drop: float

    @property
    def drop(self):
        return self.float_accuracy - self.exported_accuracy

    def __str__(self):
        return (
            f"accuracy on {self.images} labelled images: float32 {self.float_accuracy:.4f}, exported "
            f"{self.exported_accuracy:.4f} (drop {self.drop:+.4f}, allowed {self.max_drop:g})"
        )


def _check_images(seed=0, count=4, size=(173, 241)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *size, 3), dtype=np.uint8)


def _refuse_to_destroy(path, overwrite, what):
    """Stop before an export could replace anything the user has that is not ``what``."""
    if not path.exists():
        return
    if what == "SavedModel":
        if not path.is_dir():
            raise ValueError(f"{path} is a file; a SavedModel is a folder. Choose a new folder for --out.")
        if not any(path.iterdir()):
            return
        if not overwrite:
            raise ValueError(
                f"{path} exists and is not empty; nothing was changed. Choose a new folder for --out, or pass "
                "--overwrite (overwrite=True) to replace a SavedModel there."
            )
        if not (path / "saved_model.pb").exists():
            raise ValueError(
                f"{path} is not a SavedModel (no saved_model.pb), so it is not replaced even with --overwrite: "
                "choose a new folder for --out."
            )
    elif not overwrite:
        raise ValueError(f"{path} exists; nothing was changed. Choose a new file name, or pass --overwrite.")
    elif path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as model.tflite.")


def _umask_mode(directory):
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)  # mkdtemp makes 0700


# The folders a SavedModel export works in, beside --out, named with the PID of the export.
LEFTOVER_PREFIXES = (".tmp-savedmodel-", ".old-savedmodel-")


def _remove_leftovers(parent):
    """Remove the working folders of SavedModel exports into ``parent`` that were killed (their process
    is gone); only folders named as this module names them, never anything else."""
    for prefix in LEFTOVER_PREFIXES:
        for folder in parent.glob(f"{prefix}*"):
            pid = folder.name[len(prefix) :].split("-", 1)[0]
            if folder.is_dir() and pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)


# The SavedModel's signatures: encoded images (what TF Serving's REST clients send as {"b64": ...}),
# decoded arrays, and the metadata `predict` and `evaluate` read.
BYTES_SIGNATURE, IMAGES_SIGNATURE = "serving_default", "serving_images"


def _serving_module(model):
    """A ``tf.Module`` holding the model's variables once, with the serving functions.

    Keras's ``ExportArchive`` tracks the model and its variables' values side by side, which saves
    every variable twice (a SavedModel of 435 MB for 217 MB of AlexNet); here only the values are
    tracked, and the functions capture them.
    """
    names = class_names_of(model) or [str(i) for i in range(model.output.shape[-1])]
    preprocess = imagenet_eval_layers()
    module = tf.Module()
    module.tracked = [variable.value for variable in [*model.variables, *preprocess.variables]]
    table = tf.constant(names)

    def answer(images):
        probabilities = model(images, training=False)
        index = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "class_index": index, "class_name": tf.gather(table, index)}

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")])
    def serve_images(images):
        return answer(preprocess(images))

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        def one(data):
            # JPEG, PNG, GIF (first frame) or BMP; TensorFlow reads no EXIF orientation: send upright images.
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image.set_shape((None, None, 3))
            return preprocess(image[None])[0]

        crops = tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec((CROP_SIZE, CROP_SIZE, 3), tf.float32))
        return answer(crops)

    module.serve_images, module.serve_bytes = serve_images, serve_bytes
    module.class_names = tf.function(lambda: {CLASS_NAMES_KEY: table}, input_signature=[])
    signatures = {
        BYTES_SIGNATURE: serve_bytes,
        IMAGES_SIGNATURE: serve_images,
        CLASS_NAMES_KEY: module.class_names,
    }
    temperature = temperature_of(model)
    if temperature is not None:  # what `evaluate` reports as the file's calibration
        value = tf.constant(float(temperature))
        module.temperature = tf.function(lambda: {TEMPERATURE_KEY: value}, input_signature=[])
        signatures[TEMPERATURE_KEY] = module.temperature
    return module, signatures, preprocess


def _encoded(images):
    """``images`` (uint8, n x h x w x 3) as PNG bytes: lossless, so the bytes signature must match the arrays'."""
    import io

    from PIL import Image

    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


def export_savedmodel(model, path, check_images=None, overwrite=False):
    """Write a SavedModel for TF Serving (atomically: a sibling temporary folder renamed; the
    working folders of an earlier export that was killed are removed first).

    Signatures: ``serving_default`` takes encoded images (``image_bytes``, a batch of JPEG, PNG,
    GIF or BMP files: TF Serving's REST ``{"instances": [{"b64": ...}]}``), ``serving_images`` uint8
    arrays of any size (a batch of one size); both resize and crop as torchvision's eval transform
    and answer ``probabilities``, ``class_index`` and ``class_name``; ``class_names`` (and
    ``temperature`` for a calibrated model) read without an image. The variables are saved once.

    An existing non-empty ``path`` is refused unless ``overwrite``, and even then
    only a SavedModel is replaced. Returns an ``ExportCheck`` after loading it back
    with ``tf.saved_model.load``; raises, leaving nothing, if its probabilities differ
    from Keras's by more than ``TOLERANCE`` (both signatures; the bytes as PNG) or are not finite.
    """
    path = Path(path).resolve()
    _refuse_to_destroy(path, overwrite, "SavedModel")
    module, signatures, preprocess = _serving_module(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f"{LEFTOVER_PREFIXES[0]}{os.getpid()}-{path.name}-", dir=path.parent))
    _umask_mode(tmp)
    try:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        images = _check_images() if check_images is None else check_images
        expected = np.asarray(model(preprocess(images), training=False))
        loaded = tf.saved_model.load(str(tmp))
        got = loaded.signatures[IMAGES_SIGNATURE](images=tf.constant(images))["probabilities"].numpy()
        diff = _max_difference(got, expected, "SavedModel")
        encoded = tf.constant(_encoded(images))
        got = loaded.signatures[BYTES_SIGNATURE](image_bytes=encoded)["probabilities"].numpy()
        diff = max(diff, _max_difference(got, expected, "SavedModel (encoded images)"))
        if diff > TOLERANCE:
            raise ExportCheckError(
                f"SavedModel check failed: max |difference| {diff:.2e} > {TOLERANCE:.0e}; nothing was written."
            )
        old = None
        if path.exists() and any(path.iterdir()):  # a SavedModel, checked above: moved aside, then removed
            old = Path(tempfile.mkdtemp(prefix=f"{LEFTOVER_PREFIXES[1]}{os.getpid()}-{path.name}-", dir=path.parent))
            path.rename(old / path.name)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return ExportCheck(path, diff, len(images))


# max |TFLite - Keras| on probabilities that a quantized export is allowed (stated, and checked on save).
# int8 (weights and activations) moves probabilities by up to a quantization step of the softmax's
# input: its check is the accuracy gate on labelled images; this bound only catches a broken file.
TFLITE_TOLERANCE = {None: TOLERANCE, "float16": 1e-2, "dynamic": 5e-2, "int8": 0.25}
DEFAULT_MAX_ACCURACY_DROP = 0.02


def _max_difference(got, expected, what):
    """max |got - expected|; a NaN or infinity anywhere is a failed check, never a small number."""
    got, expected = np.asarray(got), np.asarray(expected)
    if not np.all(np.isfinite(expected)):
        raise ExportCheckError(
            f"{what} check failed: the Keras model itself outputs NaN or infinity (diverged weights?)."
        )
    if not np.all(np.isfinite(got)):
        raise ExportCheckError(f"{what} check failed: the exported model outputs NaN or infinity where Keras does not.")
    return float(np.max(np.abs(got - expected)))


def export_tflite(
    model,
    path,
    image_size=CROP_SIZE,
    check_images=None,
    quantize=None,
    overwrite=False,
    labelled=None,
    representative=None,
    max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
):
    """Write a TFLite model (uint8 ``image_size`` x ``image_size`` RGB in, probabilities out), verified.

    ``quantize``: None (float32, the whole model: about 4 bytes a parameter),
    ``"float16"`` (half the size), ``"dynamic"`` (int8 weights, a quarter) or ``"int8"``
    (full integer: int8 weights and activations, uint8 input, calibrated on
    ``representative``: uint8 crops of training images). The file is converted from a
    SavedModel of the same graph, loaded back with the TFLite interpreter and compared with
    Keras on ``check_images``; a difference over ``TFLITE_TOLERANCE[quantize]``, or any NaN,
    fails and writes nothing. A quantized export with ``labelled`` images (an ``ImageFolder``)
    is also gated on accuracy: float32 Keras and the TFLite file are scored on them, and a drop
    over ``max_accuracy_drop`` fails and writes nothing (int8 needs them).
    """
    if quantize not in TFLITE_TOLERANCE:
        raise ValueError(f"quantize={quantize!r}: use None, {', '.join(repr(q) for q in QUANTIZATIONS)}.")
    if quantize == "int8" and (representative is None or labelled is None):
        raise ValueError(
            "--quantize int8 is calibrated on training images and checked on labelled ones: give --data (a "
            "folder of labelled images), or export a model.keras from a run with a validation set."
        )
    path = Path(path)
    _refuse_to_destroy(path, overwrite, "TFLite")
    normalize = keras.Sequential(
        [keras.Input((None, None, 3)), *imagenet_eval_layers().layers[-2:]]
    )  # rescale + normalise

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(normalize)

    def serve(image):
        return {"probabilities": model(normalize(tf.cast(image, tf.float32)), training=False)}

    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec((1, image_size, image_size, 3), tf.uint8, name="image")]
    )
    # Converting the concrete function directly left the variables out (a 15 KB file of zeros):
    # a SavedModel carries them.
    with tempfile.TemporaryDirectory(prefix="keras-alexnet-tflite-") as workdir:
        archive.write_out(workdir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(workdir)
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantize == "float16":
                converter.target_spec.supported_types = [tf.float16]
            if quantize == "int8":
                crops = [np.asarray(crop, np.uint8)[None] for crop in representative]
                converter.representative_dataset = lambda: ([crop] for crop in crops)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.uint8
        flatbuffer = converter.convert()
    images = _check_images(size=(image_size, image_size)) if check_images is None else check_images
    with quiet_native_output():
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
        interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner()
    diff = 0.0
    for image in images:
        got = runner(image=image[None])["probabilities"]
        expected = np.asarray(model(normalize(tf.cast(image[None], tf.float32)), training=False))
        diff = max(diff, _max_difference(got, expected, "TFLite"))
    tolerance = TFLITE_TOLERANCE[quantize]
    if diff > tolerance:
        raise ExportCheckError(
            f"TFLite check failed: max |difference| {diff:.2e} > {tolerance:.0e}; nothing was written."
        )
    gate = None
    if quantize is not None and labelled is not None:
        gate = _accuracy_gate(model, normalize, runner, labelled, image_size, max_accuracy_drop)
        if not gate.drop <= max_accuracy_drop:
            raise ExportCheckError(
                f"TFLite {quantize} check failed: {gate}; nothing was written. Export without --quantize, another "
                "quantization, or allow more with --max-accuracy-drop."
            )
    named = add_tflite_metadata(
        flatbuffer,
        {
            CLASS_NAMES_KEY: class_names_of(model) or [str(i) for i in range(model.output.shape[-1])],
            TEMPERATURE_KEY: temperature_of(model),
        },
    )
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(named))
    return ExportCheck(path, diff, len(images), gate)


def labelled_images(model_path, data=None, class_names=None):
    """The labelled images a quantized export is checked on: ``data`` (a folder per class), else the
    validation images recorded by the run that wrote ``model_path``; None when there are neither."""
    if data is not None:
        return ImageFolder.read(data, class_names=class_names)
    record = RunDirectory(Path(model_path).parent).validation
    if not record.exists():
        return None
    return ImageFolder.from_dict(json.loads(record.read_text()))


def calibration_crops(labelled, count=200, seed=0):
    """uint8 crops of up to ``count`` of ``labelled``'s images (a seeded sample), for int8 calibration."""
    order = np.random.default_rng(seed).permutation(len(labelled.paths))[:count]
    crops = []
    for index in order:
        try:
            crops.append(eval_crop(labelled.paths[index]))
        except (ValueError, OSError):
            continue
    return crops


def _accuracy_gate(model, normalize, runner, labelled, image_size, max_drop):
    """Score float32 Keras and the TFLite runner on the labelled images (uint8 crops, one at a time)."""
    label_of = dict(zip(map(str, labelled.paths), labelled.labels))
    right_float = right_exported = count = 0
    crop = lambda path: eval_crop(path, crop_size=image_size)  # noqa: E731
    for x, kept, _ in decoded_batches(labelled.paths, 32, transform=crop):
        if not kept:
            continue
        labels = np.asarray([label_of[str(path)] for path in kept])
        float_scores = np.asarray(model(normalize(tf.cast(x, tf.float32)), training=False))
        exported = np.concatenate([runner(image=image[None])["probabilities"] for image in x])
        right_float += int(np.sum(float_scores.argmax(axis=1) == labels))
        right_exported += int(np.sum(exported.argmax(axis=1) == labels))
        count += len(kept)
    if not count:
        raise ValueError("no readable labelled images to check the quantized model on.")
    return AccuracyGate(right_float / count, right_exported / count, count, max_drop)


ONNX_TOLERANCE = 1e-5  # max |ONNX Runtime - Keras| on probabilities, float32 throughout
ONNX_OPSET = 17


def export_onnx(model, path, image_size=CROP_SIZE, check_images=None, overwrite=False):
    """Write an ONNX model (uint8 ``image_size`` x ``image_size`` RGB in, any batch; probabilities out), verified.

    The input contract is the TFLite model's: images already resized and centre-cropped
    (``keras-alexnet predict`` and ``preprocessing.eval_crop`` do torchvision's resize and crop);
    the scaling to [0, 1] and the ImageNet normalisation are inside the graph. The class names
    are in the model's metadata (``class_names``, a JSON list). Converted with tf2onnx (the
    converter Keras's own ONNX export calls on TensorFlow; ``_tf2onnx`` says why not through
    Keras), loaded back with ONNX Runtime and
    compared with Keras at batch 1 and 8; a difference over ``ONNX_TOLERANCE``, or any NaN,
    fails and writes nothing.
    """
    import json

    import onnx

    try:
        import tf2onnx  # noqa: F401  (Keras's ONNX export calls it)
    except ImportError:
        raise MissingRuntime(
            "ONNX export needs tf2onnx, which is not installed: pip install tf2onnx (or pip install "
            "'keras-alexnet[onnx]')."
        ) from None

    path = Path(path)
    _refuse_to_destroy(path, overwrite, "ONNX")
    # One per-channel scale and offset: (x / 255 - mean) / std. (The Normalization layer's
    # statistics reach tf2onnx as captured tensors it leaves as inputs of the graph.)
    normalize = keras.layers.Rescaling(
        scale=[1.0 / (255.0 * s) for s in IMAGENET_STD],
        offset=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
        name="imagenet_normalize",
    )
    names = class_names_of(model) or [str(i) for i in range(model.output.shape[-1])]

    images_in = keras.Input((image_size, image_size, 3), dtype="uint8", name="images")
    probabilities = model(normalize(keras.ops.cast(images_in, "float32")))
    serving = keras.Model(images_in, probabilities, name=f"{model.name}_uint8")
    images = _check_images(count=8, size=(image_size, image_size)) if check_images is None else check_images
    expected = np.asarray(serving(images, training=False))  # (Keras exports only a model that was called)
    proto = _tf2onnx(serving, image_size)
    properties = {CLASS_NAMES_KEY: json.dumps(list(names))}
    if temperature_of(model) is not None:
        properties[TEMPERATURE_KEY] = json.dumps(float(temperature_of(model)))
    onnx.helper.set_model_props(proto, properties)
    content = proto.SerializeToString()
    diff = 0.0
    for batch in (images[:1], images):
        got = onnx_probabilities(content, batch)
        diff = max(diff, _max_difference(got, expected[: len(batch)], "ONNX"))
    if diff > ONNX_TOLERANCE:
        raise ExportCheckError(
            f"ONNX check failed: max |difference| {diff:.2e} > {ONNX_TOLERANCE:.0e}; nothing was written."
        )
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(content))
    return ExportCheck(path, diff, len(images))


def _tf2onnx(serving, image_size):
    """The ONNX model of a Keras model from uint8 images to probabilities, with tf2onnx's graph conversion.

    Keras's ``model.export(format="onnx")`` runs tf2onnx with all its ONNX optimizers: for AlexNet
    they took 13.8 GB of memory (and were killed beside the test suite); without them the
    conversion takes 4.3 GB, and ONNX Runtime optimizes the graph itself when it loads it.
    """
    import tf2onnx.tfonnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function = tf.function(lambda images: serving(images, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec((None, image_size, image_size, 3), tf.uint8, "images"))
    frozen = convert_variables_to_constants_v2(concrete)
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(frozen.graph.as_graph_def(), name="")
    inputs, outputs = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    onnx_graph = tf2onnx.tfonnx.process_tf_graph(graph, opset=ONNX_OPSET, input_names=inputs, output_names=outputs)
    proto = onnx_graph.make_model("keras-alexnet")
    # The contract's names ("images" in, "probabilities" out) instead of TensorFlow's tensor names.
    renames = {inputs[0]: "images", outputs[0]: "probabilities"}
    for value in [*proto.graph.input, *proto.graph.output]:
        value.name = renames.get(value.name, value.name)
    for node in proto.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    return proto


def onnx_probabilities(model, images):
    """Probabilities of an ONNX model (a file or its bytes) from ONNX Runtime on uint8 ``images``."""
    session = onnx_session(model)
    return session.run(None, {session.get_inputs()[0].name: np.asarray(images, np.uint8)})[0]
