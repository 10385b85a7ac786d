"""The run directory: every file a training run writes, by name, and the rules for using one.

``RunDirectory(path)`` is the one owner of these names (no other module spells them) and
of these rules:

- **lock**: a run holds ``run.lock`` (its PID) while it writes; a second run into a
  directory that a live process is training in is refused, naming that process (a lock
  left by a dead process is replaced).
- **new**: a run into a directory that holds a previous run's files is refused unless
  the user says ``overwrite`` (which removes only the files a run writes) or ``resume``.
- **resume**: needs a backup that loads: its metadata and weights file are checked, and
  the class count compared, before anything in the directory is changed.
- **finished**: a run that wrote ``model.keras`` and holds no backup; the backup and the
  activation cache are a running run's, and go when it finishes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import h5py

from keras_alexnet._utils.checksum import matches
from keras_alexnet._utils.files import atomic_write, check_writable
from keras_alexnet._utils.hdf5 import open_hdf5
from keras_alexnet._utils.runtime import process_alive
from keras_alexnet._utils.signals import holding
from keras_alexnet.run_result import RunResult, read_history, read_log


class ComparisonFiles:
    """The tables and curves a comparison writes into its folder (``experiments.tables``; ``--recipe auto``'s
    comparison is one), named once for the comparison and the report that shows its summary."""

    RUNS_CSV, SUMMARY_CSV, SUMMARY_MD, CURVES = "runs.csv", "summary.csv", "summary.md", "curves.png"


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked; the message says why and what to do."""


class RunDirectory:
    """A training run's folder and the named paths in it.

    Files: ``options.json`` (the ``TrainingOptions``), ``model.keras`` (the final model),
    while training ``best.keras`` (the output network's best epoch so far) and ``best.best.json`` (its epoch),
    ``log.csv``, ``history.json`` and ``progress.png`` (per-iteration curves),
    ``validation.json`` (the validation images), ``data.json`` (the folders and a digest of their files,
    which a resume checks), ``report.html``, ``tensorboard/``,
    ``auto.json`` and ``auto_comparison/`` (``recipe="auto"``), ``resumes.json`` (each resume and
    the options it changed), and until the final model is written
    ``backup/`` (``training_metadata.json`` names the last committed weights),
    ``activation_cache/`` and ``run.lock``.
    """

    OPTIONS = "options.json"
    DEFAULT = "runs/alexnet"  # where a run goes when none is named (train, --run-dir)
    MODEL = "model.keras"
    BEST = "best.keras"
    BEST_RECORD = "best.best.json"
    LOG = "log.csv"
    HISTORY = "history.json"
    PROGRESS = "progress.png"
    BACKUP = "backup"
    BACKUP_METADATA = "training_metadata.json"
    AUTO = "auto.json"
    AUTO_COMPARISON = "auto_comparison"
    VALIDATION = "validation.json"
    DATA = "data.json"
    REPORT = "report.html"
    TENSORBOARD = "tensorboard"
    LOCK = "run.lock"
    RESUMES = "resumes.json"
    ACTIVATION_CACHE = "activation_cache"
    RAY_TRAIN = "ray_train"  # Ray Train's own records while a --workers run trains (removed when it ends)
    # A comparison's run (experiments.compare) also keeps its record, its error and where it ran.
    TRIAL_RESULT = "result.json"
    TRIAL_ERROR = "error.json"
    TRIAL = "trial.json"

    # What a run writes: a previous run is these, and --overwrite removes only these.
    RUN_FILES = (
        MODEL,
        BEST,
        LOG,
        HISTORY,
        OPTIONS,
        PROGRESS,
        BACKUP,
        AUTO,
        AUTO_COMPARISON,
        VALIDATION,
        DATA,
        REPORT,
        TENSORBOARD,
        RESUMES,
    )
    # A run's working files, which tell nothing of a previous run by themselves.
    SCRATCH = (BEST_RECORD, ACTIVATION_CACHE, RAY_TRAIN)
    # What a fit that starts afresh (not resumed) clears: the state of an earlier fit into the folder.
    FIT_STATE = (BACKUP, HISTORY, LOG, BEST_RECORD)

    def __init__(self, path):
        self.path = Path(path)

    def __fspath__(self):
        return os.fspath(self.path)

    def __repr__(self):
        return f"RunDirectory({str(self.path)!r})"

    def __truediv__(self, name):
        return self.path / name

    # Named paths.
    options = property(lambda self: self.path / self.OPTIONS, doc="options.json")
    model = property(lambda self: self.path / self.MODEL, doc="model.keras, the final model")
    best = property(lambda self: self.path / self.BEST, doc="best.keras, the output network's best epoch so far")
    best_record = property(lambda self: self.path / self.BEST_RECORD, doc="best.keras's value and epoch")
    log = property(lambda self: self.path / self.LOG, doc="log.csv, a row per epoch")
    history = property(lambda self: self.path / self.HISTORY, doc="history.json, per iteration")
    progress = property(lambda self: self.path / self.PROGRESS, doc="progress.png")
    backup = property(lambda self: self.path / self.BACKUP, doc="backup/, what --resume starts from")
    backup_metadata = property(lambda self: self.backup / self.BACKUP_METADATA, doc="the backup's commit record")
    auto = property(lambda self: self.path / self.AUTO, doc="auto.json, recipe='auto''s choice")
    auto_comparison = property(lambda self: self.path / self.AUTO_COMPARISON, doc="auto's comparison")
    validation = property(lambda self: self.path / self.VALIDATION, doc="validation.json, the validation images")
    data = property(
        lambda self: self.path / self.DATA, doc="data.json, the folders and a digest of the files trained on"
    )
    report = property(lambda self: self.path / self.REPORT, doc="report.html")
    tensorboard = property(lambda self: self.path / self.TENSORBOARD, doc="tensorboard/ logs")
    resumes = property(lambda self: self.path / self.RESUMES, doc="resumes.json, each resume and what it changed")
    lock_file = property(lambda self: self.path / self.LOCK, doc="run.lock, the PID of the run writing here")
    activation_cache = property(lambda self: self.path / self.ACTIVATION_CACHE, doc="activation_cache/ on disk")
    ray_train = property(lambda self: self.path / self.RAY_TRAIN, doc="ray_train/, Ray Train's records of a run")
    trial_result = property(lambda self: self.path / self.TRIAL_RESULT, doc="result.json, a comparison run's record")
    trial_error = property(lambda self: self.path / self.TRIAL_ERROR, doc="error.json, why a comparison run failed")
    trial = property(lambda self: self.path / self.TRIAL, doc="trial.json, the node and process a comparison run used")

    # Rules.
    def check_is_folder(self, purpose="give a folder (it is created if missing)"):
        """Refuse a path that is a file."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"--run-dir {self.path} is a file; {purpose}.")

    @contextlib.contextmanager
    def locked(self):
        """Hold ``run.lock`` (with this process's PID) while the block runs; the folder is created."""
        self.check_is_folder()
        self.path.mkdir(parents=True, exist_ok=True)
        with lock(self.path, self.LOCK, "training run", "--run-dir"):
            yield self

    def previous_files(self):
        """The names of a previous run's files here."""
        return [name for name in self.RUN_FILES if (self.path / name).exists()]

    def start_new(self, overwrite):
        """Refuse to start over a previous run's files unless ``overwrite``; with it, remove them.

        Only the files a run writes are removed; anything else in the folder stays.
        """
        self.check_is_folder()
        previous = self.previous_files()
        if previous and not overwrite:
            raise RunDirectoryError(
                f"{self.path} holds a previous run ({', '.join(previous)}); nothing was changed. Continue it with "
                "--resume (resume=True), replace it with --overwrite (overwrite=True), or choose another --run-dir."
            )
        _remove(self.path / name for name in (*previous, *self.SCRATCH))

    def clear_fit_state(self):
        """Remove an earlier fit's backup, history, log and best-model record (a fit that starts afresh)."""
        _remove(self.path / name for name in self.FIT_STATE)

    def check_can_start(self, resume):
        """Before any work: refuse a file, and a resume with no backup to start from (naming what is missing)."""
        self.check_is_folder()
        if resume and not self.backup.is_dir():
            self.check_resumable()
        check_writable(self.path, "the run's files", "give a --run-dir on a disk you can write to")

    def has_backup(self):
        """Whether a committed backup is here (what ``resume`` starts from)."""
        return self.backup_metadata.exists()

    def check_resumable(self, classes=None):
        """The backup a resumed run starts from: it must exist, load, and have ``classes`` outputs.

        Returns ``(epochs, stage)``: the epochs it holds and the stage of a two-stage recipe
        that wrote it (1 or 2). Raises ``RunDirectoryError`` naming the file and what to do;
        nothing in the directory is changed.
        """
        self.check_is_folder("give the folder of the run to resume")
        metadata = self.backup_metadata
        if not metadata.exists():
            state = (
                "does not exist"
                if not self.path.exists()
                else "has no backup/ to resume from (finished, or never started)"
            )
            raise RunDirectoryError(f"nothing to resume: {self.path} {state}. Start a new run without --resume.")
        try:
            record = json.loads(metadata.read_text())
            weights = self.backup / record["weights"]
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
        if not matches(weights, record.get("sha256")):
            raise RunDirectoryError(
                f"the backup {weights} is damaged: its bytes differ from the SHA-256 written with it (a disk error, "
                "a copy cut short, an edit). It is not resumed from; nothing was changed. Restore the run directory "
                "from a copy, or start again with --overwrite."
            )
        try:
            saved_classes = _output_units(weights)
        except (OSError, KeyError, ValueError) as error:
            raise RunDirectoryError(
                f"the backup weights {weights} cannot be read ({error}). The run cannot be resumed: start again "
                "with --overwrite."
            ) from None
        if classes is not None and saved_classes is not None and saved_classes != classes:
            raise RunDirectoryError(
                f"the run in {self.path} was trained for {saved_classes} classes, the data now has {classes}: resume "
                "with the same class folders, or start a new run (--overwrite or another --run-dir)."
            )
        return epochs, stage

    @property
    def finished(self):
        """A run that wrote its model and holds no backup."""
        return self.model.exists() and not self.backup.exists()

    def check_finished(self):
        """Refuse a folder without a finished run's model, saying what to do."""
        if not self.path.is_dir():
            raise FileNotFoundError(
                f"run directory {self.path} does not exist: give the --run-dir that `keras-alexnet train` wrote."
            )
        if not self.model.exists():
            raise FileNotFoundError(
                f"{self.model} is missing: the run has not finished (resume it with `keras-alexnet train --resume`) "
                "or this is not a run directory."
            )

    def finish(self):
        """What a finished run keeps: everything but the backup, the activation cache and ``best.keras``.

        Called once the final model is written: until then the backup is what ``resume`` starts from,
        and ``best.keras`` the best epoch so far; ``model.keras`` is the output network now.
        """
        _remove([self.backup, self.activation_cache, self.best, self.best_record])

    def clear_ray_train(self):
        """Remove Ray Train's records of an earlier try on workers (a stopped ``--workers`` run continuing on one
        process: nothing of Ray Train runs here while this process holds the lock)."""
        _remove([self.ray_train])

    def record_result(self, result):
        """Add ``result`` (a ``RunResult``: the epoch ``model.keras`` holds, its temperature, ...) to
        ``options.json`` under ``"result"``, so the options say which model they made."""
        if not self.options.exists():
            return
        record = json.loads(self.options.read_text())
        record["result"] = result.to_dict()
        text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
        atomic_write(self.options, lambda tmp: Path(tmp).write_text(text))

    def result(self):
        """The ``RunResult`` ``record_result`` wrote (every field at its default when there is none)."""
        try:
            record = json.loads(self.options.read_text())
        except (OSError, ValueError):
            return RunResult()
        return RunResult.from_dict(record.get("result") if isinstance(record, dict) else None)

    def log_rows(self):
        """``log.csv``'s rows (``run_result.read_log``)."""
        return read_log(self.log)

    def history_record(self):
        """``history.json`` (``run_result.read_history``): {} without one."""
        return read_history(self.history)


@contextlib.contextmanager
def lock(folder, name, what, flag):
    """Hold ``folder/name`` (with this process's PID) while the block runs.

    ``what`` and ``flag`` name the kind of work and the option that chooses the folder, for the refusal.
    """
    folder = Path(folder)
    path = folder / name
    while True:
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            text = path.read_text().strip() if path.exists() else ""
            pid = int(text) if text.isdigit() else None
            if pid is not None and pid != os.getpid() and process_alive(pid):
                raise RunDirectoryError(
                    f"{folder} is in use by another {what} (process {pid}, see {path}). Wait for it to "
                    f"finish, stop it, or choose another {flag}."
                ) from None
            path.unlink(missing_ok=True)  # left by a process that no longer runs
    with os.fdopen(handle, "w") as file:
        file.write(f"{os.getpid()}\n")
    holding(path, True)  # the command line's supervisor removes it if it must end this process
    try:
        yield folder
    finally:
        holding(path, False)
        with contextlib.suppress(OSError):  # a folder turned read-only: a dead process's lock is replaced anyway
            path.unlink(missing_ok=True)


def _remove(paths):
    for path in paths:
        path = Path(path)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _output_units(weights_file):
    """The width of the last dense kernel in a Keras weights file (the model's classes), or None."""
    kernels = []
    with open_hdf5(weights_file) as handle:
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
