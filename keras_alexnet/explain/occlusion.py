"""Occlusion sensitivity (MATLAB's ``occlusionSensitivity``): how much the class probability drops
when a patch of the image is masked, as a map over the image.

Every masked copy of the image is made at once and the model runs on them in batches,
so a 224 x 224 image (196 patches of 45 x 45 at stride 14) takes seconds on 2 cores.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_alexnet.explain.targets import class_index, logits, scores_model


@dataclasses.dataclass
class Occlusion:
    """``map`` (H, W): the mean drop in the class probability over the patches covering each pixel."""

    map: np.ndarray
    target: int
    probability: float  # of the class, on the unmasked image
    patch: int
    stride: int


def patch_positions(length, patch, stride):
    """Start offsets of patches along one side, the last one flush with the edge."""
    if patch > length:
        raise ValueError(f"patch={patch} is larger than the image side {length}: use a smaller patch.")
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def occlusion_sensitivity(model, image, target=None, patch=45, stride=14, mask_value=None, batch_size=64):
    """Occlusion map of one preprocessed image (H, W, 3) for ``target`` (default: the predicted class).

    ``mask_value``: what a patch is filled with (default: the image's mean per channel,
    MATLAB's 'auto'). Positive values mark regions the class depends on.
    """
    if not (isinstance(patch, int) and patch >= 1 and isinstance(stride, int) and stride >= 1):
        raise ValueError(f"patch={patch!r}, stride={stride!r}: use whole numbers of pixels, at least 1.")
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"occlusion_sensitivity takes one image (H, W, 3), got shape {image.shape}.")
    height, width, _ = image.shape
    fill = image.mean(axis=(0, 1)) if mask_value is None else np.broadcast_to(np.float32(mask_value), (3,))
    scorer = scores_model(model)

    def probabilities(batch):
        return keras.ops.convert_to_numpy(keras.ops.softmax(logits(model, scorer(batch, training=False)), axis=-1))

    base = probabilities(image[None])[0]
    chosen = int(np.argmax(base)) if target is None else class_index(model, target)
    boxes = [
        (top, left) for top in patch_positions(height, patch, stride) for left in patch_positions(width, patch, stride)
    ]
    drops = np.empty(len(boxes), np.float32)
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        masked = np.repeat(image[None], len(chunk), axis=0)
        for k, (top, left) in enumerate(chunk):
            masked[k, top : top + patch, left : left + patch] = fill
        drops[start : start + len(chunk)] = base[chosen] - probabilities(masked)[:, chosen]
    total = np.zeros((height, width), np.float32)
    count = np.zeros((height, width), np.float32)
    for drop, (top, left) in zip(drops, boxes):
        total[top : top + patch, left : left + patch] += drop
        count[top : top + patch, left : left + patch] += 1
    return Occlusion(total / np.maximum(count, 1), chosen, float(base[chosen]), patch, stride)
