"""Turning maps and grids into pictures: heat-map overlays, upscaled grids, PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from keras_alexnet._utils.files import atomic_write
from keras_alexnet.preprocessing import IMAGENET_MEAN, IMAGENET_STD


def display_image(x):
    """A preprocessed image (normalized, H x W x 3) back to 8-bit RGB."""
    rgb = np.asarray(x, np.float32) * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def colour_map(values, name="jet"):
    """Values in [0, 1] as RGB floats through a matplotlib colour map."""
    import matplotlib

    return matplotlib.colormaps[name](np.clip(values, 0, 1))[..., :3].astype(np.float32)


def overlay(image, heat, image_weight=0.5, name="jet"):
    """A heat map in [0, 1] blended over an 8-bit RGB image (pytorch-grad-cam's ``show_cam_on_image``)."""
    blended = (1 - image_weight) * colour_map(heat, name) + image_weight * (np.asarray(image, np.float32) / 255.0)
    blended /= max(float(blended.max()), 1e-7)
    return (blended * 255).astype(np.uint8)


def signed_overlay(image, values, image_weight=0.5):
    """A map with signs (occlusion drops) over an image: red where the class needs the region, blue against."""
    limit = max(float(np.abs(values).max()), 1e-7)
    return overlay(image, 0.5 + 0.5 * np.asarray(values) / limit, image_weight, name="bwr")


def to_uint8(grid, scale=1, name=None):
    """A [0, 1] grid (grey or RGB) as 8-bit pixels, each upscaled ``scale`` times (nearest), grey through ``name``."""
    grid = np.asarray(grid, np.float32)
    if grid.ndim == 2 and name is not None:
        grid = colour_map(grid, name)
    pixels = (np.clip(grid, 0, 1) * 255).astype(np.uint8)
    if scale > 1:
        pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    return pixels


def save_png(pixels, path):
    """Write 8-bit pixels as a PNG (atomically); returns the path."""
    image = Image.fromarray(np.asarray(pixels))
    return atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))
