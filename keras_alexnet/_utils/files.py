"""Small file helpers: atomic writes and the Keras home folder."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path

from keras_alexnet._utils.signals import handling


def keras_home() -> Path:
    """``$KERAS_HOME`` (default ``~/.keras``), where Keras caches models and data sets."""
    return Path(os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"))


def atomic_write(path, write):
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file.

    The temporary name ends in the target's name (so ``.keras``/``.weights.h5``
    suffixes that Keras checks are kept), does not exist when ``write`` is called,
    and gets the usual umask-based mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.name, dir=path.parent)
    os.close(handle)
    # The writer creates the file afresh: on ext4, rewriting a file truncated to zero makes
    # close() flush it to disk (auto_da_alloc), which made each training backup seconds slower.
    os.remove(tmp)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def check_new_file(path, overwrite=False, flag="--out"):
    """Before any work: refuse ``path`` when it is a folder, or an existing file without ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder: give a file name.")
    if path.exists() and not overwrite:
        raise ValueError(f"{flag} {path} exists: give another name, or --overwrite (overwrite=True) to replace it.")


def check_folder_target(path, flag="--out"):
    """Before any work: refuse a ``path`` that is a file (a folder is to be written there)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder (it is created if missing), or move the file.")


def check_writable(folder, what, fix):
    """Before any work: ``folder`` can be created and a file written in it, or ``ValueError`` saying
    why, naming ``what`` was to go there and the ``fix``. (A real write: permissions alone do not
    tell a read-only disk, nor stop root.)"""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=".tmp-write-check-", dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"cannot write {what} into {folder} ({error.strerror or error}): {fix}") from None


def cleanup_on_signals(signals=(signal.SIGTERM, signal.SIGHUP)):
    """Turn termination signals into ``SystemExit`` while the block runs, so ``finally`` clauses and
    temporary directories are cleaned up (Python's default for SIGTERM ends the process without them).
    Only in the main thread, where Python allows signal handlers; elsewhere it does nothing."""

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    return handling(signals, stop)


def check_not_source(out, source, flag="--out", source_flag="--model"):
    """Before any work: refuse an ``out`` that is ``source``, holds it, or lies inside it (paths resolved,
    symbolic links followed), so that writing the one never replaces the other."""
    target, read = Path(out).resolve(), Path(source).resolve()
    if target == read or target in read.parents or read in target.parents:
        relation = "is" if target == read else ("holds" if target in read.parents else "is inside")
        raise ValueError(
            f"{flag} {out} {relation} {source_flag} {source} (resolved: {read}): writing it would replace the model "
            f"being read; nothing was changed. Give {flag} another path."
        )


@contextlib.contextmanager
def nothing_left_if(errors, folder, files=()):
    """When the block raises one of ``errors`` (a refusal before any work), remove what it created: ``files``
    that did not exist before it, and ``folder`` and its parents that did not, each only while empty."""
    folder = Path(folder).absolute()
    created = [path for path in (*reversed(folder.parents), folder) if not path.exists()]
    new_files = [Path(file) for file in files if not Path(file).exists()]
    try:
        yield
    except errors:
        for file in new_files:
            file.unlink(missing_ok=True)
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
