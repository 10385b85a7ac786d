"""Interpretation of a trained classifier on a labelled folder (fastai's ``ClassificationInterpretation``):
the top losses with their Grad-CAM, the most confused class pairs, and a 2-D map of the
penultimate features (scikit-learn's t-SNE, or PCA for few images)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.plotting import pyplot
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.evaluation import Evaluation, confusion_matrix
from keras_alexnet.explain.gradcam import GradCamExplainer
from keras_alexnet.explain.pictures import display_image, overlay
from keras_alexnet.explain.targets import class_names, logits, scores_model
from keras_alexnet.layers import temperature_of
from keras_alexnet.preprocessing import eval_transform


@dataclasses.dataclass
class Interpretation:
    """Predictions of ``model`` on a labelled set, with the penultimate features."""

    model: keras.Model
    paths: list
    labels: np.ndarray
    probabilities: np.ndarray
    features: np.ndarray  # the input of the class-score layer
    class_names: list
    skipped: list

    @classmethod
    def from_folder(cls, model, data, batch_size=32):
        """Run ``model`` over a folder-per-class tree (or an ``ImageFolder``) with the model's class names."""
        names = class_names(model)
        folder = data if isinstance(data, ImageFolder) else ImageFolder.read(data, class_names=names)
        if len(folder) == 0:
            raise ValueError(f"no readable images in {data}: nothing to interpret.")
        scorer = scores_model(model)
        temperature = temperature_of(model) or 1.0  # the model's calibrated probabilities
        features, scores = [], []
        for x, _ in folder.dataset(batch_size):
            penultimate = scorer(x, training=False)
            features.append(keras.ops.convert_to_numpy(penultimate))
            scores.append(
                keras.ops.convert_to_numpy(keras.ops.softmax(logits(model, penultimate) / temperature, axis=-1))
            )
        return cls(
            model,
            [Path(p) for p in folder.paths],
            np.asarray(folder.labels),
            np.concatenate(scores),
            np.concatenate(features).reshape(len(folder), -1),
            list(names),
            folder.skipped,
        )

    @property
    def predictions(self):
        return self.probabilities.argmax(axis=1)

    @property
    def losses(self):
        """Cross-entropy of each image: -log p(actual class)."""
        actual = self.probabilities[np.arange(len(self.labels)), self.labels]
        return -np.log(np.clip(actual, 1e-12, 1.0))

    def evaluation(self):
        """Accuracy, precision/recall and the confusion matrix (``evaluation.Evaluation``)."""
        matrix = confusion_matrix(self.labels, self.predictions, len(self.class_names))
        return Evaluation(
            self.class_names,
            matrix,
            self.skipped,
            probabilities=self.probabilities,
            labels=self.labels,
            temperature=temperature_of(self.model),
        )

    def top_losses(self, k=9):
        """Indices of the ``k`` images with the highest loss, highest first."""
        return list(np.argsort(-self.losses, kind="stable")[:k])

    def most_confused(self, min_count=1, k=None):
        """[(actual, predicted, count)] of wrong predictions, most frequent first (fastai's ``most_confused``);
        ``k``: only the first ``k``."""
        pairs = self.evaluation().most_confused(k=len(self.labels) if k is None else k)
        return [pair for pair in pairs if pair[2] >= min_count]

    def plot_top_losses(self, path, k=9, layer="conv5"):
        """A gallery of the top-``k`` losses: each image beside its Grad-CAM for the predicted class."""
        plt = pyplot()

        chosen = self.top_losses(k)
        explainer = GradCamExplainer(self.model, layer)
        columns = 3
        rows = max(1, -(-len(chosen) // columns))
        figure, axes = plt.subplots(rows, 2 * columns, figsize=(4.2 * columns, 2.9 * rows), squeeze=False)
        for axis in axes.ravel():
            axis.axis("off")
        for n, index in enumerate(chosen):
            x = eval_transform(self.paths[index])[None]
            cam = explainer(x)
            image = display_image(x[0])
            predicted, actual = self.predictions[index], self.labels[index]
            row, column = divmod(n, columns)
            left, right = axes[row, 2 * column], axes[row, 2 * column + 1]
            left.imshow(image)
            left.set_title(
                f"{self.class_names[predicted]} / {self.class_names[actual]}\n"
                f"loss {self.losses[index]:.2f}, p {self.probabilities[index, actual]:.2f}",
                fontsize=8,
            )
            right.imshow(overlay(image, cam.maps[0]))
            right.set_title(f"Grad-CAM ({self.class_names[predicted]})", fontsize=8)
        figure.suptitle("Top losses: predicted / actual, loss, probability of the actual class", fontsize=10)
        figure.tight_layout()
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=90))
        plt.close(figure)
        return Path(path)

    def feature_map(self, method="auto", seed=0):
        """2-D coordinates of the penultimate features: t-SNE (scikit-learn), or PCA below 30 images."""
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE

        count = len(self.features)
        if method == "auto":
            method = "tsne" if count >= 30 else "pca"
        if count < 3:
            raise ValueError(f"a feature map needs at least 3 images, got {count}.")
        if method == "pca":
            return PCA(n_components=2, random_state=seed).fit_transform(self.features), "PCA"
        if method != "tsne":
            raise ValueError(f"method {method!r}: use 'tsne', 'pca' or 'auto'.")
        reduced = PCA(n_components=min(50, count, self.features.shape[1]), random_state=seed).fit_transform(
            self.features
        )
        perplexity = float(min(30, (count - 1) / 3))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            reduced
        ), "t-SNE"

    def plot_feature_map(self, path, method="auto"):
        """The feature map coloured by actual class; misclassified images ringed in red."""
        plt = pyplot()

        points, name = self.feature_map(method)
        figure, axis = plt.subplots(figsize=(7, 6))
        if len(self.class_names) <= 10:
            colours = plt.get_cmap("tab10").colors
            for label, class_name in enumerate(self.class_names):
                members = self.labels == label
                axis.scatter(*points[members].T, s=18, color=colours[label], label=class_name, alpha=0.8)
        else:  # one colour per class from a continuous map, no legend of hundreds of names
            axis.scatter(*points.T, s=12, c=self.labels, cmap="turbo", alpha=0.8)
        wrong = self.predictions != self.labels
        axis.scatter(
            *points[wrong].T,
            s=70,
            facecolors="none",
            edgecolors="red",
            linewidths=1.4,
            label=f"misclassified ({int(wrong.sum())})",
        )
        axis.set_title(f"{name} of the penultimate features ({len(points)} images)")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.legend(loc="best", fontsize=8)
        figure.tight_layout()
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
        plt.close(figure)
        return Path(path)
