"""What every export shares: the overwrite rule, the images it is checked on, the comparison with
Keras (NaN is a failure), the accuracy gate of a quantized file, and the errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


class ExportCheckError(RuntimeError):
    """The exported artifact does not reproduce the Keras model; nothing was written."""


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


@dataclasses.dataclass
class ExportCheck:
    """How far the exported artifact's outputs are from the Keras model's."""

    path: Path
    max_abs_diff: float
    samples: int
    gate: AccuracyGate | None = None  # quantized: the accuracy before and after, on labelled images


def check_images(seed=0, count=4, size=(173, 241)):
    """Seeded random uint8 images (``count`` x ``size`` x 3) an export is compared with Keras on."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *size, 3), dtype=np.uint8)


def max_difference(got, expected, what):
    """max |got - expected|; a NaN or infinity anywhere is a failed check, never a small number."""
    got, expected = np.asarray(got), np.asarray(expected)
    if not np.all(np.isfinite(expected)):
        raise ExportCheckError(
            f"{what} check failed: the Keras model itself outputs NaN or infinity (diverged weights?)."
        )
    if not np.all(np.isfinite(got)):
        raise ExportCheckError(f"{what} check failed: the exported model outputs NaN or infinity where Keras does not.")
    return float(np.max(np.abs(got - expected)))


def refuse_to_destroy(path, overwrite, folder):
    """Stop before an export could replace anything the user has that is not an export of its kind
    (``folder``: a SavedModel folder, else a file)."""
    if not path.exists():
        return
    if folder:
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
        raise ValueError(f"{path} is a folder; give a file name such as model{path.suffix or '.tflite'}.")
