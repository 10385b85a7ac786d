"""Evaluate and predict: accuracy, per-class precision/recall, confusion matrix, top-k."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from keras_alexnet._utils.files import atomic_write
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.layers import class_names_of
from keras_alexnet.preprocessing import eval_transform, imagenet_class_names

log = logging.getLogger("keras_alexnet.evaluation")


@dataclasses.dataclass
class Evaluation:
    """Scores of a classifier on a labelled set."""

    class_names: list
    confusion: np.ndarray  # rows: true class, columns: predicted class
    skipped: list
    ignored_folders: list = dataclasses.field(default_factory=list)  # class folders the model does not know

    @property
    def accuracy(self):
        return float(np.trace(self.confusion) / max(self.confusion.sum(), 1))

    @property
    def precision(self):
        predicted = self.confusion.sum(axis=0)
        return np.divide(np.diag(self.confusion), predicted, out=np.zeros(len(predicted)), where=predicted > 0)

    @property
    def recall(self):
        actual = self.confusion.sum(axis=1)
        return np.divide(np.diag(self.confusion), actual, out=np.zeros(len(actual)), where=actual > 0)

    def report(self):
        """Accuracy, per-class precision/recall and the confusion matrix as text."""
        width = max(len(n) for n in self.class_names + ["class"])
        lines = [f"accuracy {self.accuracy:.4f} on {int(self.confusion.sum())} images", ""]
        lines.append(f"{'class'.ljust(width)}  precision  recall  support")
        for name, p, r, n in zip(self.class_names, self.precision, self.recall, self.confusion.sum(axis=1)):
            lines.append(f"{name.ljust(width)}  {p:9.4f}  {r:6.4f}  {int(n):7d}")
        lines += ["", "confusion matrix (rows: true, columns: predicted)"]
        lines.append(" " * (width + 2) + " ".join(n[:8].rjust(8) for n in self.class_names))
        for name, row in zip(self.class_names, self.confusion):
            lines.append(name.ljust(width) + "  " + " ".join(str(int(v)).rjust(8) for v in row))
        if self.skipped:
            lines += ["", f"skipped {len(self.skipped)} unreadable files: " + ", ".join(p for p, _ in self.skipped[:5])]
        if self.ignored_folders:
            lines += ["", f"ignored folders of classes the model does not know: {', '.join(self.ignored_folders)}"]
        return "\n".join(lines)

    def save(self, directory):
        """Write ``evaluation.txt`` and ``confusion_matrix.png`` into ``directory``; returns their paths."""
        directory = Path(directory)
        text = atomic_write(directory / "evaluation.txt", lambda tmp: Path(tmp).write_text(self.report() + "\n"))
        return text, self.plot(directory / "confusion_matrix.png")

    def plot(self, path):
        """The confusion matrix as a PNG (like MATLAB's confusionchart)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = len(self.class_names)
        figure, axis = plt.subplots(figsize=(1.2 * n + 3, 1.2 * n + 2))
        axis.imshow(self.confusion, cmap="Blues")
        axis.set_xticks(range(n), self.class_names, rotation=45, ha="right")
        axis.set_yticks(range(n), self.class_names)
        axis.set_xlabel("Predicted class")
        axis.set_ylabel("True class")
        threshold = self.confusion.max() / 2
        for i in range(n):
            for j in range(n):
                axis.text(
                    j,
                    i,
                    int(self.confusion[i, j]),
                    ha="center",
                    va="center",
                    color="white" if self.confusion[i, j] > threshold else "black",
                )
        axis.set_title(f"Confusion matrix, accuracy {self.accuracy:.3f}")
        figure.tight_layout()
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
        plt.close(figure)
        return Path(path)


def confusion_matrix(labels, predictions, classes):
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def evaluate(model, data, class_names=None, batch_size=32, on_bad_file="skip"):
    """Score ``model`` on a folder-per-class tree (or an ``ImageFolder``).

    Class names come from the model (``attach_class_names``) unless given; the
    folder must have a sub-folder for each. Sub-folders of classes the model does
    not know are left out, and named (``Evaluation.ignored_folders``, the report).
    """
    names = class_names or class_names_of(model)
    ignored = []
    if isinstance(data, ImageFolder):
        folder = data
    else:
        if names is not None and Path(data).is_dir():
            ignored = sorted(
                p.name
                for p in Path(data).iterdir()
                if p.is_dir() and not p.name.startswith(".") and p.name not in names
            )
            if ignored:
                log.warning("ignoring folders of classes the model does not know: %s (it knows %s)", ignored, names)
        folder = ImageFolder.read(data, on_bad_file=on_bad_file, class_names=names)
    names = names or folder.class_names
    probabilities = model.predict(folder.dataset(batch_size).map(lambda x, y: x), verbose=0)
    confusion = confusion_matrix(folder.labels, probabilities.argmax(axis=1), len(names))
    return Evaluation(list(names), confusion, folder.skipped, ignored)


def predict(model, images, top=5, class_names=None):
    """Top-``top`` (class name, score) for each image path (MATLAB ``classify``).

    Images get torchvision's eval transform exactly (PIL resize).
    """
    names = class_names or class_names_of(model)
    batch = np.stack([eval_transform(image) for image in images])
    scores = model.predict(batch, verbose=0)
    if names is None:
        if scores.shape[1] == 1000:
            names = imagenet_class_names()
        else:
            names = [str(i) for i in range(scores.shape[1])]
    top = min(top, scores.shape[1])
    return [[(names[i], float(row[i])) for i in np.argsort(-row, kind="stable")[:top]] for row in scores]
