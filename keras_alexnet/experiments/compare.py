"""Recipes compared on the user's data, over seeds (MATLAB's Experiment Manager, for Keras).

``compare`` trains every candidate (a recipe with a head and a rate) on one split of the
data, once per seed, each run in its own run directory under ``out/runs/``. Frozen
activations are computed once and shared by every run that can use them. A finished
run leaves ``result.json``; a killed comparison started again with the same settings
skips the finished runs and resumes the interrupted one from its backup.

On small data the seed moves the accuracy more than the recipe does, so the summary
gives each candidate's mean and standard deviation over seeds, and calls a candidate
whose mean is within the best one's standard deviation of the best mean a tie, not a loss.

A plain loop rather than KerasTuner: a run here is a whole ``train`` (two stages for
fine-tune, an activation cache, its own run directory and resume), which a tuner trial's
single ``model.fit`` does not hold; the loop's ``result.json`` files give the resumption
a tuner's oracle would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_alexnet._utils.choices import COMPARE_METRICS
from keras_alexnet._utils.files import atomic_write
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.evaluation import evaluate
from keras_alexnet.experiments.tables import CURVES, RUNS_CSV, SUMMARY_CSV, SUMMARY_MD, write_tables
from keras_alexnet.recipes import HEADS, RECIPES, Head, Recipe, head_named, recipe_named, register_head, register_recipe
from keras_alexnet.run_directory import RunDirectory, RunDirectoryError, lock
from keras_alexnet.training import TrainingOptions, train
from keras_alexnet.training.callbacks import TrainingDiverged

SETTINGS = "comparison.json"
LOCK = "comparison.lock"
ACTIVATIONS = "activations"  # the activation caches the runs share (train(..., shared_activations=))
OUR_FILES = ("runs", ACTIVATIONS, SETTINGS, RUNS_CSV, SUMMARY_CSV, SUMMARY_MD, CURVES)
# Options each run takes from its candidate and seed, or that the comparison sets for its runs:
# not part of the settings that decide whether a comparison continues.
PER_RUN_OPTIONS = ("recipe", "head", "learning_rate", "seed", "report", "save_models", "cache_activations")
# What a comparison writes into each run's directory beside the run's own files.
RESULT, JOB, OUTCOME, ERROR = "result.json", "job.json", "outcome.json", "error.json"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One configuration to compare: a recipe, a head and a base rate (None: the recipe's)."""

    recipe: str
    head: str = "alexnet"
    learning_rate: float | None = None

    def __post_init__(self):
        recipe_named(self.recipe)  # raises, listing the known recipes
        head_named(self.head)
        rate = self.learning_rate
        if rate is not None and not (isinstance(rate, (int, float)) and rate > 0 and math.isfinite(rate)):
            raise ValueError(f"learning rate {rate!r}: use a positive, finite number (or None: the recipe's).")

    @property
    def name(self):
        rate = "" if self.learning_rate is None else f" lr {self.learning_rate:g}"
        return f"{self.recipe} / {self.head}{rate}"

    @property
    def slug(self):
        rate = "" if self.learning_rate is None else f"-lr{self.learning_rate:g}"
        return f"{self.recipe}-{self.head}{rate}"


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

    @property
    def candidate(self):
        return Candidate(self.recipe, self.head, self.learning_rate)


def candidates_of(recipes=None, heads=None, learning_rates=None):
    """Every recipe x head x rate (defaults: all recipes, both heads, each recipe's own rate)."""
    return [
        Candidate(recipe, head, rate)
        for recipe in (recipes or tuple(RECIPES))
        for head in (heads or tuple(HEADS))
        for rate in (learning_rates or (None,))
    ]


def compare(
    data,
    options=None,
    *,
    val=None,
    candidates=None,
    seeds=3,
    out="comparison",
    overwrite=False,
    time_limit=None,
    keep_models=False,
    metric="accuracy",
    tta=False,
    verbose=1,
    **changes,
):
    """Train every candidate over ``seeds`` on one split and summarize them.

    Args:
        data: a folder with one sub-folder per class, or an ``ImageFolder``.
        options: the ``TrainingOptions`` every run shares (epochs, batch size, split, ...);
            keyword arguments named like its fields change it. Each run takes its recipe,
            head, rate and seed from its candidate.
        val: a validation folder; else ``options.val_split`` (default 0.3) of ``data``,
            split once with ``options.seed``, the same for every run.
        candidates: ``Candidate``s (default: ``candidates_of()``, every recipe and head).
        seeds: how many seeds (0, 1, ...) or a list of seeds.
        out: the comparison directory (``runs/``, ``runs.csv``, ``summary.csv``,
            ``summary.md``, ``curves.png``). Started again with the same settings, a
            comparison continues where it stopped; other settings are refused unless
            ``overwrite`` (which replaces only the comparison's own files).
        time_limit: seconds; no new run starts after it (the summary holds the runs done).
        keep_models: keep each run's ``model.keras``. Off by default: a
            comparison is for the table, and AlexNet's head makes each file 228 MB (30 runs
            would keep 14 GB); train the winner with ``train`` to get its model.
        metric: what ranks the candidates: ``"accuracy"``, ``"balanced-accuracy"`` or ``"macro-f1"``
            (on the validation images, at the epoch each run keeps).
        tta: score each run's model on the validation images with test-time augmentation.
    Returns:
        A ``Comparison``.
    """
    options = TrainingOptions.of(options, **changes)
    if metric not in COMPARE_METRICS:
        raise ValueError(f"metric={metric!r}: use one of {', '.join(COMPARE_METRICS)}.")
    if val is None and options.val_split is None:
        options = options.replace(val_split=0.3)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("seeds: give at least one (e.g. 3: seeds 0, 1, 2).")
    candidates = list(candidates) if candidates is not None else candidates_of()
    if not candidates:
        raise ValueError("candidates: give at least one recipe to compare.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out} is a file; give a folder for the comparison.")
    train_set = data if isinstance(data, ImageFolder) else ImageFolder.read(data, on_bad_file=options.on_bad_file)
    if val is not None:
        val_set = val if isinstance(val, ImageFolder) else ImageFolder.read(val, class_names=train_set.class_names)
    else:
        train_set, val_set = train_set.split(1 - options.val_split, seed=options.seed)
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
    out.mkdir(parents=True, exist_ok=True)
    with lock(out, LOCK, "comparison", "--out"):
        _check_settings(out, settings, overwrite)
        runs, complete = _run_all(
            train_set, val_set, options, candidates, seed_list, out, time_limit, keep_models, verbose, tta
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


def _run_all(train_set, val_set, options, candidates, seeds, out, time_limit, keep_models, verbose, tta=False):
    """Every candidate x seed, seed by seed (so a time limit leaves every candidate equally sampled).

    Each run trains in a Python process of its own (``compare_worker``): Keras does not give
    back the memory of a model fitted in a loop, even after ``clear_session``
    (keras-team/keras#17458; measured here: +0.7 GB per AlexNet run), which a comparison of
    dozens of runs cannot afford. A fresh interpreter, not multiprocessing: a user's script
    without a ``__main__`` guard would be run again by a spawned child. The activation caches
    go through ``out/activations`` to the runs that share them.
    """
    plan = [(seed, candidate) for seed in seeds for candidate in candidates]
    progress = _Progress(len(plan), options.epochs, verbose)
    runs, complete = [], True
    for index, (seed, candidate) in enumerate(plan):
        run_dir = out / "runs" / f"{candidate.slug}-seed{seed}"
        record_path = run_dir / RESULT
        if record_path.exists():
            runs.append(RunRecord(**json.loads(record_path.read_text())))
            progress.skip(index, candidate, seed)
            continue
        if time_limit is not None and progress.elapsed() > time_limit:
            complete = False
            break
        run_options = options.replace(
            recipe=candidate.recipe,
            head=candidate.head,
            learning_rate=candidate.learning_rate,
            seed=seed,
            val_split=None,  # the split made once above, the same for every run
            report=False,  # the comparison's table and curves are its report
            save_models=keep_models,
            cache_activations=options.augment == "none" and RECIPES[candidate.recipe].cacheable,
        )
        job = {
            "train": train_set.to_dict(),
            "val": val_set.to_dict(),
            "options": run_options.to_dict(),
            "run_dir": str(run_dir),
            "resume": RunDirectory(run_dir).has_backup(),
            # The run's process knows the built-in table only: it gets the entries this run uses.
            "recipe": RECIPES[candidate.recipe].to_dict(),
            "head": HEADS[candidate.head].to_dict(),
            "shared": str(out / ACTIVATIONS),
            "candidate": dataclasses.asdict(candidate),
            "seed": seed,
            "progress": progress.state(index, candidate, seed),
            "parent": os.getpid(),
            "tensorflow_logs": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") < "3",
            "tta": tta,
        }
        started = time.perf_counter()
        record = _train_in_process(job)
        runs.append(record)
        progress.finish(record, time.perf_counter() - started)
    return runs, complete


def _train_in_process(job):
    """Run one job in a fresh Python (``compare_worker``); its record, or its error raised here."""
    run_dir = Path(job["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    job_path = run_dir / JOB
    text = json.dumps(job)
    atomic_write(job_path, lambda tmp: Path(tmp).write_text(text))
    for stale in (OUTCOME, ERROR):
        (run_dir / stale).unlink(missing_ok=True)
    # The worker runs as a file, not with -m, which would import keras_alexnet.experiments (and
    # TensorFlow, printing its start-up lines) before the worker can hide them.
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("worker.py")), str(job_path)], env=env)
    outcome, error = run_dir / OUTCOME, run_dir / ERROR
    if done.returncode == 0 and outcome.exists():
        found = json.loads(outcome.read_text())
        return RunRecord(**found["record"])
    where = f"{Candidate(**job['candidate']).name}, seed {job['seed']} ({run_dir})"
    if error.exists():
        found = json.loads(error.read_text())
        kind = TrainingDiverged if found["type"] == "TrainingDiverged" else ValueError
        raise kind(f"{where}: {found['message']}")
    raise RuntimeError(f"{where}: the run's process ended with exit code {done.returncode} and no result.")


def run_job(job):
    """The run's own process: train one candidate with one seed, write ``result.json`` and ``outcome.json``.

    An error is written to ``error.json`` for the comparison to raise (exit code 1).
    """
    run_dir = Path(job["run_dir"])
    try:
        register_recipe(Recipe.from_dict(job["recipe"]), replace=True)
        register_head(Head(**job["head"]), replace=True)
        folders = {side: ImageFolder.from_dict(job[side]) for side in ("train", "val")}
        candidate = Candidate(**job["candidate"])
        line = _EpochLine(job["progress"])
        result = train(
            folders["train"],
            TrainingOptions(**job["options"]),
            val=folders["val"],
            run_dir=run_dir,
            resume=job["resume"],
            overwrite=not job["resume"],  # the run directory is the comparison's own
            callbacks=[line],
            verbose=0,
            shared_activations=job["shared"],
        )
        scored = evaluate(result.model, folders["val"], tta=True) if job.get("tta") else None
        record = dataclasses.asdict(_record(candidate, job["seed"], result, scored))
        atomic_write(run_dir / RESULT, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
        outcome = json.dumps({"record": record})
        atomic_write(run_dir / OUTCOME, lambda tmp: Path(tmp).write_text(outcome))
        return 0
    except Exception as error:  # the comparison raises it, naming the run
        message = json.dumps({"type": type(error).__name__, "message": str(error)})
        atomic_write(run_dir / ERROR, lambda tmp: Path(tmp).write_text(message))
        return 1


def _record(candidate, seed, result, scored=None):
    """The run's record: its scores at the epoch its output network kept (``scored``: an ``Evaluation``
    with test-time augmentation, whose scores replace the epoch's)."""
    history = result.history
    accuracy = [float(v) for v in history.get("val_accuracy", [])]
    loss = [float(v) for v in history.get("val_loss", [])]
    if not accuracy:
        raise ValueError("compare needs validation data: give --val or --val-split.")
    kept = min(result.output_epoch or len(accuracy), len(accuracy)) - 1
    balanced = history.get("val_balanced_accuracy") or [float("nan")] * len(accuracy)
    macro = history.get("val_macro_f1") or [float("nan")] * len(accuracy)
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
    )


class _Progress:
    """One line per epoch: which run, which epoch, elapsed and an estimate of the time left."""

    def __init__(self, runs, epochs, verbose):
        self.runs, self.epochs, self.verbose = runs, epochs, verbose
        self.started = time.perf_counter()
        self.run_seconds = []  # of the runs trained in this call, for the estimate
        self.index = 0
        self.label = ""

    def elapsed(self):
        return time.perf_counter() - self.started

    def _print(self, text):
        if self.verbose:
            print(text, file=sys.stdout, flush=True)

    def skip(self, index, candidate, seed):
        self._print(f"[{index + 1}/{self.runs}] {candidate.name}, seed {seed}: finished before, kept")

    def state(self, index, candidate, seed):
        """What the run's own process needs to print its epoch lines."""
        self.index, self.label = index, f"{candidate.name}, seed {seed}"
        return {
            "prefix": f"[{index + 1}/{self.runs}] {self.label}",
            "epochs": self.epochs,
            "elapsed": self.elapsed(),
            "per_run": statistics.fmean(self.run_seconds) if self.run_seconds else None,
            "runs_after": self.runs - index - 1,
            "verbose": self.verbose,
        }

    def finish(self, record, wall_seconds):
        """``wall_seconds``: the run's whole time here, its process's start-up included."""
        self.run_seconds.append(wall_seconds)
        self._print(
            f"[{self.index + 1}/{self.runs}] {self.label}: validation accuracy {record.val_accuracy:.3f} "
            f"in {record.seconds:.0f} s"
        )


def time_left(state, epochs_done, seconds_in_run):
    """Seconds the comparison has left after ``epochs_done`` epochs of the current run, which has taken
    ``seconds_in_run``: the mean time of the runs before (whole runs: the process's start-up, caches and
    evaluation included, not the epochs alone), or in the first run, its own pace per epoch so far."""
    if state["per_run"]:
        current = max(state["per_run"] - seconds_in_run, 0.0)
        return current + state["per_run"] * state["runs_after"]
    pace = seconds_in_run / max(epochs_done, 1)
    return pace * (state["epochs"] - epochs_done + state["epochs"] * state["runs_after"])


class _EpochLine(keras.callbacks.Callback):
    """Prints the comparison's line at the end of each epoch of a run (in the run's process)."""

    def __init__(self, state):
        super().__init__()
        self.state = state
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        in_run = time.perf_counter() - self._started
        left = time_left(state, epoch + 1, in_run)
        elapsed = state["elapsed"] + in_run
        accuracy = (logs or {}).get("val_accuracy")
        shown = f", val accuracy {accuracy:.3f}" if accuracy is not None else ""
        if state["verbose"]:
            print(
                f"{state['prefix']}: epoch {epoch + 1}/{state['epochs']}{shown} | {_duration(elapsed)} elapsed, "
                f"about {_duration(left)} left",
                flush=True,
            )


def _duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
