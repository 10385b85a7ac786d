"""Image folders (one sub-folder per class) as streaming tf.data pipelines.

``ImageFolder`` is torchvision's ImageFolder / MATLAB's
``imageDatastore(..., 'LabelSource', 'foldernames')``: one sub-folder per class,
class names sorted; hidden folders and macOS's ``__MACOSX`` are not classes. Files are checked once when the folder is read; a corrupt or
non-image file is reported with its path and skipped (or raises with
``on_bad_file="raise"``), so no epoch crashes half-way.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_alexnet._utils.text import printable
from keras_alexnet.datasets.files import ignored, link_problem, walk
from keras_alexnet.datasets.pipeline import augmented_batches, decode, epochs_of, image_pipeline, shard_of
from keras_alexnet.preprocessing import CROP_SIZE, IMAGE_SUFFIXES, load_image

log = logging.getLogger("keras_alexnet.datasets")


class DatasetError(ValueError):
    """A dataset that cannot be used as given; the message says why and what to do."""


def check_image(path):
    """None if ``path`` decodes as an image, else the reason it does not.

    The check decodes with the pipelines' own decoder (``preprocessing.load_image``),
    so a file that passes is a file that trains.
    """
    try:
        load_image(path)
        return None
    except (ValueError, FileNotFoundError) as error:
        return str(error)
    except Exception as error:  # PIL raises many types for unusual files
        return f"{type(error).__name__}: {error}"


def _one_path_per_file(listed, skipped):
    """{label: [paths]} from ``[(label, path)]`` with each file once: a file reached by several paths
    (symbolic links) keeps the path that is not a link (where it lives), else the first; the others
    are added to ``skipped``, naming the path kept."""
    chosen = {}
    for label, path in listed:
        identity = None if link_problem(path) else os.path.realpath(path)
        if identity is None:
            chosen[("broken", str(path))] = (label, path)
            continue
        if identity not in chosen or (chosen[identity][1].is_symlink() and not path.is_symlink()):
            chosen[identity] = (label, path)
    kept = {}
    for label, path in chosen.values():
        kept.setdefault(label, []).append(path)
    taken = {id(path) for _, path in chosen.values()}
    for _, path in listed:
        if id(path) not in taken:
            first = chosen[os.path.realpath(path)][1]
            reason = f"the same file as {printable(first)} (reached twice): counted once"
            log.warning("skipping %s: %s", printable(path), reason)
            skipped.append((str(path), reason))
    return {label: sorted(paths) for label, paths in kept.items()}


@dataclasses.dataclass
class ImageFolder:
    """Image paths with integer labels and the class names they index."""

    paths: list
    labels: list
    class_names: list
    skipped: list = dataclasses.field(default_factory=list)  # (path, reason)

    @classmethod
    def read(cls, directory, on_bad_file="skip", class_names=None):
        """Read a folder-per-class tree (JPEG, PNG, BMP, GIF, TIFF, WebP).

        Args:
            on_bad_file: ``"skip"`` (log the path and reason, leave it out) or ``"raise"``.
            class_names: fix the classes (e.g. a test set read with a model's classes).
        """
        # Absolute: the paths go to Ray's trials and workers, which start in another working directory.
        directory = Path(directory).absolute()
        if on_bad_file not in ("skip", "raise"):
            raise ValueError(f"on_bad_file={on_bad_file!r}: use 'skip' or 'raise'.")
        if not directory.is_dir():
            raise DatasetError(f"{directory} is not a folder. Give a folder with one sub-folder of images per class.")
        found = sorted(p.name for p in directory.iterdir() if p.is_dir() and not ignored(p))
        names = list(class_names) if class_names is not None else found
        if class_names is not None and set(names) - set(found):
            raise DatasetError(f"{directory} lacks the class folders {sorted(set(names) - set(found))}.")
        if len(names) < 2:
            raise DatasetError(
                f"{directory} has {len(names)} class folder(s) {names}; classification needs at "
                "least 2, one sub-folder of images per class."
            )
        listed, skipped = [], []
        folders = [directory / other for other in found]
        for label, name in enumerate(names):
            links_away = []
            files = walk(directory / name, [folder for folder in folders if folder.name != name], links_away)
            for path, reason in links_away:
                log.warning("skipping %s: %s", printable(path), reason)
                skipped.append((str(path), reason))
            listed += [(label, path) for path in files]
        kept = _one_path_per_file(listed, skipped)
        paths, labels = [], []
        for label, name in enumerate(names):
            good = 0
            for path in kept.get(label, []):
                reason = link_problem(path) or (
                    f"not an image file (suffix {path.suffix!r})"
                    if path.suffix.lower() not in IMAGE_SUFFIXES
                    else check_image(path)
                )
                if reason:
                    if on_bad_file == "raise":
                        raise DatasetError(
                            f"{printable(path)}: {reason}. Remove or replace it, or skip such files: leave out "
                            "--fail-on-bad-file (Python: on_bad_file='skip')."
                        )
                    log.warning("skipping %s: %s", printable(path), reason)
                    skipped.append((str(path), reason))
                    continue
                paths.append(str(path))
                labels.append(label)
                good += 1
            if good == 0:
                raise DatasetError(
                    f"class folder {directory / name} has no readable images ({', '.join(IMAGE_SUFFIXES)})."
                )
        return cls(paths, labels, names, skipped)

    def __len__(self):
        return len(self.paths)

    def to_dict(self, absolute=False):
        """Paths, labels and class names as JSON-ready values (``absolute``: paths resolved)."""
        paths = [str(Path(p).resolve()) if absolute else str(p) for p in self.paths]
        return {"paths": paths, "labels": [int(v) for v in self.labels], "class_names": list(self.class_names)}

    @classmethod
    def from_dict(cls, record):
        """The folder ``to_dict`` described (the files are not read again)."""
        return cls(record["paths"], record["labels"], record["class_names"])

    def counts(self):
        """Images per class name."""
        return {name: int(np.sum(np.asarray(self.labels) == i)) for i, name in enumerate(self.class_names)}

    def split(self, fraction, seed=0):
        """Stratified random split, like MATLAB ``splitEachLabel(imds, fraction, 'randomized')``.

        Each class contributes ``round(fraction * n)`` images to the first part, but
        at least one and at most ``n - 1``: both parts get every class. A class with
        fewer than two images cannot be split, and the error names it.
        """
        if not 0 < fraction < 1:
            raise ValueError(f"fraction={fraction!r}: use a number strictly between 0 and 1.")
        rng = np.random.default_rng(seed)
        labels = np.asarray(self.labels)
        too_small = {
            name: int(np.sum(labels == i)) for i, name in enumerate(self.class_names) if np.sum(labels == i) < 2
        }
        if too_small:
            raise DatasetError(
                f"classes {too_small} have fewer than 2 images: a split needs at least one image per class on "
                "each side (training and validation). Add images, or give a separate validation folder."
            )
        first, second = [], []
        for label in range(len(self.class_names)):
            members = np.flatnonzero(labels == label)
            rng.shuffle(members)
            cut = min(max(int(round(fraction * len(members))), 1), len(members) - 1)
            first += members[:cut].tolist()
            second += members[cut:].tolist()
        # The files skipped when the folder was read go with the first part, once: a run records them.
        kept, held_out = self._subset(sorted(first)), self._subset(sorted(second))
        kept.skipped = list(self.skipped)
        return kept, held_out

    def shared_with(self, other):
        """The paths of ``other`` that are also images of this set: the same file, by any path
        (links and hard links included)."""

        def identity(path):
            info = os.stat(path)
            return info.st_dev, info.st_ino

        mine = {identity(path) for path in self.paths}
        return [path for path in other.paths if identity(path) in mine]

    def _epochs(self, batch_size, augment, seed, image_size, epochs, start_epoch, balanced, shard=None):
        paths = tf.constant(self._path_bytes())
        labels = tf.constant(np.asarray(self.labels, np.int32))
        count = len(self.paths)
        shards, index = shard or (1, 0)

        def make_epoch(epoch, order):
            # A worker's share of the epoch's order, decoded by this worker alone.
            mine = shard_of(order, count, batch_size, shard)
            examples = tf.data.Dataset.from_tensor_slices(mine).map(
                lambda i: (tf.gather(paths, i), tf.gather(labels, i))
            )
            examples = examples.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            first = epoch * count + index
            return augmented_batches(examples, batch_size, True, augment, seed, image_size, first, stride=shards)

        return epochs_of(count, seed, epochs, start_epoch, make_epoch, self.labels if balanced else None)

    def _path_bytes(self):
        # As the file system names them: a name that is not UTF-8 (surrogate-escaped in Python) is
        # not a string TensorFlow can hold, its bytes are.
        return np.asarray([os.fsencode(path) for path in self.paths], dtype=object)

    def _subset(self, indices):
        return ImageFolder([self.paths[i] for i in indices], [self.labels[i] for i in indices], list(self.class_names))

    def dataset(
        self,
        batch_size=32,
        training=False,
        augment="none",
        seed=0,
        image_size=CROP_SIZE,
        epochs=None,
        start_epoch=0,
        balanced=False,
        shard=None,
    ):
        """A batched, prefetched tf.data pipeline of (normalised image, label).

        Training pipelines reshuffle every epoch (MATLAB Shuffle 'every-epoch').
        Evaluation uses torchvision's ImageNet eval transform. With ``epochs``, a
        training pipeline holds epochs ``start_epoch`` .. ``epochs - 1``, each ordered
        and augmented from (seed, epoch) alone, so a resumed run repeats nothing and
        skips nothing; fit it with ``steps_per_epoch=ceil(len(self) / batch_size)``.
        ``balanced`` (with ``epochs``): every batch drawn evenly over the classes. ``shard`` (with
        ``epochs``): ``(workers, index)``, this worker's share of each epoch (every ``workers``-th
        example from ``index``), augmented as in the whole epoch.
        """
        if balanced and not (training and epochs is not None):
            raise ValueError("balanced sampling orders training epochs: give training=True and epochs.")
        if shard is not None and not (training and epochs is not None):
            raise ValueError("shard splits training epochs: give training=True and epochs.")
        if training and epochs is not None:
            return self._epochs(batch_size, augment, seed, image_size, epochs, start_epoch, balanced, shard)
        ds = tf.data.Dataset.from_tensor_slices((self._path_bytes(), np.asarray(self.labels, np.int32)))
        if training:
            ds = ds.shuffle(len(self.paths), seed=seed, reshuffle_each_iteration=True)
        return image_pipeline(
            ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE), batch_size, training, augment, seed, image_size
        )
