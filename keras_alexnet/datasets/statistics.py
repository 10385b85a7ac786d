"""Colour statistics of a sample of images: how like ImageNet's (``auto``'s rule) and how like the
images a model was trained on (``predict`` and ``evaluate`` warn when inputs are far from those)."""

from __future__ import annotations

import numpy as np

from keras_alexnet.preprocessing import IMAGENET_MEAN, IMAGENET_STD, load_image

SAMPLE_IMAGES = 64
# Inputs whose channel means sit further than this from the training images' (in ImageNet standard
# deviations, averaged over channels), or whose share of grey images differs by more than half,
# are far from what the model learned.
FAR_DISTANCE = 1.0
FAR_GREY_SHARE = 0.5


def colour_statistics(paths, sample=SAMPLE_IMAGES, seed=0):
    """``{"channel_means": [r, g, b], "grey_fraction", "images"}`` of up to ``sample`` of ``paths`` (drawn with
    ``seed``; files that do not decode are left out), pixels in [0, 1] at 64 x 64. None when none decodes."""
    paths = list(paths)
    if not paths:
        return None
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(sample, len(paths)), replace=False)
    means, grey = [], 0
    for index in chosen:
        try:
            pixels = np.asarray(load_image(paths[index]).resize((64, 64)), np.float32) / 255.0
        except (ValueError, OSError):
            continue
        means.append(pixels.reshape(-1, 3).mean(axis=0))
        if np.abs(pixels - pixels.mean(axis=2, keepdims=True)).mean() < 0.01:
            grey += 1
    if not means:
        return None
    return {
        "channel_means": [float(v) for v in np.mean(means, axis=0)],
        "grey_fraction": grey / len(means),
        "images": len(means),
    }


def distance(first, second):
    """The mean over RGB of |difference of channel means| / ImageNet's standard deviation."""
    return float(np.mean(np.abs(np.subtract(first, second)) / np.asarray(IMAGENET_STD)))


def imagenet_distance(statistics):
    """``distance`` of ``colour_statistics``' means from ImageNet's."""
    return distance(statistics["channel_means"], IMAGENET_MEAN)


def far_from(training, inputs):
    """Why ``inputs`` (``colour_statistics``) are far from the ``training`` images', or None when they are not."""
    if not training or not inputs:
        return None
    reasons = []
    apart = distance(training["channel_means"], inputs["channel_means"])
    if apart > FAR_DISTANCE:
        reasons.append(f"colour means {apart:.1f} ImageNet standard deviations apart")
    grey_then, grey_now = training["grey_fraction"], inputs["grey_fraction"]
    if abs(grey_then - grey_now) > FAR_GREY_SHARE:
        reasons.append(f"{grey_now:.0%} grey images where training had {grey_then:.0%}")
    return "; ".join(reasons) or None
