"""The shapes data set of the MATLAB guide, generated: circles, rectangles, triangles, stars.

Each image has one shape of random size, position, rotation and colour on a
random background colour. The same seed writes byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPE_CLASSES = ("circle", "rectangle", "star", "triangle")


def _polygon(kind, cx, cy, radius, angle, rng):
    if kind == "triangle":
        corners = [(radius, angle + k * 2 * math.pi / 3) for k in range(3)]
    elif kind == "rectangle":
        aspect = rng.uniform(0.45, 1.0)
        half_w, half_h = radius, radius * aspect
        corners = [
            (math.hypot(half_w, half_h), angle + a)
            for a in (
                math.atan2(half_h, half_w),
                math.pi - math.atan2(half_h, half_w),
                math.pi + math.atan2(half_h, half_w),
                -math.atan2(half_h, half_w),
            )
        ]
    else:  # star: five points, inner radius 0.4
        corners = [((radius if k % 2 == 0 else 0.4 * radius), angle + k * math.pi / 5) for k in range(10)]
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in corners]


def _colour(rng, avoid=None):
    while True:
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if avoid is None or sum(abs(a - b) for a, b in zip(colour, avoid)) > 200:
            return colour


def draw_shape(kind, size, rng):
    """One RGB image (PIL) of ``size`` x ``size`` pixels with a shape of class ``kind``."""
    background = _colour(rng)
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.18, 0.42) * size
    cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
    fill = _colour(rng, avoid=background)
    if kind == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    else:
        draw.polygon(_polygon(kind, cx, cy, radius, rng.uniform(0, 2 * math.pi), rng), fill=fill)
    return image


def generate_shapes(directory, per_class=100, size=128, seed=0):
    """Write ``per_class`` PNGs of each shape class into ``directory/<class>/``.

    Returns the directory. Deterministic: the same arguments write identical files.
    """
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    for kind in SHAPE_CLASSES:
        (directory / kind).mkdir(parents=True, exist_ok=True)
    for index in range(per_class):
        for kind in SHAPE_CLASSES:
            draw_shape(kind, size, rng).save(directory / kind / f"{kind}_{index:04d}.png", optimize=False)
    return directory
