"""Disk space: a clear error before (or instead of) a write that cannot fit."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

# ENOSPC: the disk is full; EDQUOT: a quota; EFBIG: a file-size limit (ulimit -f).
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
MB = 1 << 20


class DiskFullError(OSError):
    """A write that did not fit; the message names the folder, the space needed and what to do."""


def is_disk_full(error):
    """Whether ``error`` says the disk (or a quota, or a file-size limit) is full.

    h5py reports a failed write with errno 0 and the reason in the text, hence the text check.
    """
    if isinstance(error, DiskFullError) or getattr(error, "errno", None) in _FULL:
        return True
    text = str(error)
    return "No space left on device" in text or "File too large" in text or "Disk quota exceeded" in text


def free_bytes(folder):
    """Free bytes on the disk that holds ``folder`` (its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def disk_full_message(folder, what, needed, then, error=None):
    """One line: no room in ``folder`` for ``what`` (``needed`` bytes), what is free, and ``then``.

    ``error``: the write's own error, when there was one (a file-size limit is named as such).
    """
    if error is not None and (getattr(error, "errno", None) == errno.EFBIG or "File too large" in str(error)):
        return (
            f"a file-size limit (ulimit -f) stopped writing {what} into {folder}: it needs about "
            f"{needed / MB:.1f} MB. Raise the limit. {then}"
        )
    return (
        f"no space left in {folder} for {what}: it needs about {needed / MB:.1f} MB, "
        f"{free_bytes(folder) / MB:.1f} MB are free. {then}"
    )


def ensure_space(folder, needed, what, then):
    """Raise ``DiskFullError`` before writing ``needed`` bytes into ``folder`` when they cannot fit."""
    if free_bytes(folder) < needed:
        raise DiskFullError(disk_full_message(folder, what, needed, then))


def weights_bytes(model):
    """Bytes of ``model``'s variables and its optimizer's: about what a weights file of it takes."""
    variables = list(model.weights)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        variables += list(optimizer.variables)
    total = 0
    for variable in variables:
        count = 1
        for size in variable.shape:
            count *= int(size)
        bits = re.search(r"\d+$", str(variable.dtype))
        total += count * (int(bits.group()) // 8 if bits else 1)
    return total
