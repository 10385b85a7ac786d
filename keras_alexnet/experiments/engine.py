"""Where a comparison's runs train: trials of Ray Tune, on this machine or on a cluster.

A trial is one whole ``train`` run (``compare.run_job``) in a fresh Ray worker process (Keras
keeps a fitted model's memory for the life of a process). Ray Tune decides where and when each
trial runs, retries a trial whose node or process is lost (``FailureConfig``), and the retried
run resumes from its own backup in the shared ``--out``. Nothing here schedules.

- ``connect(address)``: Ray on this machine (started in-process, no setup) or an existing cluster
  (``HOST:PORT``, or ``RAY_ADDRESS``), with one-line errors for an unreachable address.
- ``check_shared(out)``: every node sees ``out`` (each writes a marker the driver reads back).
- ``run_trials(jobs, ...)``: the jobs as trials; returns when every trial has ended.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import uuid
from pathlib import Path

from keras_alexnet._utils.runtime import quiet_tensorflow

RAY_EXTRA = "pip install 'ray[tune]'"
# A retried trial resumes from its backup; a run that fails as such (bad data, divergence) says so in
# error.json and is not retried: only lost nodes and processes are.
MAX_FAILURES = 3
CONNECT_SECONDS = 30
# The object store holds nothing of ours (the runs exchange files): the smallest Ray allows.
OBJECT_STORE_BYTES = 100 * 2**20


class ClusterError(ValueError):
    """Ray or the cluster cannot run the comparison as asked; the message says why and what to do."""


def import_ray():
    """Ray, or a one-line error naming what installs it."""
    # Tune's own tables and banners: the comparison prints its own lines.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise ClusterError(f"running trials needs Ray Tune, which is not installed: {RAY_EXTRA}.") from None
    return ray


def _reachable(address, seconds):
    """None if ``HOST:PORT`` accepts a TCP connection within ``seconds``, else why not."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"{address!r} is not HOST:PORT (e.g. 10.0.0.5:6379)"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return None
    except OSError as error:
        return error.strerror or str(error)


@contextlib.contextmanager
def connect(address=None):
    """Ray for the block: ``address`` (``HOST:PORT``; default ``RAY_ADDRESS``) joins that cluster, None
    starts Ray on this machine for the block (its CPUs, a small object store, no dashboard).
    Yields ``ray``; disconnects (and stops a Ray it started) at the end."""
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():  # a caller's own Ray (a test's cluster, a notebook): use it as it is
        yield ray
        return
    settings = {"log_to_driver": False, "logging_level": logging.ERROR, "include_dashboard": False}
    if address is not None and address != "auto":
        problem = _reachable(address, CONNECT_SECONDS)
        if problem:
            raise ClusterError(
                f"--address {address}: no Ray cluster answers there ({problem}). Start one with `ray start --head` "
                "on the head node (and `ray start --address HEAD:6379` on the others), or leave out --address to run "
                "on this machine."
            )
    if address is None:  # a new Ray of this process's own, whatever other Ray runs on the machine
        settings.update(address="local", object_store_memory=OBJECT_STORE_BYTES)
    else:
        settings["address"] = address
    with _quiet_stderr():
        try:
            ray.init(**settings)
        except ConnectionError as error:
            raise ClusterError(f"--address {address}: could not join the Ray cluster ({error}).") from None
    try:
        yield ray
    finally:
        with _quiet_stderr():
            ray.shutdown()


@contextlib.contextmanager
def _quiet_stderr():
    """Ray's start-up and shut-down lines (native and Python) go to its log files, not the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def nodes(ray):
    """The alive nodes: ``[{"id", "address", "cpus", "gpus"}]``."""
    return [
        {
            "id": node["NodeID"],
            "address": node["NodeManagerAddress"],
            "cpus": node["Resources"].get("CPU", 0),
            "gpus": node["Resources"].get("GPU", 0),
        }
        for node in ray.nodes()
        if node["Alive"]
    ]


def check_resources(ray, cpus, gpus):
    """Refuse a trial no node can hold (more CPUs or GPUs than any node has): Ray would wait for ever."""
    alive = nodes(ray)
    if not any(node["cpus"] >= cpus and node["gpus"] >= gpus for node in alive):
        have = ", ".join(f"{node['address']}: {node['cpus']:g} CPUs, {node['gpus']:g} GPUs" for node in alive)
        raise ClusterError(
            f"each trial asks for {cpus:g} CPUs and {gpus:g} GPUs, which no node of the cluster has ({have}). "
            "Ask for less (--cpus-per-trial, --gpus-per-trial) or add a node that has them."
        )


def trial_slots(ray, cpus, gpus):
    """How many trials of ``cpus`` CPUs and ``gpus`` GPUs the cluster runs at once."""
    total = 0
    for node in nodes(ray):
        fits = [node["cpus"] // cpus if cpus else float("inf"), node["gpus"] // gpus if gpus else float("inf")]
        total += int(min(fits)) if min(fits) != float("inf") else 0
    return max(total, 1)


def _path_on_nodes(path):
    """The path the nodes are told to use: the same as here (shared storage mounts at one path)."""
    return path


def check_shared(ray, out):
    """Before any trial: every node sees ``out`` as this process does. Each node reads the driver's marker and
    writes its own, which the driver reads back; a node that cannot is named."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    out = Path(out).resolve()
    markers = out / ".nodes"
    markers.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    (markers / f"driver-{token}").write_text(token)

    @ray.remote(num_cpus=0, max_retries=0)
    def probe(folder, token, node):
        folder = Path(folder)
        seen = (folder / f"driver-{token}").exists()
        try:
            (folder / f"{node}-{token}").write_text(node)
            wrote = True
        except OSError:
            wrote = False
        return seen, wrote

    alive = nodes(ray)
    try:
        answers = ray.get(
            [
                probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["id"], soft=False)).remote(
                    str(_path_on_nodes(markers)), token, node["id"]
                )
                for node in alive
            ],
            timeout=CONNECT_SECONDS * 2,
        )
        for node, (seen, wrote) in zip(alive, answers):
            if not (seen and wrote and (markers / f"{node['id']}-{token}").exists()):
                raise ClusterError(
                    f"--out {out} is not shared with node {node['address']}: it "
                    f"{'cannot see' if not seen else 'cannot write'} the folder this process writes. Give an --out on "
                    "storage every node mounts at the same path (NFS and the like)."
                )
    finally:
        for marker in markers.glob(f"*{token}"):
            marker.unlink(missing_ok=True)


def run_trials(ray, jobs, out, *, cpus=1, gpus=0, on_result=None):
    """Run ``jobs`` (``compare``'s job dicts) as Ray Tune trials, in order; returns when all have ended.

    Each trial requests ``cpus`` CPUs and ``gpus`` GPUs; a lost node or process is retried (up to
    ``MAX_FAILURES``), resuming from the run's backup. ``on_result(job, result)`` is called in this
    process as each trial starts (``{"started": True}``; again after a retry) and with each of its
    reports (its epochs, then ``{"done": True}``).
    """
    from ray import tune

    if not jobs:
        return
    callback = _Reports(jobs, on_result)
    trainable = tune.with_resources(_trial, {"cpu": cpus, "gpu": gpus})
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(len(jobs)))), "jobs": jobs},
        tune_config=tune.TuneConfig(reuse_actors=False),
        run_config=tune.RunConfig(
            name=f"compare-{int(time.time())}",
            storage_path=str(Path(out).resolve() / "tune"),  # compare.TUNE
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            verbose=0,
            callbacks=[callback],
        ),
    )
    with _quiet_stderr():
        grid = tuner.fit()
    failed = [result for result in grid if result.error is not None]
    if failed:  # the trial itself failed, past its retries (the run's own errors are in error.json)
        raise RuntimeError(f"a trial failed on the cluster after {MAX_FAILURES} retries: {failed[0].error}")


def _trial(config):
    """One Tune trial: the job at ``config["index"]``, in this fresh worker process."""
    from ray import tune

    job = dict(config["jobs"][config["index"]])
    job["node"], job["node_id"] = _node()
    cpus = int(max(tune.get_context().get_trial_resources().required_resources.get("CPU", 1), 1))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(cpus))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(min(cpus, 2)))
    with quiet_tensorflow():
        from keras_alexnet.experiments.compare import run_job

    def report(values):
        tune.report({**values, "node": job["node"]})

    code = run_job(job, report=report)
    report({"done": True, "code": code})


def _node():
    """(address, ID) of the Ray node this process runs on."""
    import ray

    return ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()


def _reports_class():
    from ray import tune

    class Reports(tune.Callback):
        def __init__(self, jobs, on_result):
            self.jobs, self.on_result = jobs, on_result

        def on_trial_start(self, iteration, trials, trial, **info):
            if self.on_result is not None:
                self.on_result(self.jobs[trial.config["index"]], {"started": True})

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if self.on_result is not None:
                self.on_result(self.jobs[trial.config["index"]], result)

    return Reports


def _Reports(jobs, on_result):  # noqa: N802 (a class made when Ray is imported)
    return _reports_class()(jobs, on_result)


def describe(ray):
    """One line: the cluster's nodes, CPUs and GPUs."""
    alive = nodes(ray)
    cpus, gpus = sum(node["cpus"] for node in alive), sum(node["gpus"] for node in alive)
    return f"{len(alive)} node{'s' if len(alive) != 1 else ''}, {cpus:g} CPUs, {gpus:g} GPUs"
