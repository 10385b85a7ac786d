"""Export a trained model to the formats of ``keras_alexnet.formats``, each verified against Keras on save.

``export(model, "onnx", "pets.onnx")`` runs one step for every format: the overwrite rule, the
format's builder (``export/savedmodel.py``, ``tflite.py``, ``onnx.py``: each builds only its
serving graph, with the class names and temperature in the file), a write to a temporary path
beside ``out``, the file read back by the reader ``predict`` and ``evaluate`` use
(``keras_alexnet.deployment``) and compared with Keras on check images (a NaN, or a difference
over the format's tolerance, fails: nothing is written), a quantized file's accuracy gate on
labelled images, and the rename into place. Adding a format is one module here and one row of
``formats.FORMATS``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from keras_alexnet._utils.runtime import process_alive
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.datasets.files import decoded_batches
from keras_alexnet.export.checks import (
    AccuracyGate,
    ExportCheck,
    ExportCheckError,
    check_images,
    max_difference,
    refuse_to_destroy,
)
from keras_alexnet.export.onnx import onnx_probabilities
from keras_alexnet.formats import FORMATS, format_named, resolve
from keras_alexnet.options import EXPORT
from keras_alexnet.preprocessing import CROP_SIZE, eval_crop
from keras_alexnet.run_directory import RunDirectory, lock
from keras_alexnet.saved_model_record import SavedModelRecordError

__all__ = [
    "AccuracyGate",
    "ExportCheck",
    "ExportCheckError",
    "calibration_crops",
    "export",
    "export_onnx",
    "export_savedmodel",
    "export_tflite",
    "labelled_images",
    "onnx_probabilities",
]

TOLERANCE = FORMATS["savedmodel"].tolerance[None]  # max |exported - Keras| on probabilities, float32 throughout
TFLITE_TOLERANCE = FORMATS["tflite"].tolerance
ONNX_TOLERANCE = FORMATS["onnx"].tolerance[None]
DEFAULT_MAX_ACCURACY_DROP = EXPORT.max_accuracy_drop  # the schema is keras_alexnet.options.ExportOptions
# The working paths of an export, beside --out, named with the PID of the export.
LEFTOVER_PREFIXES = (".tmp-savedmodel-", ".old-savedmodel-", ".tmp-export-")


def export(
    model,
    format,
    out,
    *,
    overwrite=False,
    quantize=None,
    labelled=None,
    representative=None,
    max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
    check_images=None,
    image_size=CROP_SIZE,
):
    """Write ``model`` as ``format`` (``formats.export_formats()``) at ``out``, verified; an ``ExportCheck``.

    ``quantize``: one of the format's quantizations (``Format.quantizations``). ``labelled``: an
    ``ImageFolder`` a quantized file is gated on (float32 Keras and the file scored on it; a drop over
    ``max_accuracy_drop`` writes nothing); ``representative``: uint8 crops an int8 file is calibrated
    on (``calibration_crops``). An existing ``out`` is refused unless ``overwrite``, and even then only
    an export of the same kind is replaced.
    """
    chosen = format_named(format)
    if quantize is not None and quantize not in chosen.quantizations:
        offered = ", ".join(chosen.quantizations) or "none"
        raise ValueError(f"--quantize {quantize} does not apply to {chosen.name} (its quantizations: {offered}).")
    if labelled is not None and quantize not in chosen.labelled:
        raise ValueError(
            f"labelled images (--data) are for a quantized export ({', '.join(chosen.labelled) or 'none'} of "
            f"{chosen.name}): the images it is checked on. Add --quantize, or leave out --data."
        )
    if quantize == "int8" and (representative is None or labelled is None):
        raise ValueError(
            "--quantize int8 is calibrated on training images and checked on labelled ones: give --data (a "
            "folder of labelled images), or export a model.keras from a run with a validation set."
        )
    folder = chosen.suffix is None
    path = Path(out).resolve() if folder else Path(out)
    refuse_to_destroy(path, overwrite, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two exports into one --out: the second waits for nothing and is refused, naming the first; the
    # folder is always one complete export.
    with lock(path.parent, f".{path.name}.export.lock", "export", "--out"):
        refuse_to_destroy(path, overwrite, folder)
        return _write_checked(
            model,
            chosen,
            path,
            folder,
            quantize,
            labelled,
            representative,
            max_accuracy_drop,
            check_images,
            image_size,
        )


def _write_checked(
    model, chosen, path, folder, quantize, labelled, representative, max_accuracy_drop, check_images, image_size
):
    """Build, write to a working path, check against Keras (and the accuracy gate), then rename into place."""
    artifact = resolve(chosen.builder)(model, image_size=image_size, quantize=quantize, representative=representative)
    _remove_leftovers(path.parent)
    tmp = _working_path(path, folder)
    try:
        artifact.write(tmp)
        try:
            reader = resolve(chosen.reader)(tmp)  # what `predict` and `evaluate` will read
        except SavedModelRecordError as error:  # e.g. a model with NaN weights: its file is refused on reading
            raise ExportCheckError(f"{chosen.name} check failed: {error.reason}; nothing was written.") from None
        if check_images is not None:
            images = check_images
        else:
            images = check_images_for(artifact, image_size)
        expected = np.asarray(model(artifact.prepare(images), training=False))
        got = reader.probabilities(list(images) if not artifact.crops else images)
        diff = max_difference(got, expected, chosen.name)
        if artifact.extra_check is not None:
            diff = max(diff, artifact.extra_check(tmp, images, expected))
        tolerance = chosen.tolerance[quantize]
        if diff > tolerance:
            raise ExportCheckError(
                f"{chosen.name} check failed: max |difference| {diff:.2e} > {tolerance:.0e}; nothing was written."
            )
        gate = None
        if quantize in chosen.labelled and labelled is not None:
            gate = _accuracy_gate(model, artifact, reader, labelled, image_size, max_accuracy_drop)
            if not gate.drop <= max_accuracy_drop:
                raise ExportCheckError(
                    f"{chosen.name} {quantize} check failed: {gate}; nothing was written. Export without --quantize, "
                    "another quantization, or allow more with --max-accuracy-drop."
                )
        _move_into_place(tmp, path, folder)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return ExportCheck(path, diff, len(images), gate)


def check_images_for(artifact, image_size):
    """The images a format is checked on: crops of its input size, or images of another size (it resizes)."""
    if artifact.crops:
        return check_images(count=8, size=(image_size, image_size))
    return check_images()


def _working_path(path, folder):
    prefix = LEFTOVER_PREFIXES[0] if folder else LEFTOVER_PREFIXES[2]
    if folder:
        working = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-{path.name}-", dir=path.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(working, 0o777 & ~umask)  # mkdtemp makes 0700
        working.rmdir()  # the writer makes it
        return working
    return path.parent / f"{prefix}{os.getpid()}-{path.name}"


def _move_into_place(tmp, path, folder):
    """Rename the checked export onto ``path``; a SavedModel there (checked by ``refuse_to_destroy``) is moved
    aside first, then removed."""
    if not folder:
        os.replace(tmp, path)
        return
    old = None
    if path.exists() and any(path.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f"{LEFTOVER_PREFIXES[1]}{os.getpid()}-{path.name}-", dir=path.parent))
        path.rename(old / path.name)
    elif path.exists():
        path.rmdir()
    tmp.rename(path)
    if old is not None:
        shutil.rmtree(old)


def _remove_leftovers(parent):
    """Remove the working paths of exports into ``parent`` that were killed (their process is gone); only
    paths named as this module names them, never anything else."""
    for prefix in LEFTOVER_PREFIXES:
        for leftover in parent.glob(f"{prefix}*"):
            pid = leftover.name[len(prefix) :].split("-", 1)[0]
            if pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def _accuracy_gate(model, artifact, reader, labelled, image_size, max_drop):
    """Score float32 Keras and the exported file (through its reader) on the labelled images' crops."""
    label_of = dict(zip(map(str, labelled.paths), labelled.labels))
    right_float = right_exported = count = 0
    crop = lambda path: eval_crop(path, crop_size=image_size)  # noqa: E731
    for x, kept, _ in decoded_batches(labelled.paths, 32, transform=crop):
        if not kept:
            continue
        labels = np.asarray([label_of[str(path)] for path in kept])
        float_scores = np.asarray(model(artifact.prepare(x), training=False))
        exported = np.asarray(reader.probabilities(x))
        right_float += int(np.sum(float_scores.argmax(axis=1) == labels))
        right_exported += int(np.sum(exported.argmax(axis=1) == labels))
        count += len(kept)
    if not count:
        raise ValueError("no readable labelled images to check the quantized model on.")
    return AccuracyGate(right_float / count, right_exported / count, count, max_drop)


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


def export_savedmodel(model, path, check_images=None, overwrite=False):
    """``export(model, "savedmodel", path, ...)``: a SavedModel for TF Serving (see ``export/savedmodel.py``)."""
    return export(model, "savedmodel", path, overwrite=overwrite, check_images=check_images)


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
    """``export(model, "tflite", path, ...)``: a TFLite file (see ``export/tflite.py``)."""
    return export(
        model,
        "tflite",
        path,
        overwrite=overwrite,
        quantize=quantize,
        labelled=labelled,
        representative=representative,
        max_accuracy_drop=max_accuracy_drop,
        check_images=check_images,
        image_size=image_size,
    )


def export_onnx(model, path, image_size=CROP_SIZE, check_images=None, overwrite=False):
    """``export(model, "onnx", path, ...)``: an ONNX file (see ``export/onnx.py``)."""
    return export(model, "onnx", path, overwrite=overwrite, check_images=check_images, image_size=image_size)
