"""Recipes compared on the user's data, over seeds (MATLAB's Experiment Manager, for Keras).

``compare`` trains every candidate (a recipe with a head and a rate) on one split of the
data, once per seed, each run in its own run directory under ``out/runs/``. Frozen
activations are computed once and shared by every run that can use them. A finished
run leaves ``result.json``; a killed comparison started again with the same settings
skips the finished runs and resumes the interrupted one from its backup.

On small data the seed moves the accuracy more than the recipe does, so the summary
gives each candidate's mean and standard deviation over seeds, and calls a candidate
whose mean is within the best one's standard deviation of the best mean a tie, not a loss.

The runs are Ray Tune trials (``experiments.engine``): on one machine Ray starts by itself and
runs as many at once as the CPUs allow; with ``Cluster(address=...)`` (``--address``) they spread
over a cluster, a trial whose node is lost runs again elsewhere and resumes from its backup. A
trial is a whole ``train`` (two stages for fine-tune, an activation cache, its own run
directory and resume), not KerasTuner's single ``model.fit``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._utils import ray_cluster
from keras_alexnet._utils.choices import BALANCED_ACCURACY, COMPARE_METRICS, MACRO_F1, validation
from keras_alexnet._utils.disk import DiskFullError, free_bytes, is_disk_full
from keras_alexnet._utils.files import atomic_write, nothing_left_if
from keras_alexnet._utils.flags import fields_where
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.evaluation import evaluate
from keras_alexnet.experiments import engine
from keras_alexnet.experiments.tables import CURVES, RUNS_CSV, SUMMARY_CSV, SUMMARY_MD, write_tables
from keras_alexnet.options import COMPARE, COMPARE_VAL_SPLIT, REGULARIZERS, absolute_source
from keras_alexnet.recipes import HEADS, RECIPES, Head, Recipe, head_named, recipe_named, register_head, register_recipe
from keras_alexnet.run_directory import RunDirectory, RunDirectoryError, lock
from keras_alexnet.training import TrainingOptions, read_sets, train
from keras_alexnet.training.callbacks import TrainingDiverged

SETTINGS = "comparison.json"
LOCK = "comparison.lock"
ACTIVATIONS = "activations"  # the activation caches the runs share (train(..., shared_activations=))
TUNE = "tune"  # Ray Tune's own records of the trials
OUR_FILES = ("runs", ACTIVATIONS, TUNE, SETTINGS, RUNS_CSV, SUMMARY_CSV, SUMMARY_MD, CURVES)
# Options each run takes from its candidate and seed, or that the comparison sets for its runs (their
# fields say so): not part of the settings that decide whether a comparison continues.
PER_RUN_OPTIONS = fields_where(TrainingOptions, lambda facts: facts.per_run)
# What a comparison writes into each run's directory beside the run's own files.
# A comparison run's own files (RunDirectory names them).
RESULT, ERROR, TRIAL = RunDirectory.TRIAL_RESULT, RunDirectory.TRIAL_ERROR, RunDirectory.TRIAL


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One configuration to compare: a recipe, a head, a base rate (None: the recipe's) and a regularizer
    (a name of ``REGULARIZERS``; "none": the options as given)."""

    recipe: str
    head: str = "alexnet"
    learning_rate: float | None = None
    regularizer: str = "none"

    def __post_init__(self):
        recipe_named(self.recipe)  # raises, listing the known recipes
        head_named(self.head)
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer {self.regularizer!r} is not known: use one of {', '.join(REGULARIZERS)}.")
        rate = self.learning_rate
        if rate is not None and not (isinstance(rate, (int, float)) and rate > 0 and math.isfinite(rate)):
            raise ValueError(f"learning rate {rate!r}: use a positive, finite number (or None: the recipe's).")

    @property
    def name(self):
        rate = "" if self.learning_rate is None else f" lr {self.learning_rate:g}"
        extra = "" if self.regularizer == "none" else f" + {self.regularizer}"
        return f"{self.recipe} / {self.head}{rate}{extra}"

    @property
    def slug(self):
        rate = "" if self.learning_rate is None else f"-lr{self.learning_rate:g}"
        extra = "" if self.regularizer == "none" else f"-{self.regularizer}"
        return f"{self.recipe}-{self.head}{rate}{extra}"

    def options(self, options):
        """``options`` with this candidate's regularizer's settings."""
        return options.replace(**REGULARIZERS[self.regularizer])


@dataclasses.dataclass
class RunRecord:
    """One finished run: a candidate trained with one seed."""

    recipe: str
    head: str
    learning_rate: float | None
    seed: int
    val_accuracy: float
    val_loss: float
    best_epoch: int
    trained_parameters: int
    seconds: float
    val_accuracy_curve: list
    val_loss_curve: list
    # The epoch's balanced scores (records written before 0.5 have none: NaN).
    val_balanced_accuracy: float = float("nan")
    val_macro_f1: float = float("nan")
    tta: bool = False  # the scores are test-time augmented (compare --tta)
    node: str = ""  # the address of the node the run trained on (its last try's)
    node_id: str = ""  # and Ray's ID of that node (several nodes can share an address)
    regularizer: str = "none"  # the candidate's (records written before 0.7 have none)

    @property
    def candidate(self):
        return Candidate(self.recipe, self.head, self.learning_rate, self.regularizer)


def candidates_of(recipes=None, heads=None, learning_rates=None, regularizers=None):
    """Every recipe x head x rate x regularizer (defaults: all recipes, both heads, each recipe's own rate,
    no regularizer beyond the options')."""
    return [
        Candidate(recipe, head, rate, regularizer)
        for recipe in (recipes or tuple(RECIPES))
        for head in (heads or tuple(HEADS))
        for rate in (learning_rates or (None,))
        for regularizer in (regularizers or ("none",))
    ]


def compare(
    data,
    options=None,
    *,
    val=None,
    candidates=None,
    seeds=COMPARE.seeds,
    out=COMPARE.out,
    overwrite=False,
    time_limit=None,
    stop_running=True,
    keep_models=False,
    metric=COMPARE.metric,
    tta=False,
    cluster=None,
    verbose=1,
    **changes,
):
    """Train every candidate over ``seeds`` on one split and summarize them.

    Args:
        data: a folder with one sub-folder per class, or an ``ImageFolder``.
        options: the ``TrainingOptions`` every run shares (epochs, batch size, split, ...);
            keyword arguments named like its fields change it. Each run takes its recipe,
            head, rate and seed from its candidate.
        val: a validation folder; else ``options.val_split`` (default ``options.COMPARE_VAL_SPLIT``) of ``data``,
            split once with ``options.seed``, the same for every run.
        candidates: ``Candidate``s (default: ``candidates_of()``, every recipe and head).
        seeds: how many seeds (0, 1, ...) or a list of seeds.
        out: the comparison directory (``runs/``, ``runs.csv``, ``summary.csv``,
            ``summary.md``, ``curves.png``). Started again with the same settings, a
            comparison continues where it stopped; other settings are refused unless
            ``overwrite`` (which replaces only the comparison's own files).
        time_limit: seconds; no new run starts after it, and a run still training stops at it (the summary holds
            the runs done; running the comparison again resumes the stopped ones from their backups).
        stop_running: False lets runs that started before ``time_limit`` finish (``recipe="auto"``'s minute
            budget: it needs finished runs to choose from).
        keep_models: keep each run's ``model.keras``. Off by default: a
            comparison is for the table, and AlexNet's head makes each file 228 MB (30 runs
            would keep 14 GB); train the winner with ``train`` to get its model.
        metric: what ranks the candidates: ``"accuracy"``, ``"balanced-accuracy"`` or ``"macro-f1"``
            (on the validation images, at the epoch each run keeps).
        tta: score each run's model on the validation images with test-time augmentation.
        cluster: a ``Cluster``: the Ray cluster's address (default: this machine, or ``RAY_ADDRESS``) and
            the CPUs and GPUs each trial takes. ``out`` must be on storage every node mounts.
    Returns:
        A ``Comparison``.
    """
    options = TrainingOptions.of(options, **changes)
    if metric not in COMPARE_METRICS:
        raise ValueError(f"metric={metric!r}: use one of {', '.join(COMPARE_METRICS)}.")
    if val is None and options.val_split is None:
        options = options.replace(val_split=COMPARE_VAL_SPLIT)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("seeds: give at least one (e.g. 3: seeds 0, 1, 2).")
    candidates = list(candidates) if candidates is not None else candidates_of()
    if not candidates:
        raise ValueError("candidates: give at least one recipe to compare.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out} is a file; give a folder for the comparison.")
    train_set, val_set = read_sets(data, val, options)  # the checks train makes (the same folder twice, ...)
    images = hashlib.sha256()
    for path, label in [
        *zip(train_set.paths, train_set.labels),
        ("validation", -1),
        *zip(val_set.paths, val_set.labels),
    ]:
        images.update(f"{path}\t{label}\n".encode())
    settings = {
        "data": str(data if not isinstance(data, ImageFolder) else "ImageFolder"),
        "images": images.hexdigest(),  # the exact split: same paths, labels and sides
        "training_images": len(train_set),
        "validation_images": len(val_set),
        "options": {key: value for key, value in options.to_dict().items() if key not in PER_RUN_OPTIONS},
        "split_seed": options.seed,
        "candidates": [dataclasses.asdict(candidate) for candidate in candidates],
        "seeds": seed_list,
        "tta": bool(tta),
    }
    # Refused before any trial (no cluster, a trial no node can hold): a refused command leaves nothing behind.
    with nothing_left_if(ray_cluster.ClusterError, out, files=[out / SETTINGS]):
        out.mkdir(parents=True, exist_ok=True)
        with lock(out, LOCK, "comparison", "--out"):
            _check_settings(out, settings, overwrite)
            runs, complete = _run_all(
                train_set,
                val_set,
                options,
                candidates,
                seed_list,
                out,
                time_limit,
                keep_models,
                verbose,
                tta,
                cluster,
                stop_running=stop_running,
            )
    if not runs:
        raise ValueError("no run finished within the time limit: give it more time.")
    fields = [field.name for field in dataclasses.fields(RunRecord)]
    return write_tables(out, runs, complete, fields, verbose, metric)


def _check_settings(out, settings, overwrite):
    """Continue a comparison with the same settings; refuse other settings; ``overwrite`` starts afresh."""
    path = out / SETTINGS
    text = json.dumps(settings, indent=2, sort_keys=True, default=str) + "\n"
    if overwrite:  # only the comparison's own files: anything else in the folder stays
        for name in OUR_FILES:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    elif path.exists():
        if json.loads(path.read_text()) == json.loads(text):
            return
        raise RunDirectoryError(
            f"{out} holds a comparison with other settings ({SETTINGS}); nothing was changed. Use the same "
            "settings to continue it, --overwrite to replace it, or another --out."
        )
    elif any((out / name).exists() for name in OUR_FILES):
        raise RunDirectoryError(f"{out} holds files of another comparison; use --overwrite or another --out.")
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _run_all(
    train_set,
    val_set,
    options,
    candidates,
    seeds,
    out,
    time_limit,
    keep_models,
    verbose,
    tta=False,
    cluster=None,
    stop_running=True,
):
    """Every candidate x seed as a Ray Tune trial (``experiments.engine``), in seed order (so a time limit
    leaves every candidate equally sampled); the runs finished before are kept, not trained again.

    Each run trains in a worker process of its own: Keras does not give back the memory of a model
    fitted in a loop, even after ``clear_session`` (keras-team/keras#17458; measured here: +0.7 GB
    per AlexNet run), which a comparison of dozens of runs cannot afford. The activation caches go
    through ``out/activations`` to the runs that share them. ``cluster``: a ``Cluster`` (address,
    resources per trial); None runs on this machine.
    """
    cluster = cluster or Cluster()
    plan = [(seed, candidate) for seed in seeds for candidate in candidates]
    deadline = None if time_limit is None else time.time() + time_limit
    jobs, finished = [], {}
    for index, (seed, candidate) in enumerate(plan):
        run_dir = out / "runs" / f"{candidate.slug}-seed{seed}"
        if (run_dir / RESULT).exists():
            finished[index] = RunRecord(**json.loads((run_dir / RESULT).read_text()))
            continue
        run_options = candidate.options(options).replace(
            recipe=candidate.recipe,
            head=candidate.head,
            learning_rate=candidate.learning_rate,
            seed=seed,
            val_split=None,  # the split made once above, the same for every run
            report=False,  # the comparison's table and curves are its report
            save_models=keep_models,
            cache_activations=options.augment == "none"
            and not (options.mixup or options.cutmix or candidate.regularizer in ("mixup", "cutmix"))
            and RECIPES[candidate.recipe].cacheable,
            measure_tta=False,  # --tta scores every run's model with it (the comparison's column)
        )
        jobs.append(
            {
                "index": index,
                "train": train_set.to_dict(),
                "val": val_set.to_dict(),
                "options": run_options.replace(weights=absolute_source(run_options.weights)).to_dict(),
                "run_dir": str(Path(run_dir).resolve()),
                # The run's process knows the built-in table only: it gets the entries this run uses.
                "recipe": RECIPES[candidate.recipe].to_dict(),
                "head": HEADS[candidate.head].to_dict(),
                "shared": str((out / ACTIVATIONS).resolve()),
                "candidate": dataclasses.asdict(candidate),
                "seed": seed,
                "deadline": deadline,  # no run starts after it
                "stop_running": stop_running,  # and a running one stops at it
                "tensorflow_logs": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") < "3",
                "tta": tta,
            }
        )
    progress = _Progress(plan, options.epochs, verbose)
    for index in finished:
        progress.skip(index)
    if jobs:
        with ray_cluster.connect(cluster.address) as ray:
            ray_cluster.check_resources(ray, cluster.cpus_per_trial, cluster.gpus_per_trial)
            ray_cluster.check_shared(ray, out)
            progress.start(
                ray_cluster.describe(ray), ray_cluster.trial_slots(ray, cluster.cpus_per_trial, cluster.gpus_per_trial)
            )
            engine.run_trials(
                ray, jobs, out, cpus=cluster.cpus_per_trial, gpus=cluster.gpus_per_trial, on_result=progress.report
            )
    runs, complete = [], True
    for index, (seed, candidate) in enumerate(plan):
        if index in finished:
            runs.append(finished[index])
            continue
        run_dir = out / "runs" / f"{candidate.slug}-seed{seed}"
        if (run_dir / RESULT).exists():
            runs.append(RunRecord(**json.loads((run_dir / RESULT).read_text())))
        elif (run_dir / ERROR).exists():
            found = json.loads((run_dir / ERROR).read_text())
            kind = {"TrainingDiverged": TrainingDiverged, "DiskFullError": DiskFullError}.get(found["type"], ValueError)
            raise kind(f"{candidate.name}, seed {seed} ({run_dir}): {found['message']}")
        else:
            complete = False  # not started before the time limit
    return runs, complete


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where a comparison's trials run: ``address`` of a Ray cluster (None: this machine, or ``RAY_ADDRESS``)
    and what each trial asks of it."""

    address: str | None = None
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0

    def __post_init__(self):
        for name in ("cpus_per_trial", "gpus_per_trial"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name}={value!r}: give a number of 0 or more.")
        if self.cpus_per_trial <= 0:
            raise ValueError(f"cpus_per_trial={self.cpus_per_trial!r}: a trial needs at least a part of a CPU.")


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
        record = _record(candidate, job["seed"], result, scored)
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


def _record(candidate, seed, result, scored=None):
    """The run's record: its scores at the epoch its output network kept (``scored``: an ``Evaluation``
    with test-time augmentation, whose scores replace the epoch's). The curves are the whole run's, from its
    ``log.csv``: a resumed run's process trained only the epochs after its backup (none, when it was
    stopped between its last epoch and its result)."""
    history = _logged_curves(RunDirectory(result.run_dir).log) or result.history
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


def _logged_curves(log):
    """{column: [value per epoch]} of a run's ``log.csv`` (``NA`` as NaN), or {} without one."""
    if not Path(log).exists():
        return {}
    with open(log, newline="") as handle:
        rows = list(csv.DictReader(handle))
    curves = {}
    for row in rows:
        for name, value in row.items():
            if name != "epoch":
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = float("nan")
                curves.setdefault(name, []).append(number)
    return curves


class _Progress:
    """The comparison's lines, printed here as the trials report: one per epoch of each run (which run, which
    node, elapsed and an estimate of the time left) and one when a run ends."""

    def __init__(self, plan, epochs, verbose):
        self.plan, self.epochs, self.verbose = plan, epochs, verbose
        self.started = time.perf_counter()
        self.run_seconds = []  # wall time of the runs trained in this call, for the estimate
        self.begun = {}  # index -> when its first report came
        self.slots = 1

    def elapsed(self):
        return time.perf_counter() - self.started

    def _print(self, text):
        if self.verbose:
            print(text, file=sys.stdout, flush=True)

    def _label(self, index):
        seed, candidate = self.plan[index]
        return f"[{index + 1}/{len(self.plan)}] {candidate.name}, seed {seed}"

    def skip(self, index):
        self._print(f"{self._label(index)}: finished before, kept")

    def start(self, where, slots):
        self.slots = max(int(slots), 1)
        self._print(f"trials on Ray Tune: {where}, {self.slots} at a time")

    def report(self, job, result):
        index = job["index"]
        if result.get("started") or index not in self.begun:
            self.begun[index] = time.perf_counter()
        in_run = time.perf_counter() - self.begun[index]
        node = f" on {result['node']}" if result.get("node") else ""
        if result.get("done"):
            self.run_seconds.append(in_run)
            record = Path(job["run_dir"]) / RESULT
            if record.exists():
                found = json.loads(record.read_text())
                self._print(
                    f"{self._label(index)}: validation accuracy {found['val_accuracy']:.3f} in "
                    f"{found['seconds']:.0f} s{node}"
                )
            return
        if "epoch" not in result:
            return
        unfinished = len(self.plan) - len(self.run_seconds) - 1
        state = {
            "epochs": self.epochs,
            "per_run": statistics.fmean(self.run_seconds) if self.run_seconds else None,
            "runs_after": max(unfinished - (self.slots - 1), 0),
        }
        left = time_left(state, result["epoch"], in_run, result.get("trained"))
        accuracy = result.get("val_accuracy")
        shown = f", val accuracy {accuracy:.3f}" if accuracy is not None else ""
        self._print(
            f"{self._label(index)}: epoch {result['epoch']}/{self.epochs}{shown}{node} | "
            f"{_duration(self.elapsed())} elapsed, about {_duration(left)} left"
        )


def time_left(state, epochs_done, seconds_in_run, trained=None):
    """Seconds the comparison has left after ``epochs_done`` epochs of the current run, which has taken
    ``seconds_in_run``: the mean time of the runs before (whole runs: the process's start-up, caches and
    evaluation included, not the epochs alone), or in the first run, its own pace per epoch so far
    (``trained``: the epochs this process trained, fewer than ``epochs_done`` after a resume)."""
    if state["per_run"]:
        current = max(state["per_run"] - seconds_in_run, 0.0)
        return current + state["per_run"] * state["runs_after"]
    pace = seconds_in_run / max(trained if trained is not None else epochs_done, 1)
    return pace * (state["epochs"] - epochs_done + state["epochs"] * state["runs_after"])


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


def _duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
