"""A run directory: locked while a run writes into it, never taken over by accident.

- A second run into a directory that a live process is training in is refused, naming
  that process (``run.lock`` holds its PID; a lock left by a dead process is replaced).
- A new run into a directory that holds a previous run's files is refused unless the
  user says ``overwrite`` (replace them) or ``resume`` (continue that run).
- ``resume`` needs a backup that loads: its metadata and weights file are checked, and
  the class count compared, before anything in the directory is changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import h5py

LOCK_NAME = "run.lock"
RUN_FILES = (
    "model.keras",
    "best.keras",
    "log.csv",
    "history.json",
    "options.json",
    "progress.png",
    "backup",
    "auto.json",
    "auto_comparison",
    "validation.json",
    "report.html",
    "tensorboard",
)
BACKUP_METADATA = "training_metadata.json"


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def locked(run_dir):
    """Hold ``run_dir/run.lock`` (with this process's PID) while the block runs."""
    run_dir = Path(run_dir)
    lock = run_dir / LOCK_NAME
    while True:
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            text = lock.read_text().strip() if lock.exists() else ""
            pid = int(text) if text.isdigit() else None
            if pid is not None and pid != os.getpid() and _process_alive(pid):
                raise RunDirectoryError(
                    f"{run_dir} is in use by another training run (process {pid}, see {lock}). Wait for it to "
                    "finish, stop it, or choose another --run-dir."
                ) from None
            lock.unlink(missing_ok=True)  # left by a process that no longer runs
    with os.fdopen(handle, "w") as file:
        file.write(f"{os.getpid()}\n")
    try:
        yield run_dir
    finally:
        lock.unlink(missing_ok=True)


def check_new_run(run_dir, overwrite):
    """Refuse to start a run over a previous run's files unless ``overwrite``; with it, remove them.

    Only the files a run writes (``RUN_FILES``) are removed; anything else in the folder stays.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"--run-dir {run_dir} is a file; give a folder (it is created if missing).")
    previous = [name for name in RUN_FILES if (run_dir / name).exists()]
    if previous and not overwrite:
        raise RunDirectoryError(
            f"{run_dir} holds a previous run ({', '.join(previous)}); nothing was changed. Continue it with "
            "--resume (resume=True), replace it with --overwrite (overwrite=True), or choose another --run-dir."
        )
    for name in previous:
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for extra in ("best.best.json", "activation_cache"):
        path = run_dir / extra
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_resumable(run_dir, classes, with_stage=False):
    """The backup a resumed run starts from: it must exist, load, and have ``classes`` outputs.

    Returns the number of epochs it holds (and, ``with_stage``, the stage of a two-stage
    recipe that wrote it: 1 or 2). Raises ``RunDirectoryError`` naming the file
    and what to do; nothing in the directory is changed.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"--run-dir {run_dir} is a file; give the folder of the run to resume.")
    metadata = run_dir / "backup" / BACKUP_METADATA
    if not metadata.exists():
        state = (
            "does not exist" if not run_dir.exists() else "has no backup/ to resume from (finished, or never started)"
        )
        raise RunDirectoryError(f"nothing to resume: {run_dir} {state}. Start a new run without --resume.")
    try:
        record = json.loads(metadata.read_text())
        weights = run_dir / "backup" / record["weights"]
        epochs = int(record["epoch"])
        stage = int(record.get("stage", 1))
    except (ValueError, KeyError, TypeError) as error:
        raise RunDirectoryError(
            f"the backup metadata {metadata} is damaged ({type(error).__name__}: {error}). The run cannot be "
            "resumed: start again with --overwrite."
        ) from None
    if not weights.exists():
        raise RunDirectoryError(
            f"the backup in {metadata.parent} names {weights.name}, which is missing: start again with --overwrite."
        )
    try:
        saved_classes = _output_units(weights)
    except (OSError, KeyError, ValueError) as error:
        raise RunDirectoryError(
            f"the backup weights {weights} cannot be read ({error}). The run cannot be resumed: start again with --overwrite."
        ) from None
    if saved_classes is not None and saved_classes != classes:
        raise RunDirectoryError(
            f"the run in {run_dir} was trained for {saved_classes} classes, the data now has {classes}: resume with "
            "the same class folders, or start a new run (--overwrite or another --run-dir)."
        )
    return (epochs, stage) if with_stage else epochs


def _output_units(weights_file):
    """The width of the last dense kernel in a Keras weights file (the model's classes), or None."""
    kernels = []
    with h5py.File(weights_file, "r") as handle:
        handle.visititems(
            lambda name, obj: kernels.append((name, obj.shape)) if isinstance(obj, h5py.Dataset) else None
        )
    dense = [(name, shape) for name, shape in kernels if len(shape) == 2 and name.startswith("layers/")]
    if not dense:
        return None

    # Keras names weight groups after the layer class with a counter (dense, dense_1, ...), in
    # the model's layer order: the last dense kernel in that order is the output layer's.
    def order(item):
        group = item[0].split("/")[-3]
        stem, _, counter = group.rpartition("_")
        return (stem, int(counter)) if counter.isdigit() else (group, 0)

    return int(sorted(dense, key=order)[-1][1][-1])
