"""What a run leaves to be read: the typed record of a finished run (``RunResult``, in ``options.json`` under
``"result"``) and readers for ``log.csv`` and ``history.json``.

Every engine writes these files the same way (one process, several devices, Ray Train workers), and
everything that reads them (finishing, the report, compare, auto, predict, evaluate) reads them here. A run
directory may come from elsewhere or be edited by hand: the readers take what has the expected type and
leave the rest at its default, they never fail on a value.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive(value):
    return _number(value) and value > 0


def _counts(value):
    return isinstance(value, dict) and all(_count(n) for n in value.values())


def _names(value):
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


def _rows(value):
    return isinstance(value, list) and all(isinstance(row, dict) for row in value)


def _field(default, kind):
    """A record field whose stored value must be of ``kind`` (a type, or a test of the value) to be read back;
    None reads as the default."""
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=type(default), metadata={"kind": kind})
    return dataclasses.field(default=default, metadata={"kind": kind})


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a finished run made and what the report warns about.

    Attributes:
        output_network: the rule that chose the epoch ``model.keras`` holds (``--output-network``).
        output_epoch: that epoch (1-based), or None.
        epochs_done: how many epochs the run trained (early stopping may end it sooner).
        temperature: the number the model divides its logits by, or None.
        calibration: how the temperature was chosen (``calibration.TemperatureChoice.to_dict``), or None.
        training_counts: training images per class name.
        skipped_count: unreadable files skipped (training and validation).
        skipped: the first 20 of them.
        shared_validation_images: validation images that are also training images.
        image_statistics: the training images' colour statistics (``datasets.statistics``), what predict and
            evaluate compare their inputs with.
        changed_options: the options the user changed from their defaults.
        tta: test-time augmentation measured on the validation images (``tta.Measurement.to_dict``), or None.
        layers: per trained layer, its name, whether it trained and its learning-rate factors.
        recipe_reason: why the rule of thumb chose the recipe, when the user named none.
        workers: how many Ray Train workers trained the run, when it trained on workers.
    """

    output_network: str = _field("last", str)
    output_epoch: int | None = _field(None, _count)
    epochs_done: int = _field(0, _count)
    temperature: float | None = _field(None, _positive)
    calibration: dict | None = _field(None, dict)
    training_counts: dict = _field({}, _counts)
    skipped_count: int = _field(0, _count)
    skipped: list = _field([], _names)
    shared_validation_images: int = _field(0, _count)
    image_statistics: dict | None = _field(None, dict)
    changed_options: list = _field([], _names)
    tta: dict | None = _field(None, dict)
    layers: list = _field([], _rows)
    recipe_reason: str | None = _field(None, str)
    workers: int | None = _field(None, _count)

    # Keys written only when set: a run the rule did not choose, or trained on one process, has none.
    OPTIONAL = ("recipe_reason", "workers")

    def to_dict(self):
        """The JSON record (``options.json``'s ``"result"``)."""
        values = dataclasses.asdict(self)
        return {key: value for key, value in values.items() if not (key in self.OPTIONAL and value is None)}

    @classmethod
    def from_dict(cls, values):
        """The record in ``values``; a key missing, unknown or of the wrong type takes its default."""
        if not isinstance(values, dict):
            return cls()
        kept = {}
        for field in dataclasses.fields(cls):
            value = values.get(field.name)
            if _of_kind(value, field.metadata["kind"]):
                kept[field.name] = value
        return cls(**kept)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _of_kind(value, kind):
    if value is None:
        return False
    return isinstance(value, kind) if isinstance(kind, type) else bool(kind(value))


def read_log(path):
    """The rows of a ``log.csv``: ``{"epoch": int, column: float}`` each (Keras's ``"NA"`` and anything not a
    number as NaN), in file order; [] without the file. A row not written to its end (the file being
    written) or without an epoch number is left out."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as handle:
        rows = []
        for row in csv.DictReader(handle):
            if None in row.values() or None in row or not str(row.get("epoch", "")).isdigit():
                continue
            rows.append({"epoch": int(row["epoch"]), **{k: _float(v) for k, v in row.items() if k != "epoch"}})
    return rows


def log_columns(rows):
    """``{column: [value per epoch]}`` of ``read_log``'s rows (without the epoch)."""
    columns = {}
    for row in rows:
        for name, value in row.items():
            if name != "epoch":
                columns.setdefault(name, []).append(value)
    return columns


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def read_history(path):
    """The ``history.json`` the progress callback writes (``{"epochs_done", "loss", ...}``), or {} without it
    (or when it is not a JSON object)."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}
