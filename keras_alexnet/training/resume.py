"""Resuming with other settings: what may change on ``--resume``, what may not, and the record of it.

A resumed run continues the one in its run directory: the options it was started with
(``options.json``) stay, except those in ``RESUMABLE`` (more epochs, how often to back up,
what to write at the end). Any other difference (another rate, recipe, head, batch size,
seed...) would make ``options.json`` describe a run that never happened: it is refused,
naming the fields. Each resume is recorded in ``resumes.json`` with what it changed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from pathlib import Path

from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.flags import fields_where
from keras_alexnet._utils.text import printable
from keras_alexnet.options import TrainingOptions
from keras_alexnet.run_directory import RunDirectoryError

log = logging.getLogger("keras_alexnet.training")

# Options a resumed run may change (their fields say so: none changes what the epochs already done were).
RESUMABLE = fields_where(TrainingOptions, lambda facts: facts.resumable)


def resumed_options(run, options=None, **changes):
    """The options a resumed run in ``run`` (a ``RunDirectory``) continues with.

    ``options`` None: the run's own (``options.json``) with ``changes``; else ``options``
    with ``changes`` (``check_resume`` then compares them with the run's own).
    """
    if options is None and run.options.exists():
        return TrainingOptions.load(run.options).replace(**changes)
    return TrainingOptions.of(options, **changes)


def _values(options):
    return json.loads(json.dumps(options.to_dict(), default=str))


def check_resume(run, options, epochs_done):
    """Refuse a resume whose options differ from the run's own outside ``RESUMABLE``.

    Returns ``{field: [before, now]}`` of the allowed changes (empty when none); nothing is
    written. ``epochs`` may grow, never below the ``epochs_done`` the backup holds.
    """
    if not run.options.exists():
        return {}
    before, now = _values(TrainingOptions.load(run.options)), _values(options)
    changed = {name: [before[name], now[name]] for name in now if before.get(name) != now[name]}
    refused = {name: values for name, values in changed.items() if name not in RESUMABLE}
    if refused:
        listed = "; ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in sorted(refused.items()))
        raise RunDirectoryError(
            f"--resume with other settings than the run in {run.path} was started with: {listed}. A resumed run keeps "
            f"its settings (options.json); only {', '.join(RESUMABLE)} may change. Resume without those flags "
            "(`keras-alexnet train --resume --run-dir ...` takes the run's own), or start a new run with them "
            "(--overwrite or another --run-dir)."
        )
    if options.epochs < epochs_done:
        raise RunDirectoryError(
            f"--epochs {options.epochs}: the run in {run.path} has done {epochs_done} epochs already. Give "
            f"--epochs {epochs_done} or more."
        )
    return changed


def record_resume(run, epochs_done, changed):
    """Append this resume (the epoch it starts from, the time, what changed) to ``resumes.json``."""
    path = Path(run.resumes)
    records = json.loads(path.read_text()) if path.exists() else []
    records.append(
        {
            "from_epoch": epochs_done,
            "time": datetime.datetime.now().isoformat(timespec="seconds"),
            "changed": changed,
        }
    )
    text = json.dumps(records, indent=2) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _files_digest(image_folder):
    """SHA-256 of a set's (class, file name, size) entries: the same files give the same digest, wherever
    the folder now lives."""
    entries = sorted(
        f"{image_folder.class_names[label]}/{os.fsencode(Path(path).name).hex()}/{_size(path)}"
        for path, label in zip(image_folder.paths, image_folder.labels)
    )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def _folder(value):
    if value is None or not isinstance(value, (str, os.PathLike)):
        return None
    return os.fsencode(Path(value).resolve()).decode("utf-8", "surrogateescape")


ONE_PROCESS, WORKERS = "one process", "workers"  # the ways of training (data.json: the one a run started on)


def data_record(data, val, train_set, val_set, engine=ONE_PROCESS):
    """What a run trained and validated on: the folders (resolved), a digest of each set's files, and the way it
    trains (``engine``: the way it started; a resume may continue on the other)."""
    return {
        "engine": engine,
        "data": _folder(data),
        "val": _folder(val),
        "class_names": list(train_set.class_names),
        "training": {"images": len(train_set), "files_digest": _files_digest(train_set)},
        "validation": None if val_set is None else {"images": len(val_set), "files_digest": _files_digest(val_set)},
    }


def record_data(run, record):
    """Write ``data_record``'s record as the run's ``data.json``."""
    text = json.dumps(record, indent=2) + "\n"
    atomic_write(run.data, lambda tmp: Path(tmp).write_text(text))


def resumed_folders(run, data, val, options):
    """The (data, val) a resume reads: a resume without ``val`` on a run that had a validation folder takes
    the recorded one (the epochs done were chosen and stopped on it), and says so."""
    if not run.data.exists():
        return data, val
    recorded = json.loads(run.data.read_text())
    if val is None and recorded.get("val") and options.val_split is None:
        val = recorded["val"]
        log.warning("resuming with the run's validation folder --val %s (recorded in %s)", printable(val), run.data)
    return data, val


def check_same_data(run, train_set, val_set):
    """Refuse a resume whose training or validation files differ from those the run recorded (``data.json``),
    saying exactly what changed; nothing is written. A run continues on either way of training (one process,
    workers): both write the same backups, ``log.csv`` columns and record."""
    if not run.data.exists():
        return
    recorded = json.loads(run.data.read_text())
    then = recorded.get("class_names")
    if then is not None and then != list(train_set.class_names):
        raise RunDirectoryError(
            f"the run in {run.path} was trained for {len(then)} classes, the data now has "
            f"{len(train_set.class_names)} ({', '.join(then)} then; {', '.join(train_set.class_names)} now): resume "
            "with the same class folders, or start a new run (--overwrite or another --run-dir)."
        )
    changes = []
    for what, now in (("training", train_set), ("validation", val_set)):
        before = recorded.get(what)
        if before is None and now is None:
            continue
        if before is None or now is None:
            changes.append(
                f"the run had {'no' if before is None else 'a'} validation set, this resume {'has' if before is None else 'has none'}"
            )
            continue
        if before["files_digest"] != _files_digest(now):
            folder = recorded.get("data" if what == "training" else "val") or "the data it was given"
            changes.append(
                f"the {what} files differ ({before['images']} images then, from {printable(folder)}; {len(now)} now)"
            )
    if changes:
        raise RunDirectoryError(
            f"--resume with other data than the run in {run.path} was trained on: {'; '.join(changes)}. Resume with "
            "the same --data and --val (see data.json), or start a new run (--overwrite or another --run-dir)."
        )
