"""Pictures of how far a model's confidence can be trusted: the reliability diagram and the
accuracy/coverage curve against a ``--min-confidence`` threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.plotting import pyplot
from keras_alexnet.calibration import (
    ECE_BINS,
    accuracy_coverage,
    ece_floor,
    expected_calibration_error,
    reliability_bins,
)


def _pyplot():
    return pyplot()


def _save(figure, path):
    plt = _pyplot()
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)
    return Path(path)


def reliability_diagram(probabilities, labels, path, before=None, bins=ECE_BINS):
    """Accuracy against mean confidence per bin (a calibrated model lies on the diagonal), as a PNG.

    ``before``: the probabilities before calibration, drawn beside for comparison. The bar
    under each point is the share of images in that bin.
    """
    plt = _pyplot()
    figure, (axis, share) = plt.subplots(2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    curves = [("after calibration" if before is not None else "model", probabilities, "tab:blue")]
    if before is not None:
        curves.insert(0, ("before calibration", before, "tab:orange"))
    edges = np.linspace(0, 1, bins + 1)
    width = (edges[1] - edges[0]) / (len(curves) + 0.5)
    for offset, (label, scores, colour) in enumerate(curves):
        counts, confidence, accuracy = reliability_bins(scores, labels, bins)
        used = counts > 0
        ece = expected_calibration_error(scores, labels, bins)
        axis.plot(confidence[used], accuracy[used], "o-", color=colour, label=f"{label} (ECE {ece:.3f})")
        share.bar(edges[:-1] + offset * width, counts / max(counts.sum(), 1), width=width, align="edge", color=colour)
    axis.set_ylabel("Accuracy")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left")
    axis.set_title(
        f"Reliability on {len(labels)} images ({bins} confidence bins)\n"
        f"a perfectly calibrated model: ECE {ece_floor(probabilities):.3f} by chance",
        fontsize=11,
    )
    share.set_xlabel("Confidence (top probability)")
    share.set_ylabel("Share of images")
    share.grid(alpha=0.3)
    return _save(figure, path)


def coverage_curve(probabilities, labels, path):
    """Accuracy on the images answered, and the share answered, against the ``--min-confidence``
    threshold (images under it are answered "unknown"), as a PNG."""
    plt = _pyplot()
    thresholds, coverage, accuracy = accuracy_coverage(probabilities, labels)
    figure, axis = plt.subplots(figsize=(7, 4.2))
    axis.plot(thresholds, accuracy, color="tab:blue", label="accuracy on the images answered")
    axis.plot(thresholds, coverage, color="tab:green", label="share answered (coverage)")
    axis.set_xlabel("--min-confidence P (under it: 'unknown')")
    axis.set_ylim(0, 1.02)
    axis.set_xlim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower left")
    axis.set_title(f"Accuracy and coverage against the threshold, {len(labels)} images")
    return _save(figure, path)
