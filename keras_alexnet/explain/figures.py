"""Explanations written as labelled PNG figures, one per image (what ``keras-alexnet explain`` writes)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._utils.choices import EXPLAIN_METHODS
from keras_alexnet._utils.files import atomic_write
from keras_alexnet.explain.activations import activation_grid, activations, filter_grid
from keras_alexnet.explain.gradcam import GradCamExplainer
from keras_alexnet.explain.occlusion import occlusion_sensitivity
from keras_alexnet.explain.pictures import display_image, overlay, signed_overlay
from keras_alexnet.explain.targets import class_names, logits, scores_model
from keras_alexnet.preprocessing import IMAGE_SUFFIXES, eval_transform

log = logging.getLogger("keras_alexnet.explain")

METHODS = EXPLAIN_METHODS


def image_files(items):
    """Image files from files and folders (searched recursively, sorted)."""
    found = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"image {path} does not exist.")
    if not found:
        raise FileNotFoundError(f"no images in {', '.join(map(str, items))} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return found


def load_images(paths):
    """(preprocessed batch, the paths that decoded, [(path, reason)] of those that did not)."""
    arrays, kept, skipped = [], [], []
    for path in paths:
        try:
            arrays.append(eval_transform(path))
            kept.append(Path(path))
        except (ValueError, OSError) as error:
            skipped.append((Path(path), str(error)))
            log.debug("skipped %s: %s", path, error)
    x = np.stack(arrays) if arrays else np.zeros((0, 224, 224, 3), np.float32)
    return x, kept, skipped


def probabilities(model, x):
    """Class probabilities (softmax of the logits) of a batch."""
    scores = logits(model, scores_model(model)(x, training=False))
    return keras.ops.convert_to_numpy(keras.ops.softmax(scores, axis=-1))


def _figure(panels, title, path, colorbar=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.4))
    axes = np.atleast_1d(axes)
    for axis, (image, caption) in zip(axes, panels):
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
        axis.set_title(caption, fontsize=10)
        axis.axis("off")
    if colorbar is not None:
        mappable = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(*colorbar[1]), cmap=colorbar[0])
        figure.colorbar(mappable, ax=axes[-1], fraction=0.046, pad=0.04)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)
    return Path(path)


def explain(model, images, method="gradcam", layer=None, target=None, out="explain"):
    """Write one PNG per image (or one for ``filters``) into ``out``; returns (written paths, skipped images).

    ``layer``: the convolution for Grad-CAM (default conv5), the layer for activations
    (default conv2), the convolution for filters (default conv1). ``target``: a class
    name or index (default: each image's predicted class).
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not known: use one of {', '.join(METHODS)}.")
    out = Path(out)
    if method == "filters":
        name = layer or "conv1"
        grid = filter_grid(model, name)
        count = int(model.get_layer(name).kernel.shape[-1])
        return [
            _figure([(grid, f"{count} filters")], f"{name} filters of {model.name}", out / f"{name}_filters.png")
        ], []
    x, kept, skipped = load_images(image_files(images))
    names = class_names(model)
    written = []
    if method == "gradcam":
        explainer = GradCamExplainer(model, layer or "conv5")
    for index, path in enumerate(kept):
        image = display_image(x[index])
        probs = probabilities(model, x[index : index + 1])[0]
        top = int(np.argmax(probs))
        label = f"predicted {names[top]} ({probs[top]:.2f})"
        stem = out / f"{path.stem}.{method}.png"
        if method == "gradcam":
            cam = explainer(x[index : index + 1], target)
            chosen = int(cam.classes[0])
            panels = [(image, label), (overlay(image, cam.maps[0]), f"Grad-CAM of {names[chosen]} on {cam.layer}")]
            written.append(_figure(panels, path.name, stem, colorbar=("jet", (0, 1))))
        elif method == "occlusion":
            result = occlusion_sensitivity(model, x[index], target)
            limit = float(np.abs(result.map).max())
            caption = f"drop in p({names[result.target]}) when masked"
            panels = [(image, label), (signed_overlay(image, result.map), caption)]
            written.append(_figure(panels, path.name, stem, colorbar=("bwr", (-limit, limit))))
        else:
            name = layer or "conv2"
            maps = activations(model, x[index : index + 1], name)[0]
            grid = activation_grid(maps)
            panels = [(image, label), (grid, f"{name}: {maps.shape[-1]} channels of {maps.shape[0]}x{maps.shape[1]}")]
            written.append(_figure(panels, path.name, stem))
    return written, skipped
