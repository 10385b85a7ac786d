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

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

from keras_alexnet._utils import ray_cluster
from keras_alexnet._utils.choices import COMPARE_METRICS
from keras_alexnet._utils.disk import DiskFullError
from keras_alexnet._utils.files import atomic_write, nothing_left_if
from keras_alexnet._utils.flags import fields_where
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.experiments import engine
from keras_alexnet.experiments.candidates import RunRecord, candidates_of
from keras_alexnet.experiments.progress import Progress
from keras_alexnet.experiments.tables import CURVES, RUNS_CSV, SUMMARY_CSV, SUMMARY_MD, write_tables
from keras_alexnet.experiments.trial import ERROR, RESULT
from keras_alexnet.options import COMPARE, COMPARE_VAL_SPLIT, absolute_source
from keras_alexnet.recipes import HEADS, RECIPES
from keras_alexnet.run_directory import RunDirectoryError, lock
from keras_alexnet.training import TrainingOptions, read_sets
from keras_alexnet.training.callbacks import TrainingDiverged

SETTINGS = "comparison.json"
LOCK = "comparison.lock"
ACTIVATIONS = "activations"  # the activation caches the runs share (train(..., shared_activations=))
TUNE = "tune"  # Ray Tune's own records of the trials
OUR_FILES = ("runs", ACTIVATIONS, TUNE, SETTINGS, RUNS_CSV, SUMMARY_CSV, SUMMARY_MD, CURVES)
# Options each run takes from its candidate and seed, or that the comparison sets for its runs (their
# fields say so): not part of the settings that decide whether a comparison continues.
PER_RUN_OPTIONS = fields_where(TrainingOptions, lambda facts: facts.per_run)


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
    seed_list, candidates, out = _checked(seeds, candidates, out)
    train_set, val_set = read_sets(data, val, options)  # the checks train makes (the same folder twice, ...)
    settings = _settings(data, train_set, val_set, options, candidates, seed_list, tta)
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


def _checked(seeds, candidates, out):
    """The seeds as a list, the candidates (default: every recipe and head) and the output folder, refused
    when empty or a file."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("seeds: give at least one (e.g. 3: seeds 0, 1, 2).")
    candidates = list(candidates) if candidates is not None else candidates_of()
    if not candidates:
        raise ValueError("candidates: give at least one recipe to compare.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out} is a file; give a folder for the comparison.")
    return seed_list, candidates, out


def _settings(data, train_set, val_set, options, candidates, seeds, tta):
    """What decides whether a comparison continues: the exact split (paths, labels, sides), the shared
    options, the candidates and the seeds."""
    images = hashlib.sha256()
    for path, label in [
        *zip(train_set.paths, train_set.labels),
        ("validation", -1),
        *zip(val_set.paths, val_set.labels),
    ]:
        images.update(f"{path}\t{label}\n".encode())
    return {
        "data": str(data if not isinstance(data, ImageFolder) else "ImageFolder"),
        "images": images.hexdigest(),
        "training_images": len(train_set),
        "validation_images": len(val_set),
        "options": {key: value for key, value in options.to_dict().items() if key not in PER_RUN_OPTIONS},
        "split_seed": options.seed,
        "candidates": [dataclasses.asdict(candidate) for candidate in candidates],
        "seeds": seeds,
        "tta": bool(tta),
    }


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
    extra = {"keep_models": keep_models, "stop_running": stop_running, "tta": tta}
    plan = [(seed, candidate) for seed in seeds for candidate in candidates]
    deadline = None if time_limit is None else time.time() + time_limit
    jobs, finished = [], {}
    for index, (seed, candidate) in enumerate(plan):
        run_dir = _run_dir(out, candidate, seed)
        if (run_dir / RESULT).exists():
            finished[index] = RunRecord(**json.loads((run_dir / RESULT).read_text()))
            continue
        jobs.append(_job(index, candidate, seed, run_dir, train_set, val_set, options, out, deadline, **extra))
    progress = Progress(plan, options.epochs, verbose)
    for index in finished:
        progress.skip(index)
    if jobs and (deadline is None or time.time() <= deadline):  # no Ray started for runs that may not start
        with ray_cluster.connect(cluster.address) as ray:
            ray_cluster.check_resources(ray, cluster.cpus_per_trial, cluster.gpus_per_trial)
            ray_cluster.check_shared(ray, out)
            progress.start(
                ray_cluster.describe(ray), ray_cluster.trial_slots(ray, cluster.cpus_per_trial, cluster.gpus_per_trial)
            )
            engine.run_trials(
                ray, jobs, out, cpus=cluster.cpus_per_trial, gpus=cluster.gpus_per_trial, on_result=progress.report
            )
    return _collect(plan, finished, out)


def _job(index, candidate, seed, run_dir, train_set, val_set, options, out, deadline, keep_models, stop_running, tta):
    """What one trial's process needs to train ``candidate`` with ``seed``: plain data, absolute paths."""
    run_options = candidate.options(options)
    run_options = run_options.replace(
        recipe=candidate.recipe,
        head=candidate.head,
        learning_rate=candidate.learning_rate,
        seed=seed,
        val_split=None,  # the split made once above, the same for every run
        report=False,  # the comparison's table and curves are its report
        save_models=keep_models,
        cache_activations=run_options.activations_cacheable and RECIPES[candidate.recipe].cacheable,
        measure_tta=False,  # --tta scores every run's model with it (the comparison's column)
    )
    return {
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


def _run_dir(out, candidate, seed):
    return out / "runs" / f"{candidate.slug}-seed{seed}"


def _collect(plan, finished, out):
    """The records of the plan's runs, in plan order, and whether every run finished; a run that failed
    raises its error again, naming the candidate and seed."""
    runs, complete = [], True
    for index, (seed, candidate) in enumerate(plan):
        if index in finished:
            runs.append(finished[index])
            continue
        run_dir = _run_dir(out, candidate, seed)
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
