"""Image files as a user gives them (files and folders), listed and decoded in bounded batches.

What ``predict`` and ``explain`` read: folders are searched recursively; hidden files and
folders and macOS's ``__MACOSX`` are left out; a broken or looping symbolic link, a file
that does not decode (or is over PIL's decompression-bomb limit) is named with its reason
and skipped, never the end of the others. Batches are decoded on a few threads (PIL
releases the GIL), so memory holds one batch, not every image.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
from pathlib import Path

import numpy as np

from keras_alexnet.preprocessing import CROP_SIZE, IMAGE_SUFFIXES, eval_transform

IGNORED_FOLDERS = ("__MACOSX",)  # what macOS puts in zip files beside the real ones


def ignored(path):
    """Whether a file or folder is not the user's data: hidden (``.name``) or ``__MACOSX``."""
    return path.name.startswith(".") or path.name in IGNORED_FOLDERS


def link_problem(path):
    """Why a symbolic link cannot be read (broken, or a loop), or None."""
    path = Path(path)
    if not path.is_symlink():
        return None
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link that loops (it points back at itself)"
        return f"a broken symbolic link (its target {os.readlink(path)} does not exist)"
    return None


def walk(folder, others=(), skipped=None):
    """Files under ``folder`` (recursively, sorted), leaving out what ``ignored`` names.

    Broken and looping symbolic links are listed too (``link_problem`` says why they fail).
    A linked folder that leads to an ancestor of ``folder`` (``up -> ..``) or into one of
    ``others`` (the other class folders) would read other folders' images as this one's: it
    is left out, and ``(link, reason)`` added to ``skipped`` when a list is given. A file
    reached twice (through links) is listed once.
    """
    top = os.path.realpath(folder)
    # Resolved at the first linked folder only: ``read`` passes every other class folder, and resolving them all
    # for each class made reading 300 classes take 1.3 s (90,000 lookups), 1,000 classes 12 s.
    elsewhere = []
    found, seen, files_seen = [], set(), {}

    def leads_away(link):
        target = os.path.realpath(link)
        if top == target or top.startswith(target.rstrip(os.sep) + os.sep):
            return f"a symbolic link to {target}, which holds {folder} itself: it is not followed"
        if others and not elsewhere:
            elsewhere.extend(os.path.realpath(other) for other in others)
        for other in elsewhere:
            if target == other or target.startswith(other + os.sep) or other.startswith(target.rstrip(os.sep) + os.sep):
                return f"a symbolic link into another class folder ({target}): it is not followed"
        return None

    for root, folders, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a linked folder met twice: once is enough
            folders[:] = []
            continue
        seen.add(real)
        kept = []
        for name in sorted(folders):
            path = Path(root) / name
            if ignored(path):
                continue
            reason = leads_away(path) if path.is_symlink() and not link_problem(path) else None
            if reason:
                if skipped is not None:
                    skipped.append((path, reason))
                continue
            kept.append(name)
        folders[:] = kept
        for name in sorted(files):
            path = Path(root) / name
            if ignored(path):
                continue
            if not link_problem(path):
                identity = os.path.realpath(path)
                if identity in files_seen:
                    first = files_seen[identity]
                    if first.is_symlink() and not path.is_symlink():  # keep the path where the file lives
                        found.remove(first)
                        files_seen[identity], first, path = path, path, first
                        found.append(first)
                    if skipped is not None:
                        skipped.append((path, f"the same file as {first} (reached twice): counted once"))
                    continue
                files_seen[identity] = path
            found.append(path)
        # os.walk lists a broken link to a folder among the files; a loop among the folders.
        for name in list(folders):
            if link_problem(Path(root) / name):
                folders.remove(name)
                found.append(Path(root) / name)
    return sorted(found)


def image_files(items):
    """(image files, [(path, reason)] skipped) from files and folders, in the order given.

    Folders are searched recursively; a file given by name is taken whatever its suffix
    (it is decoded to find out). A path that does not exist raises ``FileNotFoundError``.
    """
    found, skipped = [], []
    for item in items:
        path = Path(item)
        if path.is_dir():
            for file in walk(path, skipped=skipped):
                problem = link_problem(file)
                if problem:
                    skipped.append((file, problem))
                elif file.suffix.lower() in IMAGE_SUFFIXES:
                    found.append(file)
        elif link_problem(path):
            skipped.append((path, link_problem(path)))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"image {path} does not exist.")
    if not found and not skipped:
        raise FileNotFoundError(f"no images in {', '.join(map(str, items))} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return found, skipped


def _decode(path, transform):
    try:
        return transform(path), None
    except (ValueError, OSError) as error:
        return None, str(error)


def decoded_batches(paths, batch_size=32, threads=4, transform=eval_transform):
    """Yield ``(x, kept, skipped)`` per batch of ``paths``: ``transform`` of the images that decode
    (default torchvision's eval transform: float32, ``(n, 224, 224, 3)``; a transform whose arrays
    differ in shape gives a list), their paths, and ``[(path, reason)]`` of the rest.

    One batch is decoded while the caller works on the previous one.
    """
    paths = [Path(p) for p in paths]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        pending = None
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            future = [pool.submit(_decode, path, transform) for path in chunk], chunk
            if pending is not None:
                yield _collect(*pending)
            pending = future
        if pending is not None:
            yield _collect(*pending)


def _collect(futures, chunk):
    arrays, kept, skipped = [], [], []
    for future, path in zip(futures, chunk):
        array, reason = future.result()
        if reason is None:
            arrays.append(array)
            kept.append(path)
        else:
            skipped.append((path, reason))
    if not arrays:
        return np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.float32), kept, skipped
    same_shape = all(array.shape == arrays[0].shape for array in arrays)
    return (np.stack(arrays) if same_shape else arrays), kept, skipped
