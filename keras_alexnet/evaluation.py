"""Evaluate and predict: accuracy, per-class precision/recall, confusion matrix, top-k for any number of images."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np

from keras_alexnet._utils.choices import TTA_VIEWS
from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.plotting import pyplot
from keras_alexnet._utils.text import SafeCSVWriter, printable
from keras_alexnet.calibration import CalibrationScores, ece_floor, tempered
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.datasets.files import decoded_batches, image_files
from keras_alexnet.datasets.files import ignored as ignored_path
from keras_alexnet.datasets.statistics import colour_statistics, far_from
from keras_alexnet.deployment import Classifier, KerasClassifier, TestTimeAugmented
from keras_alexnet.explain.confidence import reliability_diagram
from keras_alexnet.layers import class_names_of, temperature_of
from keras_alexnet.options import PREDICT
from keras_alexnet.preprocessing import imagenet_class_names
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.tta import describe

log = logging.getLogger("keras_alexnet.evaluation")


@dataclasses.dataclass
class Evaluation:
    """Scores of a classifier on a labelled set."""

    class_names: list
    confusion: np.ndarray  # rows: true class, columns: predicted class
    skipped: list
    ignored_folders: list = dataclasses.field(default_factory=list)  # class folders the model does not know
    probabilities: np.ndarray | None = None  # (images, classes), what the model answered
    labels: np.ndarray | None = None  # the images' true classes
    temperature: float | None = None  # the model's fitted temperature (layers.Temperature), if any
    tta: bool = False  # averaged over test-time augmentation's views

    def calibration(self):
        """``CalibrationScores`` (ECE, NLL, Brier) of the model's probabilities, or None without them."""
        if self.probabilities is None or not len(self.labels):
            return None
        return CalibrationScores.of(self.probabilities, self.labels)

    def probabilities_before(self):
        """The probabilities before the temperature (with it divided back out), or None without one."""
        if self.temperature is None or self.probabilities is None:
            return None
        return tempered(self.probabilities, 1.0 / self.temperature)

    def calibration_before(self):
        """The scores before the temperature, or None."""
        before = self.probabilities_before()
        if before is None or not len(self.labels):
            return None
        return CalibrationScores.of(before, self.labels)

    def calibration_line(self):
        """One line: the scores, before and after the temperature when the model has one, and the
        ECE a perfectly calibrated model would show on as many images (``calibration.ece_floor``)."""
        after = self.calibration()
        if after is None:
            return None
        floor = (
            f"; a perfectly calibrated model would show ECE {ece_floor(self.probabilities):.4f} on these "
            f"{len(self.labels)} images by chance"
        )
        before = self.calibration_before()
        if before is None:
            return f"calibration: {after.line()} (the model records no fitted temperature){floor}"
        return (
            f"calibration (temperature {self.temperature:.3f}): ECE {before.ece:.4f} -> {after.ece:.4f}, "
            f"NLL {before.nll:.4f} -> {after.nll:.4f}, Brier {before.brier:.4f} -> {after.brier:.4f}{floor}"
        )

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

    @property
    def balanced_accuracy(self):
        """The mean recall over the classes that have images (scikit-learn's ``balanced_accuracy_score``):
        a model that always answers the largest class scores 1 / classes, not that class's share."""
        actual = self.confusion.sum(axis=1)
        return float(np.mean(self.recall[actual > 0])) if np.any(actual > 0) else 0.0

    @property
    def f1(self):
        """Per-class F1: the harmonic mean of precision and recall (0 where both are 0)."""
        total = self.precision + self.recall
        return np.divide(2 * self.precision * self.recall, total, out=np.zeros(len(total)), where=total > 0)

    @property
    def macro_f1(self):
        """The mean F1 over the classes that have images or predictions (scikit-learn's ``average="macro"``)."""
        present = (self.confusion.sum(axis=1) + self.confusion.sum(axis=0)) > 0
        return float(np.mean(self.f1[present])) if np.any(present) else 0.0

    def headline(self):
        """One line: accuracy, balanced accuracy and macro-F1 on how many images."""
        return (
            f"accuracy {self.accuracy:.4f}, balanced accuracy {self.balanced_accuracy:.4f}, macro-F1 "
            f"{self.macro_f1:.4f} on {int(self.confusion.sum())} images"
        )

    # Past this many classes the confusion matrix is drawn without numbers in its cells and
    # left out of the text, where the most confused pairs stand for it.
    LABELLED_CELLS = 30

    def most_confused(self, k=20):
        """The ``k`` most frequent mistakes, [(actual, predicted, images)], most first (ties by name)."""
        wrong = self.confusion.copy()
        np.fill_diagonal(wrong, 0)
        actual, predicted = np.nonzero(wrong)
        order = np.lexsort((predicted, actual, -wrong[actual, predicted]))[:k]
        return [
            (self.class_names[actual[i]], self.class_names[predicted[i]], int(wrong[actual[i], predicted[i]]))
            for i in order
        ]

    def report(self):
        """Accuracy, per-class precision/recall and the confusion matrix (or, for many classes, the most
        confused pairs) as text."""
        width = max(len(n) for n in self.class_names + ["class"])
        lines = [self.headline()]
        if self.tta:
            lines.append(f"with test-time augmentation: {describe()}")
        if self.calibration_line():
            lines.append(self.calibration_line())
        lines.append("")
        lines.append(f"{'class'.ljust(width)}  precision  recall      F1  support")
        rows = zip(self.class_names, self.precision, self.recall, self.f1, self.confusion.sum(axis=1))
        for name, p, r, f, n in rows:
            lines.append(f"{name.ljust(width)}  {p:9.4f}  {r:6.4f}  {f:6.4f}  {int(n):7d}")
        if len(self.class_names) <= self.LABELLED_CELLS:
            lines += ["", "confusion matrix (rows: true, columns: predicted)"]
            lines.append(" " * (width + 2) + " ".join(n[:8].rjust(8) for n in self.class_names))
            for name, row in zip(self.class_names, self.confusion):
                lines.append(name.ljust(width) + "  " + " ".join(str(int(v)).rjust(8) for v in row))
        else:
            lines += ["", f"most confused (of {len(self.class_names)} classes; the matrix is in confusion_matrix.png)"]
            lines += [f"{a} -> {p}: {n}" for a, p, n in self.most_confused()] or ["no image was misclassified"]
        if self.skipped:
            lines += ["", f"skipped {len(self.skipped)} unreadable files: " + ", ".join(p for p, _ in self.skipped[:5])]
        if self.ignored_folders:
            lines += ["", f"ignored folders of classes the model does not know: {', '.join(self.ignored_folders)}"]
        return "\n".join(lines)

    def save(self, directory):
        """Write ``evaluation.txt``, ``confusion_matrix.png`` and (with probabilities) ``reliability.png``
        into ``directory``; returns their paths."""
        directory = Path(directory)
        text = atomic_write(directory / "evaluation.txt", lambda tmp: Path(tmp).write_text(self.report() + "\n"))
        paths = [text, self.plot(directory / "confusion_matrix.png")]
        if self.calibration() is not None:
            paths.append(self.plot_reliability(directory / "reliability.png"))
        return tuple(paths)

    def plot_reliability(self, path):
        """The reliability diagram (accuracy against confidence in 15 bins), before and after the temperature."""
        return reliability_diagram(self.probabilities, self.labels, path, before=self.probabilities_before())

    def plot(self, path):
        """The confusion matrix as a PNG (like MATLAB's confusionchart).

        Up to ``LABELLED_CELLS`` classes each cell shows its count; past that it is a heat map
        of a fixed size (class names on the axes up to 100 classes), so memory and time stay
        bounded however many classes there are.
        """
        plt = pyplot()

        n = len(self.class_names)
        labelled = n <= self.LABELLED_CELLS
        side = min(1.2 * n + 3, 16) if labelled else 14
        figure, axis = plt.subplots(figsize=(side, side - 1))
        image = axis.imshow(self.confusion, cmap="Blues", interpolation="nearest")
        if n <= 100:
            size = 10 if labelled else max(4, 10 - n // 15)
            axis.set_xticks(
                range(n),
                self.class_names,
                rotation=45 if labelled else 90,
                ha="right" if labelled else "center",
                fontsize=size,
            )
            axis.set_yticks(range(n), self.class_names, fontsize=size)
        else:
            axis.set_xticks([])
            axis.set_yticks([])
        order = "" if n <= 100 else " (in the order of the class names)"
        axis.set_xlabel("Predicted class" + order)
        axis.set_ylabel("True class" + order)
        if labelled:
            threshold = self.confusion.max() / 2
            for i in range(n):
                for j in range(n):
                    colour = "white" if self.confusion[i, j] > threshold else "black"
                    axis.text(j, i, int(self.confusion[i, j]), ha="center", va="center", color=colour)
        else:
            figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="images")
        axis.set_title(f"Confusion matrix, {n} classes, accuracy {self.accuracy:.3f}")
        figure.tight_layout()
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
        plt.close(figure)
        return Path(path)


def tta_change(plain, augmented):
    """What test-time augmentation changed: accuracy and balanced accuracy, without and with it."""
    return (
        f"test-time augmentation ({len(TTA_VIEWS)} views, blended): accuracy {plain.accuracy:.4f} -> {augmented.accuracy:.4f} "
        f"({augmented.accuracy - plain.accuracy:+.4f}), balanced accuracy {plain.balanced_accuracy:.4f} -> "
        f"{augmented.balanced_accuracy:.4f}"
    )


def tta_gain(plain, augmented, plain_seconds, augmented_seconds):
    """One line: ``tta_change`` and what test-time augmentation cost per image."""
    images = max(int(plain.confusion.sum()), 1)
    return (
        f"{tta_change(plain, augmented)}; {1000 * plain_seconds / images:.1f} -> "
        f"{1000 * augmented_seconds / images:.1f} ms per image"
    )


def confusion_matrix(labels, predictions, classes):
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def evaluate(model, data, class_names=None, batch_size=32, on_bad_file="skip", tta=False):
    """Score ``model`` (a Keras model, or a ``deployment.Classifier``: any exported file) on a
    folder-per-class tree (or an ``ImageFolder``).

    Class names come from the model (``attach_class_names``) unless given; the
    folder must have a sub-folder for each. Sub-folders of classes the model does
    not know are left out, and named (``Evaluation.ignored_folders``, the report).
    ``tta``: blend the probabilities of test-time augmentation's views
    (``tta.blend``). The ``Evaluation`` keeps the probabilities, for calibration.
    """
    if isinstance(model, KerasClassifier):
        model = model.model  # the tf.data pipeline, batched
    temperature = model.temperature if isinstance(model, Classifier) else temperature_of(model)
    if tta:
        model = TestTimeAugmented(model if isinstance(model, Classifier) else KerasClassifier(model))
    names = class_names or (model.class_names if isinstance(model, Classifier) else class_names_of(model))
    ignored = []
    if isinstance(data, ImageFolder):
        folder = data
    else:
        if names is not None and Path(data).is_dir():
            ignored = sorted(
                p.name for p in Path(data).iterdir() if p.is_dir() and not ignored_path(p) and p.name not in names
            )
            if ignored:
                log.warning("ignoring folders of classes the model does not know: %s (it knows %s)", ignored, names)
        folder = ImageFolder.read(data, on_bad_file=on_bad_file, class_names=names)
    names = names or folder.class_names
    if isinstance(model, Classifier):  # an exported file: its own input, through its runtime
        if model.outputs != len(names):
            raise ValueError(f"{model.path} has {model.outputs} outputs but the data has {len(names)} classes {names}.")
        labels, scores, skipped = [], [], list(folder.skipped)
        label_of = dict(zip(folder.paths, folder.labels))
        for x, kept, bad in decoded_batches(folder.paths, batch_size, transform=model.transform):
            skipped += [(str(path), reason) for path, reason in bad]
            if kept:
                scores.append(np.asarray(model.probabilities(x), np.float64))
                labels += [label_of[str(path)] for path in kept]
        probabilities = np.concatenate(scores) if scores else np.zeros((0, len(names)))
        labels = np.asarray(labels, np.int64)
        skipped_now = skipped
    else:
        probabilities = np.asarray(model.predict(folder.dataset(batch_size).map(lambda x, y: x), verbose=0), np.float64)
        labels, skipped_now = np.asarray(folder.labels, np.int64), folder.skipped
    confusion = confusion_matrix(labels, probabilities.argmax(axis=1), len(names))
    return Evaluation(list(names), confusion, skipped_now, ignored, probabilities, labels, temperature, tta)


@dataclasses.dataclass
class Prediction:
    """One image's top classes ``[(name, probability)]``, or why it could not be read (``error``)."""

    path: Path
    top: list
    error: str | None = None
    min_confidence: float = 0.0  # below it the answer is "unknown"

    UNKNOWN = "unknown"

    @property
    def answer(self):
        """The top class, or ``"unknown"`` when its probability is under ``min_confidence`` (None if skipped)."""
        if not self.top:
            return None
        name, probability = self.top[0]
        return name if probability >= self.min_confidence else self.UNKNOWN


def _top_classes(scores, top, names):
    top = min(top, scores.shape[1])
    return [[(names[i], float(row[i])) for i in np.argsort(-row, kind="stable")[:top]] for row in scores]


def _output_names(outputs):
    """Names for a model without class names: ImageNet's for 1000 outputs, else the indices."""
    return list(imagenet_class_names()) if outputs == 1000 else [str(i) for i in range(outputs)]


def predict_files(
    model, images, top=PREDICT.top, batch_size=32, class_names=None, min_confidence=PREDICT.min_confidence, tta=False
):
    """Yield a ``Prediction`` per image of ``images`` (files and folders, searched recursively), as it goes.

    ``model``: a Keras model or a ``deployment.Classifier`` (any exported file). Images are
    decoded a batch at a time (torchvision's eval transform, on threads), so memory holds one
    batch however many images there are. A file that cannot be read (not an image, damaged, a
    broken link, over PIL's decompression-bomb limit) yields a ``Prediction`` with its ``error``
    and the others go on. ``min_confidence``: a ``Prediction.answer`` under it is ``"unknown"``.
    ``tta``: blend test-time augmentation's views (``tta.blend``).
    """
    classifier = model if isinstance(model, Classifier) else KerasClassifier(model)
    if tta:
        classifier = TestTimeAugmented(classifier)
    files, skipped = image_files(images)
    for path, reason in skipped:
        yield Prediction(path, [], reason)
    names = class_names or classifier.class_names
    for x, kept, bad in decoded_batches(files, batch_size, transform=classifier.transform):
        for path, reason in bad:
            yield Prediction(path, [], reason)
        if not kept:
            continue
        scores = classifier.probabilities(x)
        names = names or _output_names(scores.shape[1])
        for path, classes in zip(kept, _top_classes(scores, top, names)):
            yield Prediction(path, classes, min_confidence=min_confidence)


def predict(model, images, top=PREDICT.top, class_names=None):
    """Top-``top`` (class name, score) for each image (MATLAB ``classify``); a list, one per image.

    Images get torchvision's eval transform exactly (PIL resize). An image that cannot be
    read raises ``ValueError``; ``predict_files`` streams any number of images and skips those.
    """
    results = []
    for prediction in predict_files(model, images, top=top, class_names=class_names):
        if prediction.error is not None:
            raise ValueError(prediction.error)
        results.append(prediction.top)
    return results


def write_predictions(predictions, path, top, echo=None):
    """Write ``Prediction``s as CSV, row by row, calling ``echo(prediction)`` on each as it is written.

    Columns: ``path``, ``answer`` (the top class, or ``unknown`` under the prediction's
    ``min_confidence``), ``class`` and ``probability`` (the top class), ``class_2``,
    ``probability_2``... up to ``top``, and ``error`` (why an image was skipped). Cells that a
    spreadsheet would evaluate (``=``, ``+``, ``-``, ``@``) start with ``'``; a file name that is
    not UTF-8 shows its bytes as ``\\xNN``. The rows go to a temporary file renamed onto ``path`` at
    the end, and also when the stream stops early (Ctrl-C, an error): the rows written are kept.
    Returns (images predicted, images skipped).
    """
    counts = [0, 0]
    ranks = [""] + [f"_{k}" for k in range(2, top + 1)]
    header = ["path", "answer", *[f"{kind}{rank}" for rank in ranks for kind in ("class", "probability")], "error"]

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = SafeCSVWriter(handle)
            writer.writerow(header)
            try:
                for prediction in predictions:
                    cells = [value for name, score in prediction.top for value in (name, f"{score:.6f}")]
                    cells += [""] * (2 * top - len(cells))
                    writer.writerow([prediction.path, prediction.answer or "", *cells, prediction.error or ""])
                    handle.flush()
                    counts[prediction.error is not None] += 1
                    if echo is not None:
                        echo(prediction)
            except BaseException as error:
                handle.close()
                os.replace(tmp, path)  # what was predicted before the stop is not lost
                error.add_note(f"{printable(path)} holds the {sum(counts)} rows written before it.")
                raise

    atomic_write(path, write)
    return tuple(counts)


def far_from_training(model_path, images):
    """A warning line when ``images`` (files) look far from the images the run that wrote ``model_path``
    trained on (``datasets.statistics.far_from``; the run's ``options.json`` records those), else None."""
    if model_path is None:
        return None
    run = RunDirectory(Path(model_path).parent)
    try:
        training = run.result().image_statistics
    except (ValueError, OSError):
        return None
    reason = far_from(training, colour_statistics(images))
    if reason is None:
        return None
    return (
        f"warning: these images are far from those {printable(model_path)} was trained on ({reason}): its answers, "
        "and how sure it is of them, may mean little here."
    )


def seen_in_training(model_path, items):
    """A note when ``items`` (image files or folders) are, hold or lie inside the folder the run that wrote
    ``model_path`` trained on (its ``data.json``), else None: scores on training images say little."""
    if model_path is None:
        return None
    try:
        folder = json.loads(RunDirectory(Path(model_path).parent).data.read_text()).get("data")
    except (OSError, ValueError, AttributeError):
        return None
    if not folder:
        return None
    folder = Path(folder)
    overlapping = []
    for item in items:
        path = Path(item).resolve()
        if path == folder or folder in path.parents or path in folder.parents:
            overlapping.append(printable(item))
    if not overlapping:
        return None
    return (
        f"note: {', '.join(overlapping)} {'is' if len(overlapping) == 1 else 'are'} in or around {printable(folder)}, "
        f"the folder {printable(model_path)} was trained on: scores on images it trained on say little about new "
        "images. Evaluate on a folder it never saw."
    )
