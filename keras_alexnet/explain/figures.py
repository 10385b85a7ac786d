"""Explanations written as labelled PNG figures, one per image (what ``keras-alexnet explain`` writes)."""

from __future__ import annotations

import collections
import hashlib
import logging
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._utils.choices import EXPLAIN_METHODS
from keras_alexnet._utils.files import atomic_write, check_folder_target
from keras_alexnet._utils.plotting import pyplot
from keras_alexnet.datasets.files import decoded_batches, image_files
from keras_alexnet.explain.activations import activation_grid, activations, filter_grid
from keras_alexnet.explain.gradcam import GradCamExplainer
from keras_alexnet.explain.occlusion import occlusion_sensitivity
from keras_alexnet.explain.pictures import display_image, overlay, signed_overlay
from keras_alexnet.explain.targets import class_names, logits, scores_model

log = logging.getLogger("keras_alexnet.explain")

METHODS = EXPLAIN_METHODS


MAX_STEM_BYTES = 160  # file systems allow 255 bytes a name; the rest is for ".<method>.png" and a counter


def _short(name):
    """``name`` cut to ``MAX_STEM_BYTES`` (UTF-8), a digest of the whole name keeping cut names distinct."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= MAX_STEM_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:12]
    kept = encoded[: MAX_STEM_BYTES - 13].decode("utf-8", "ignore")
    return f"{kept}-{digest}"


def output_names(paths, method):
    """A distinct PNG name per image: ``<stem>.<method>.png``; images in different folders that share
    a file name get their folders' names first (``cats_001.gradcam.png``, ``dogs_001.gradcam.png``); a name
    too long for the file system is shortened (``_short``), still distinct."""
    stems = collections.Counter(Path(p).stem for p in paths)
    names, taken = [], set()
    for path in map(Path, paths):
        name = path.stem
        if stems[name] > 1:
            parents = [part for part in path.parent.parts if part not in (path.anchor, ".", "..")]
            name = f"{parents.pop()}_{name}" if parents else name
            while name in taken and parents:
                name = f"{parents.pop()}_{name}"
        name = _short(name)
        base, count = name, 1
        while name in taken:
            count += 1
            name = f"{base}-{count}"
        taken.add(name)
        names.append(f"{name}.{method}.png")
    return names


def probabilities(model, x):
    """Class probabilities (softmax of the logits) of a batch."""
    scores = logits(model, scores_model(model)(x, training=False))
    return keras.ops.convert_to_numpy(keras.ops.softmax(scores, axis=-1))


def _figure(panels, title, path, colorbar=None):
    import matplotlib

    plt = pyplot()

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


def _explain_one(model, x, path, picture, method, names, layer, target, explainer):
    """One image's figure (``x``: its preprocessed batch of one) written to ``picture``."""
    image = display_image(x[0])
    probs = probabilities(model, x)[0]
    top = int(np.argmax(probs))
    label = f"predicted {names[top]} ({probs[top]:.2f})"
    if method == "gradcam":
        cam = explainer(x, target)
        chosen = int(cam.classes[0])
        panels = [(image, label), (overlay(image, cam.maps[0]), f"Grad-CAM of {names[chosen]} on {cam.layer}")]
        return _figure(panels, path.name, picture, colorbar=("jet", (0, 1)))
    if method == "occlusion":
        result = occlusion_sensitivity(model, x[0], target)
        limit = float(np.abs(result.map).max())
        caption = f"drop in p({names[result.target]}) when masked"
        panels = [(image, label), (signed_overlay(image, result.map), caption)]
        return _figure(panels, path.name, picture, colorbar=("bwr", (-limit, limit)))
    name = layer or "conv2"
    maps = activations(model, x, name)[0]
    grid = activation_grid(maps)
    panels = [(image, label), (grid, f"{name}: {maps.shape[-1]} channels of {maps.shape[0]}x{maps.shape[1]}")]
    return _figure(panels, path.name, picture)


def explain(model, images, method="gradcam", layer=None, target=None, out="explain"):
    """Write one PNG per image (or one for ``filters``) into ``out``; returns (written paths, skipped images).

    ``images``: files and folders (searched recursively), read a batch at a time; an image
    that cannot be read is skipped and returned with its reason. Images in different
    folders that share a file name get distinct pictures (``output_names``).
    ``layer``: the convolution for Grad-CAM (default conv5), the layer for activations
    (default conv2), the convolution for filters (default conv1). ``target``: a class
    name or index (default: each image's predicted class).
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not known: use one of {', '.join(METHODS)}.")
    check_folder_target(out)
    out = Path(out)
    if method == "filters":
        name = layer or "conv1"
        grid = filter_grid(model, name)
        count = int(model.get_layer(name).kernel.shape[-1])
        return [
            _figure([(grid, f"{count} filters")], f"{name} filters of {model.name}", out / f"{name}_filters.png")
        ], []
    files, skipped = image_files(images)
    names = class_names(model)
    explainer = GradCamExplainer(model, layer or "conv5") if method == "gradcam" else None
    pictures = dict(zip(files, output_names(files, method)))
    written = []
    for batch, kept, bad in decoded_batches(files, batch_size=16):
        skipped += bad
        for index, path in enumerate(kept):
            x = batch[index : index + 1]
            written.append(_explain_one(model, x, path, out / pictures[path], method, names, layer, target, explainer))
    return written, skipped
