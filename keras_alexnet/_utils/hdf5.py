"""HDF5 files opened as data only: what the file holds, never bytes of another file.

HDF5 lets a dataset keep its bytes in any other file (an *external* dataset), map other
files' datasets (a *virtual* dataset), or link to an object in another file (an *external
link*). Reading such a file reads those files: a ``.weights.h5`` from elsewhere could carry
``/etc/passwd`` into a model's bias. Keras refuses them in ``.keras`` archives; every HDF5
file keras-alexnet opens itself goes through ``open_hdf5``, which refuses them too.
"""

from __future__ import annotations

import contextlib
import os

import h5py


class ForeignReferenceError(ValueError):
    """An HDF5 file that points at other files; the message names the object."""


def references_elsewhere(handle):
    """``[(object name, what it is)]`` of the objects in an open HDF5 file that read other files."""
    found = []

    def visit(group, prefix):
        for name in group:
            path = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                found.append((path, f"an external link to {link.filename}:{link.path}"))
                continue
            if isinstance(link, h5py.SoftLink):
                continue  # a path inside this file; its target is visited where it lives
            item = group[name]
            if isinstance(item, h5py.Group):
                visit(item, path)
            elif item.external:
                found.append((path, f"an external dataset stored in {os.fsdecode(item.external[0][0])}"))
            elif item.is_virtual:
                found.append((path, "a virtual dataset mapping other files"))

    visit(handle, "")
    return found


@contextlib.contextmanager
def open_hdf5(path):
    """``h5py.File(path, "r")``, refusing a file with external or virtual datasets or external links."""
    with h5py.File(path, "r") as handle:
        found = references_elsewhere(handle)
        if found:
            name, what = found[0]
            raise ForeignReferenceError(
                f"{path} is refused: {name} is {what}. keras-alexnet reads only the data inside a weights file, "
                "never another file it points to; save the weights again with model.save_weights."
            )
        yield handle
