"""``train --workers N``: the run on N workers of Ray Train's ``TensorflowTrainer``, or on the workers a
user's own launcher started with ``TF_CONFIG`` (Kubernetes TFJob, Vertex AI, a script).

Ray Train starts the workers, sets ``TF_CONFIG`` in each and, when a worker is lost, restarts the
group (``FailureConfig``); the restarted workers resume from the run's last backup. Each worker runs
``multi_worker.train_worker``; the chief (worker 0) writes the run directory and, at the end, the
model with the epoch the output network keeps and its temperature (the caller writes the report:
``keras_alexnet.report.report_run``). The driver (this
process, or with ``TF_CONFIG`` the chief itself) holds the run directory's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time

from keras_alexnet._utils import ray_cluster, signals
from keras_alexnet._utils.files import nothing_left_if
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.options import AUTO, TrainingOptions, absolute_source
from keras_alexnet.recipes import HEADS, RECIPES, Head, Recipe, register_head, register_recipe
from keras_alexnet.run_directory import RunDirectory
from keras_alexnet.training import worker_process
from keras_alexnet.training.finishing import FINISHING, RunEnd
from keras_alexnet.training.loop import check_outside_data
from keras_alexnet.training.multi_worker import (
    check_supported,
    cluster_spec,
    strategy_for_workers,
    train_worker,
    use_cpus,
)
from keras_alexnet.training.resume import (
    WORKERS,
    check_resume,
    check_same_data,
    data_record,
    record_data,
    record_resume,
    resumed_folders,
    resumed_options,
)
from keras_alexnet.training.rule import with_named_recipe
from keras_alexnet.training.sets import read_sets, record_validation_set
from keras_alexnet.training.setup import build_model

GRPC_NOTE = (
    "note: the workers exchange gradients over TensorFlow's gRPC servers, which listen on every interface with no "
    "authentication: train on several workers only where trusted hosts alone reach these machines."
)


def train_on_workers(
    data,
    options=None,
    *,
    workers,
    val=None,
    run_dir=RunDirectory.DEFAULT,
    resume=False,
    overwrite=False,
    address=None,
    cpus_per_worker=1,
    gpus_per_worker=0,
    verbose=1,
    resolve=None,
    **changes,
):
    """Train on ``workers`` Ray Train workers (``MultiWorkerMirroredStrategy``), on this machine or the cluster
    at ``address``; ``run_dir`` must be on storage every node mounts. Returns the run's
    ``RunResult`` (the epoch kept, the temperature, ...).

    The global batch (``options.batch_size``) is split across the workers; a lost worker makes Ray
    Train restart the group, which resumes from the last backup. ``resolve(options, train_set, val_set,
    run)``: the options a ``recipe="auto"`` stands for (``experiments.auto.resolve_auto``, whose
    comparison runs on the same cluster), called once the run directory is started.
    """
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers={workers!r}: give a whole number of workers, 1 or more.")
    run = RunDirectory(run_dir)
    options = resumed_options(run, options, **changes) if resume else TrainingOptions.of(options, **changes)
    if options.recipe == AUTO and resolve is None:
        raise ValueError("recipe='auto' on several workers needs resolve= (keras_alexnet.experiments.auto).")
    check_supported(options)
    with nothing_left_if(ray_cluster.ClusterError, run.path):  # refused before any work: nothing left behind
        return _train_on_ray(
            run,
            data,
            val,
            options,
            resume,
            overwrite,
            address,
            workers,
            verbose,
            resolve,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
        )


def _train_on_ray(
    run, data, val, options, resume, overwrite, address, workers, verbose, resolve, cpus_per_worker, gpus_per_worker
):
    """``train_on_workers`` after its checks: the sets, the cluster's checks, the run started, Ray Train's fit."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    train_set, val_set = _prepare(run, data, val, options, resume)
    options, reason = with_named_recipe(options, train_set, verbose)
    with ray_cluster.connect(address) as ray:
        ray_cluster.check_resources(
            ray, cpus_per_worker, gpus_per_worker, workers, "worker", "--cpus-per-worker, --gpus-per-worker"
        )
        ray_cluster.check_shared(ray, run.path)
        with run.locked():
            _start(run, data, val, options, train_set, val_set, resume, overwrite)
            if options.recipe == AUTO:  # the comparison's trials spread over the same cluster
                options = resolve(options, train_set, val_set, run)
                check_supported(options)
                options.save(run.options)
            config = {
                "train": train_set.to_dict(),
                "val": val_set.to_dict() if val_set is not None else None,
                "options": options.replace(weights=absolute_source(options.weights)).to_dict(),
                "run_dir": str(run.path.resolve()),
                "recipe": RECIPES[options.recipe].to_dict(),
                "head": HEADS[options.head].to_dict(),
                "verbose": verbose,
                "cpus": cpus_per_worker,
                "workers": workers,
                "recipe_reason": reason,
            }
            trainer = TensorflowTrainer(
                worker_process.trainable_loop(),
                train_loop_config=config,
                scaling_config=ScalingConfig(
                    num_workers=workers,
                    use_gpu=gpus_per_worker > 0,
                    resources_per_worker={"CPU": cpus_per_worker, "GPU": gpus_per_worker},
                ),
                run_config=RunConfig(
                    name=f"train-{int(time.time())}",
                    storage_path=str(run.ray_train.resolve()),
                    failure_config=FailureConfig(max_failures=ray_cluster.MAX_FAILURES),
                ),
            )
            if verbose:
                print(GRPC_NOTE)
            with ray_cluster.quiet_stderr(), _epoch_lines(run, workers, options.epochs, verbose):
                signals.off_the_main_thread(trainer.fit)
    with contextlib.suppress(OSError):  # Ray Train's records of a run that has ended
        run.clear_ray_train()
    return run.result()


@contextlib.contextmanager
def _epoch_lines(run, workers, epochs, verbose):
    """Print each epoch's row of the chief's ``log.csv`` as it appears (the workers' output stays in Ray's logs)."""
    stop = threading.Event()
    shown = set()

    def watch():
        while True:
            finished = stop.wait(0.5)
            for row in run.log_rows():
                epoch = row["epoch"]
                if epoch not in shown:
                    shown.add(epoch)
                    scores = ", ".join(f"{key} {value:.4f}" for key, value in row.items() if key != "epoch")
                    print(f"epoch {epoch + 1}/{epochs} on {workers} workers: {scores}", flush=True)
            if finished:
                return

    thread = threading.Thread(target=watch, daemon=True)
    if verbose:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if verbose:
            thread.join()


def train_with_tf_config(
    data, options=None, *, val=None, run_dir=RunDirectory.DEFAULT, resume=False, overwrite=False, verbose=1, **changes
):
    """This process's share of a run on the workers ``TF_CONFIG`` names (the user's launcher started them all
    with the same command). The chief holds the lock and writes the run directory; the others only read it.
    Returns the run's ``RunResult`` (the chief) or None."""
    workers, index, chief = cluster_spec()
    strategy = strategy_for_workers()  # before any other TensorFlow op of the process
    run = RunDirectory(run_dir)
    options = resumed_options(run, options, **changes) if resume else TrainingOptions.of(options, **changes)
    check_supported(options)
    if not chief:
        train_set, val_set = read_sets(data, val, options)
        options, _ = with_named_recipe(options, train_set)  # every worker reads the same data: the same recipe
        train_worker(train_set, val_set, options, run.path, strategy, chief=False, verbose=0)
        return None
    train_set, val_set = _prepare(run, data, val, options, resume)
    options, reason = with_named_recipe(options, train_set, verbose)
    with run.locked():
        _start(run, data, val, options, train_set, val_set, resume, overwrite)
        if verbose:
            print(GRPC_NOTE)
        fitted = train_worker(train_set, val_set, options, run.path, strategy, chief=True, verbose=verbose)
        _finish(run, options, train_set, val_set, fitted, verbose, workers, reason)
    return run.result()


def _prepare(run, data, val, options, resume):
    """The sets, after the checks ``train`` makes before any work (the recorded data on a resume)."""
    if resume:
        data, val = resumed_folders(run, data, val, options)
    check_outside_data(run, data, val)
    train_set, val_set = read_sets(data, val, options)
    run.check_can_start(resume)
    if resume:
        check_same_data(run, train_set, val_set)
    return train_set, val_set


def _start(run, data, val, options, train_set, val_set, resume, overwrite):
    """Start the run directory (new, or a checked resume) before the workers start."""
    if resume:
        done, _ = run.check_resumable(len(train_set.class_names))
        record_resume(run, done, check_resume(run, options, done))
    else:
        run.start_new(overwrite)
        record_data(run, data_record(data, val, train_set, val_set, WORKERS))
    options.save(run.options)
    if val_set is not None:
        record_validation_set(val_set, run.validation)


def worker_loop(config):
    """One Ray Train worker (``TF_CONFIG`` set by Ray Train; ``worker_process.run`` calls it); the chief also
    finishes the run."""
    import ray
    import ray.train

    register_recipe(Recipe.from_dict(config["recipe"]), replace=True)
    register_head(Head(**config["head"]), replace=True)
    use_cpus(config["cpus"])
    strategy = strategy_for_workers()
    rank = ray.train.get_context().get_world_rank()
    chief = rank == 0
    where = {"rank": rank, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
    folder = RunDirectory(config["run_dir"]).ray_train
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"worker-{rank}.json").write_text(json.dumps(where))  # which node holds which worker
    train_set = ImageFolder.from_dict(config["train"])
    val_set = ImageFolder.from_dict(config["val"]) if config["val"] is not None else None
    options = TrainingOptions(**config["options"])
    run = RunDirectory(config["run_dir"])
    fitted = train_worker(train_set, val_set, options, run.path, strategy, chief, verbose=config["verbose"])
    if chief:
        _finish(run, options, train_set, val_set, fitted, config["verbose"], config["workers"], config["recipe_reason"])


def _finish(run, options, train_set, val_set, fitted, verbose, workers, recipe_reason=None):
    """The chief, after the last epoch: the finishing steps one process runs (``finishing.FINISHING``: the output
    network's epoch, the temperature, the checks, test-time augmentation, ``model.keras``, the record), on a
    copy of the model made outside the strategy (it saves like ``train``'s)."""
    plain = build_model(options, len(train_set.class_names))
    plain.set_weights(fitted.model.get_weights())
    val_ds = val_set.dataset(options.batch_size) if val_set is not None else None
    end = RunEnd(
        dataclasses.replace(fitted, model=plain, val_ds=val_ds),
        options,
        run,
        train_set,
        val_set,
        verbose,
        recipe_reason=recipe_reason,
        workers=workers,
    )
    for step in FINISHING:
        step(end)
