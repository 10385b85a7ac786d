"""A comparison's trial: one whole ``train`` of a candidate with a seed, in a Ray worker's process
(``experiments.engine`` runs ``run_job``), and what it leaves in its run directory: ``result.json`` (the
``RunRecord``), or ``error.json`` for the comparison to raise, and ``trial.json`` (where it ran)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._utils.choices import BALANCED_ACCURACY, MACRO_F1, validation
from keras_alexnet._utils.disk import DiskFullError, free_bytes, is_disk_full
from keras_alexnet._utils.files import atomic_write
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.evaluation import evaluate
from keras_alexnet.experiments.candidates import Candidate, RunRecord
from keras_alexnet.recipes import Head, Recipe, register_head, register_recipe
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.run_result import log_columns
from keras_alexnet.training import TrainingOptions, train

# A comparison run's own files beside the run's (RunDirectory names them).
RESULT, ERROR, TRIAL = RunDirectory.TRIAL_RESULT, RunDirectory.TRIAL_ERROR, RunDirectory.TRIAL


def run_job(job, report=None):
    """A trial's work, in its own process: train one candidate with one seed (resuming from the run's
    backup when a lost node or an interrupted comparison left one), then write ``result.json``.

    ``report(values)`` is called after each epoch (``{"epoch", "epochs", "val_accuracy", "seconds"}``).
    An error is written to ``error.json`` for the comparison to raise; returns 0 or 1.
    """
    run_dir = Path(job["run_dir"])
    if job.get("deadline") is not None and time.time() > job["deadline"]:
        return 0  # the time limit passed before this run could start: it is not started
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ERROR).unlink(missing_ok=True)
    if job.get("node_id"):  # where this try runs, for the user (and the node-loss test)
        trial = json.dumps({"node": job["node"], "node_id": job["node_id"], "pid": os.getpid()})
        atomic_write(run_dir / TRIAL, lambda tmp: Path(tmp).write_text(trial))
    try:
        register_recipe(Recipe.from_dict(job["recipe"]), replace=True)
        register_head(Head(**job["head"]), replace=True)
        folders = {side: ImageFolder.from_dict(job[side]) for side in ("train", "val")}
        candidate = Candidate(**job["candidate"])
        resume = RunDirectory(run_dir).has_backup()
        callbacks = [_EpochReport(report, job["options"]["epochs"])] if report is not None else []
        if job.get("deadline") is not None and job.get("stop_running", True):
            callbacks.append(_StopAtDeadline(job["deadline"]))
        result = train(
            folders["train"],
            TrainingOptions(**job["options"]),
            val=folders["val"],
            run_dir=run_dir,
            resume=resume,
            overwrite=not resume,  # the run directory is the comparison's own
            callbacks=callbacks,
            verbose=0,
            shared_activations=job["shared"],
        )
        scored = evaluate(result.model, folders["val"], tta=True) if job.get("tta") else None
        record = run_record(candidate, job["seed"], result, scored)
        record = dataclasses.replace(record, node=job.get("node", ""), node_id=job.get("node_id", ""))
        text = json.dumps(dataclasses.asdict(record), indent=2)
        atomic_write(run_dir / RESULT, lambda tmp: Path(tmp).write_text(text))
        return 0
    except TimeLimitReached:  # unfinished, like a run the limit kept from starting; its backup resumes it
        return 0
    except Exception as error:  # the comparison raises it, naming the run
        kind, text = type(error).__name__, str(error)
        if is_disk_full(error):
            kind = DiskFullError.__name__
            if not isinstance(error, DiskFullError):  # a write of Keras's, Ray's or the cache's: sized here
                text = (
                    f"no space left in {run_dir.parent} ({text}); {free_bytes(run_dir) / 2**20:.1f} MB are free. "
                    "Free space, then run the same command again: the finished runs are kept."
                )
        message = json.dumps({"type": kind, "message": text})
        atomic_write(run_dir / ERROR, lambda tmp: Path(tmp).write_text(message))
        return 1


def run_record(candidate, seed, result, scored=None):
    """The run's record: its scores at the epoch its output network kept (``scored``: an ``Evaluation``
    with test-time augmentation, whose scores replace the epoch's). The curves are the whole run's, from its
    ``log.csv``: a resumed run's process trained only the epochs after its backup (none, when it was
    stopped between its last epoch and its result)."""
    history = log_columns(RunDirectory(result.run_dir).log_rows()) or result.history
    accuracy = [float(v) for v in history.get("val_accuracy", [])]
    loss = [float(v) for v in history.get("val_loss", [])]
    if not accuracy:
        raise ValueError("compare needs validation data: give --val or --val-split.")
    kept = min(result.output_epoch or len(accuracy), len(accuracy)) - 1
    balanced = history.get(validation(BALANCED_ACCURACY)) or [float("nan")] * len(accuracy)
    macro = history.get(validation(MACRO_F1)) or [float("nan")] * len(accuracy)
    scores = (accuracy[kept], float(balanced[kept]), float(macro[kept]))
    if scored is not None:
        scores = (scored.accuracy, scored.balanced_accuracy, scored.macro_f1)
    trained = int(sum(np.prod(w.shape) for w in result.model.trainable_weights))
    return RunRecord(
        candidate.recipe,
        candidate.head,
        candidate.learning_rate,
        seed,
        scores[0],
        loss[kept],
        kept + 1,
        trained,
        round(result.seconds, 2),
        accuracy,
        loss,
        scores[1],
        scores[2],
        scored is not None,
        regularizer=candidate.regularizer,
    )


class TimeLimitReached(Exception):
    """The comparison's ``--time-limit`` passed while a run trained: the run stops, its backup kept."""


class _StopAtDeadline(keras.callbacks.Callback):
    """Ends a run at the comparison's time limit (after a batch; the last epoch's backup stays, so running the
    comparison again resumes it)."""

    def __init__(self, deadline):
        super().__init__()
        self.deadline = deadline

    def on_train_batch_end(self, batch, logs=None):
        if time.time() > self.deadline:
            raise TimeLimitReached


class _EpochReport(keras.callbacks.Callback):
    """Reports each epoch of a run to the comparison (in the run's process; ``report`` is Ray Tune's)."""

    def __init__(self, report, epochs):
        super().__init__()
        self.report_to, self.epochs = report, epochs
        self._started = time.perf_counter()
        self._first = None  # the first epoch this process trains (later than 0 after a resume)

    def on_epoch_begin(self, epoch, logs=None):
        if self._first is None:
            self._first = epoch

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy")
        values = {"epoch": epoch + 1, "epochs": self.epochs, "seconds": time.perf_counter() - self._started}
        values["trained"] = epoch + 1 - (self._first if self._first is not None else epoch)
        if accuracy is not None:
            values["val_accuracy"] = float(accuracy)
        self.report_to(values)
