"""Grad-CAM (Selvaraju et al. 2017) on any convolution, computed as pytorch-grad-cam computes it.

The class score is the logit (before the softmax); each channel of the convolution's
output is weighted by the mean of the score's gradient over its positions; the weighted
sum goes through a ReLU, is scaled to [0, 1] per image, then resized bilinearly to
the input (half-pixel centres, as OpenCV's ``resize``) and scaled to [0, 1] again. tests/test_explain.py checks
the maps against the ``grad-cam`` package on the same converted weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from keras_alexnet.explain.targets import class_index, convolution, logits, scores_model


@dataclasses.dataclass
class GradCam:
    """Grad-CAM of a batch: ``maps`` (N, H, W) in [0, 1] at the input's size, ``raw`` at the layer's."""

    maps: np.ndarray
    raw: np.ndarray
    classes: np.ndarray  # the class each map explains
    scores: np.ndarray  # that class's logit
    layer: str


class GradCamExplainer:
    """Grad-CAM of one model and layer, with the gradient function traced once.

    ``explainer(x, target=None)``: ``x`` is a batch of preprocessed images (what the
    model takes); ``target`` a class name or index for every image, or None for each
    image's predicted class.
    """

    def __init__(self, model, layer="conv5"):
        self.model = model
        self.layer = convolution(model, layer).name
        self._scores = scores_model(model, [self.layer])

    @tf.function(reduce_retracing=True)
    def _gradients(self, x, target):
        with tf.GradientTape() as tape:
            activations, features = self._scores(x, training=False)
            tape.watch(activations)
            scores = logits(self.model, features)
            chosen = tf.where(target >= 0, target, tf.argmax(scores, axis=-1, output_type=tf.int32))
            score = tf.gather(scores, chosen, batch_dims=1)
        gradients = tape.gradient(score, activations)
        # Under mixed precision the layer computes in (b)float16: the map is made in float32.
        return tf.cast(activations, tf.float32), tf.cast(gradients, tf.float32), chosen, score

    def __call__(self, x, target=None):
        x = tf.convert_to_tensor(np.asarray(x, np.float32))
        index = -1 if target is None else class_index(self.model, target)
        targets = tf.fill([tf.shape(x)[0]], tf.constant(index, tf.int32))
        activations, gradients, chosen, score = self._gradients(x, targets)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        raw = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy()
        return GradCam(scale_to_input(raw, x.shape[1:3]), raw, chosen.numpy(), score.numpy(), self.layer)


def grad_cam(model, x, layer="conv5", target=None):
    """Grad-CAM maps of a batch ``x`` (see ``GradCamExplainer``); for many calls, keep an explainer."""
    return GradCamExplainer(model, layer)(x, target)


def _unit(maps):
    shifted = maps - maps.min(axis=(1, 2), keepdims=True)
    return shifted / (1e-7 + shifted.max(axis=(1, 2), keepdims=True))


def scale_to_input(raw, size):
    """Each map scaled to [0, 1], resized bilinearly to ``size``, and scaled to [0, 1] again.

    The second scaling is pytorch-grad-cam's (after it combines layers): the resized
    map's peak falls between the layer's cells, a few per cent under 1.
    """
    scaled = _unit(np.asarray(raw, np.float32))
    resized = tf.image.resize(scaled[..., None], size, method="bilinear", antialias=False)
    return _unit(resized.numpy()[..., 0])
