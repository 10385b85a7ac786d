"""Test-time augmentation: fixed views of each image, blended with the plain prediction, measured per run.

The views are ``preprocessing.TTA_VIEWS``: the centre crop (torchvision's eval transform, the plain
prediction), its mirror image and the crop shifted four ways. As fastai's ``Learner.tta``
(``beta=0.25``), the answer blends the plain prediction with the mean of the other views:
``beta * plain + (1 - beta) * mean(augmented)``; the views are fixed, so an evaluation repeats
exactly. benchmarks/QUALITY.md measures this blend against the equal mean of all six views (what
0.6 did) on three data sets.

A run measures test-time augmentation on its validation images when it ends and records the
result (``RunDirectory.result().tta``); ``predict --tta`` and ``evaluate --tta`` read it and say
so in one line when it lowered that run's validation accuracy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from keras_alexnet._utils.choices import TTA_BETA, TTA_VIEWS, tta_description
from keras_alexnet.datasets.files import decoded_batches
from keras_alexnet.deployment import KerasClassifier
from keras_alexnet.preprocessing import tta_blend
from keras_alexnet.run_directory import RunDirectory

BETA = TTA_BETA
blend = tta_blend


describe = tta_description


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Validation accuracy without and with test-time augmentation, as a run records it."""

    images: int
    accuracy: float
    tta_accuracy: float
    beta: float = BETA
    views: int = len(TTA_VIEWS)

    @property
    def gain(self):
        return self.tta_accuracy - self.accuracy

    def to_dict(self):
        return {**dataclasses.asdict(self), "gain": self.gain}

    @classmethod
    def from_dict(cls, values):
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in fields})

    def line(self):
        """One line: what test-time augmentation did on the run's validation images."""
        verdict = "raised" if self.gain > 0 else "lowered" if self.gain < 0 else "left"
        return (
            f"test-time augmentation {verdict} validation accuracy {self.accuracy:.4f} -> {self.tta_accuracy:.4f} "
            f"({self.gain:+.4f}, {self.images} images, {self.views} views)"
        )


def view_probabilities(classifier, paths, batch_size=32):
    """(images, views, classes) probabilities of ``paths`` under a ``deployment.Classifier`` with ``views``,
    and the paths read (unreadable ones are left out)."""
    scores, read = [], []
    for x, kept, _ in decoded_batches(paths, max(1, batch_size // len(TTA_VIEWS)), transform=classifier.views):
        if not kept:
            continue
        stacked = np.asarray(x)
        count, views = stacked.shape[:2]
        flat = classifier.probabilities(stacked.reshape(count * views, *stacked.shape[2:]))
        scores.append(np.asarray(flat, np.float64).reshape(count, views, -1))
        read += [str(path) for path in kept]
    return (np.concatenate(scores) if scores else np.zeros((0, len(TTA_VIEWS), 0))), read


def measure(model, folder, batch_size=32, beta=BETA):
    """A ``Measurement`` of a Keras ``model`` on an ``ImageFolder`` (its labels are the truth)."""
    probabilities, read = view_probabilities(KerasClassifier(model), folder.paths, batch_size)
    label_of = dict(zip(map(str, folder.paths), folder.labels))
    labels = np.asarray([label_of[path] for path in read], np.int64)
    plain = probabilities[:, 0].argmax(axis=1)
    augmented = blend(probabilities, beta).argmax(axis=1)
    return Measurement(len(labels), float(np.mean(plain == labels)), float(np.mean(augmented == labels)), beta)


def recorded(model_path):
    """The ``Measurement`` the run that wrote ``model_path`` (its ``model.keras``) recorded, or None."""
    path = Path(model_path)
    if path.name != RunDirectory.MODEL or not path.is_file():
        return None
    try:
        values = RunDirectory(path.parent).result().tta
    except (OSError, ValueError):  # a damaged options.json records nothing to go by
        return None
    return Measurement.from_dict(values) if values else None


def warning(model_path):
    """One line when the model's run measured test-time augmentation lowering its validation accuracy, else None."""
    found = recorded(model_path)
    if found is None or found.gain >= 0:
        return None
    return f"note: when its run ended, {found.line()}; the plain answers (without --tta) were the better ones there."
