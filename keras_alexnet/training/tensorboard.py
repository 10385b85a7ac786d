"""TensorBoard for a run: Keras's ``TensorBoard`` callback (per-epoch scalars), the learning rate at
every step, and optionally Grad-CAM overlays of a few validation images after each epoch."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet.explain.gradcam import grad_cam
from keras_alexnet.explain.pictures import display_image, overlay


class StepLearningRate(keras.callbacks.Callback):
    """Writes the base learning rate of every step to ``log_dir/steps`` (schedules change it per step),
    and the momentum (beta_1) where a momentum schedule cycles it."""

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = str(Path(log_dir) / "steps")
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        momentum = getattr(optimizer, "momentum_schedule", None)
        with self._writer.as_default():
            tf.summary.scalar("learning_rate", rate, step=step)
            if momentum is not None:
                tf.summary.scalar("momentum", float(keras.ops.convert_to_numpy(momentum(step))), step=step)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()


class GradCamImages(keras.callbacks.Callback):
    """After each epoch, Grad-CAM overlays of a few fixed images under ``log_dir/images``.

    ``model``: the full model (the fitted one may be the part after an activation cache).
    """

    def __init__(self, log_dir, model, images, layer="conv5"):
        super().__init__()
        self.full_model = model
        self.images = np.asarray(images, np.float32)
        self.layer = layer
        self.log_dir = str(Path(log_dir) / "images")
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        cam = grad_cam(self.full_model, self.images, layer=self.layer)
        pictures = np.stack([overlay(display_image(x), m) for x, m in zip(self.images, cam.maps)])
        with self._writer.as_default():
            tf.summary.image("grad_cam", pictures, step=epoch + 1, max_outputs=len(pictures))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def tensorboard_callbacks(log_dir, full_model=None, images=None):
    """Keras's ``TensorBoard`` (epoch scalars) plus the per-step rate, and Grad-CAM images when ``images`` are given.

    ``log_dir``: the run directory's ``tensorboard/`` (``RunDirectory.tensorboard``).
    """
    log_dir = Path(log_dir)
    callbacks = [
        keras.callbacks.TensorBoard(str(log_dir), histogram_freq=0, write_graph=False, update_freq="epoch"),
        StepLearningRate(log_dir),
    ]
    if images is not None and len(images):
        callbacks.append(GradCamImages(log_dir, full_model, images))
    return callbacks
