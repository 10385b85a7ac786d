"""Export to SavedModel (TF Serving) and TFLite, each verified against Keras on save.

The SavedModel's ``serving_default`` takes uint8 RGB images of any size,
batched, and does torchvision's eval preprocessing inside the graph; it returns
``probabilities``, ``class_index`` and ``class_name``. The TFLite model takes
uint8 images already resized to 224x224 (mobile code resizes) and returns
probabilities.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet._utils.choices import QUANTIZATIONS
from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.runtime import process_alive
from keras_alexnet.layers import class_names_of
from keras_alexnet.preprocessing import CROP_SIZE, imagenet_eval_layers

TOLERANCE = 1e-4  # max |exported - Keras| on probabilities, float32 throughout


class ExportCheckError(RuntimeError):
    """The exported artifact does not reproduce the Keras model; nothing was written."""


@dataclasses.dataclass
class ExportCheck:
    """How far the exported artifact's outputs are from the Keras model's."""

    path: Path
    max_abs_diff: float
    samples: int


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


def export_savedmodel(model, path, check_images=None, overwrite=False):
    """Write a SavedModel for TF Serving (atomically: a sibling temporary folder renamed; the
    working folders of an earlier export that was killed are removed first).

    An existing non-empty ``path`` is refused unless ``overwrite``, and even then
    only a SavedModel is replaced. Returns an ``ExportCheck`` after loading it back
    with ``tf.saved_model.load``; raises, leaving nothing, if its probabilities differ
    from Keras's by more than ``TOLERANCE`` or are not finite.
    """
    path = Path(path).resolve()
    _refuse_to_destroy(path, overwrite, "SavedModel")
    names = class_names_of(model) or [str(i) for i in range(model.output.shape[-1])]
    preprocess = imagenet_eval_layers()
    table = tf.constant(names)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocess)

    def serve(images):
        probabilities = model(preprocess(images), training=False)
        index = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "class_index": index, "class_name": tf.gather(table, index)}

    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f"{LEFTOVER_PREFIXES[0]}{os.getpid()}-{path.name}-", dir=path.parent))
    _umask_mode(tmp)
    try:
        archive.write_out(str(tmp), verbose=False)
        images = _check_images() if check_images is None else check_images
        expected = np.asarray(model(preprocess(images), training=False))
        loaded = tf.saved_model.load(str(tmp))
        got = loaded.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
        diff = _max_difference(got, expected, "SavedModel")
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
TFLITE_TOLERANCE = {None: TOLERANCE, "float16": 1e-2, "dynamic": 5e-2}


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


def export_tflite(model, path, image_size=CROP_SIZE, check_images=None, quantize=None, overwrite=False):
    """Write a TFLite model (uint8 ``image_size`` x ``image_size`` RGB in, probabilities out), verified.

    ``quantize``: None (float32, the whole model: about 4 bytes a parameter),
    ``"float16"`` (half the size) or ``"dynamic"`` (int8 weights, a quarter). The
    file is converted from a SavedModel of the same graph, loaded back with the
    TFLite interpreter and compared with Keras on ``check_images``; a difference
    over ``TFLITE_TOLERANCE[quantize]``, or any NaN, fails and writes nothing.
    """
    if quantize not in TFLITE_TOLERANCE:
        raise ValueError(f"quantize={quantize!r}: use None, {', '.join(repr(q) for q in QUANTIZATIONS)}.")
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
        flatbuffer = converter.convert()
    images = _check_images(size=(image_size, image_size)) if check_images is None else check_images
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
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
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(flatbuffer))
    return ExportCheck(path, diff, len(images))


ONNX_TOLERANCE = 1e-5  # max |ONNX Runtime - Keras| on probabilities, float32 throughout
ONNX_OPSET = 17
CLASS_NAMES_KEY = "class_names"  # the ONNX metadata entry (JSON list) that names the outputs


def export_onnx(model, path, image_size=CROP_SIZE, check_images=None, overwrite=False):
    """Write an ONNX model (uint8 ``image_size`` x ``image_size`` RGB in, any batch; probabilities out), verified.

    The input contract is the TFLite model's: images already resized and centre-cropped
    (``keras-alexnet predict`` and ``preprocessing.eval_crop`` do torchvision's resize and crop);
    the scaling to [0, 1] and the ImageNet normalisation are inside the graph. The class names
    are in the model's metadata (``class_names``, a JSON list). Converted with tf2onnx (the
    converter Keras's own ONNX export calls on TensorFlow), loaded back with ONNX Runtime and
    compared with Keras at batch 1 and 8; a difference over ``ONNX_TOLERANCE``, or any NaN,
    fails and writes nothing.
    """
    import json

    import onnx
    import tf2onnx

    path = Path(path)
    _refuse_to_destroy(path, overwrite, "ONNX")
    normalize = keras.Sequential([keras.Input((None, None, 3)), *imagenet_eval_layers().layers[-2:]])
    names = class_names_of(model) or [str(i) for i in range(model.output.shape[-1])]

    @tf.function(input_signature=[tf.TensorSpec((None, image_size, image_size, 3), tf.uint8, name="images")])
    def serve(images):
        return {"probabilities": model(normalize(tf.cast(images, tf.float32)), training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=ONNX_OPSET)
    onnx.helper.set_model_props(proto, {CLASS_NAMES_KEY: json.dumps(list(names))})
    content = proto.SerializeToString()
    images = _check_images(count=8, size=(image_size, image_size)) if check_images is None else check_images
    expected = np.asarray(model(normalize(tf.cast(images, tf.float32)), training=False))
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


def onnx_probabilities(model, images):
    """Probabilities of an ONNX model (a file or its bytes) from ONNX Runtime on uint8 ``images``."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "ONNX models run with onnxruntime, which is not installed: pip install onnxruntime "
            "(or keras-alexnet's [onnx] extra)."
        ) from None
    session = onnxruntime.InferenceSession(
        model if isinstance(model, bytes) else str(model), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {session.get_inputs()[0].name: np.asarray(images, np.uint8)})[0]
