"""Resuming with other settings: what may change on ``--resume``, what may not, and the record of it.

A resumed run continues the one in its run directory: the options it was started with
(``options.json``) stay, except those in ``RESUMABLE`` (more epochs, how often to back up,
what to write at the end). Any other difference (another rate, recipe, head, batch size,
seed...) would make ``options.json`` describe a run that never happened: it is refused,
naming the fields. Each resume is recorded in ``resumes.json`` with what it changed.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from keras_alexnet._utils.files import atomic_write
from keras_alexnet.run_directory import RunDirectoryError
from keras_alexnet.training.options import TrainingOptions

# Options a resumed run may change: none of them changes what the epochs already done were.
RESUMABLE = (
    "epochs",
    "backup_every",
    "report",
    "tensorboard",
    "tensorboard_images",
    "save_optimizer",
    "on_bad_file",
    "cache_memory_limit",
    "auto_budget",
    "calibrate",
)


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
