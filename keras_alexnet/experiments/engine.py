"""Where a comparison's runs train: trials of Ray Tune, on this machine or on a cluster.

A trial is one whole ``train`` run (``trial.run_job``) in a fresh Ray worker process (Keras
keeps a fitted model's memory for the life of a process), which imports Keras as a command's
process does (``runtime.quiet_tensorflow(own_process=True)``). Ray Tune decides where and when each
trial runs, retries a trial whose node or process is lost (``FailureConfig``), and the retried
run resumes from its own backup in the shared ``--out``. Nothing here schedules; joining Ray and
checking the cluster is ``_utils.ray_cluster``'s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from keras_alexnet._utils import ray_cluster
from keras_alexnet._utils.ray_cluster import quiet_stderr
from keras_alexnet._utils.runtime import environment, quiet_tensorflow

# A retried trial resumes from its backup; a run that fails as such (bad data, divergence) says so in
# error.json and is not retried: only lost nodes and processes are.


def run_trials(ray, jobs, out, *, cpus=1, gpus=0, on_result=None):
    """Run ``jobs`` (``compare``'s job dicts) as Ray Tune trials, in order; returns when all have ended.

    Each trial requests ``cpus`` CPUs and ``gpus`` GPUs; a lost node or process is retried (up to
    ``ray_cluster.MAX_FAILURES``), resuming from the run's backup. ``on_result(job, result)`` is called in this
    process as each trial starts (``{"started": True}``; again after a retry) and with each of its
    reports (its epochs, then ``{"done": True}``).
    """
    from ray import tune

    if not jobs:
        return
    callback = _Reports(jobs, on_result)
    tuner = tune.Tuner(
        _trainable(cpus, gpus),
        param_space={"index": tune.grid_search(list(range(len(jobs)))), "jobs": jobs},
        tune_config=tune.TuneConfig(reuse_actors=False),
        run_config=tune.RunConfig(
            name=f"compare-{int(time.time())}",
            storage_path=str(Path(out).resolve() / "tune"),  # compare.TUNE
            failure_config=tune.FailureConfig(max_failures=ray_cluster.MAX_FAILURES),
            verbose=0,
            callbacks=[callback],
        ),
    )
    # Ray Tune's own SIGINT handler stops the trials and returns from fit as if the comparison had ended; without
    # it, Ctrl-C is the command's KeyboardInterrupt, as everywhere else (its line, its lock released).
    with quiet_stderr(), environment(TUNE_DISABLE_SIGINT_HANDLER="1"):
        grid = tuner.fit()
    failed = [result for result in grid if result.error is not None]
    if failed:  # the trial itself failed, past its retries (the run's own errors are in error.json)
        raise RuntimeError(f"a trial failed on the cluster after {ray_cluster.MAX_FAILURES} retries: {failed[0].error}")


def _trainable(cpus, gpus):
    """``_trial`` for Tune, with its resources, pickled by value: ``_trial`` imports Keras alone (without its
    extras, TensorFlow's start-up lines hidden) before anything else of keras-alexnet."""
    from ray import tune

    return tune.with_resources(ray_cluster.pickled_by_value(_trial), {"cpu": cpus, "gpu": gpus})


def _trial(config):
    """One Tune trial: the job at ``config["index"]``, in this fresh worker process."""
    from ray import tune

    job = dict(config["jobs"][config["index"]])
    job["node"], job["node_id"] = _node()
    cpus = int(max(tune.get_context().get_trial_resources().required_resources.get("CPU", 1), 1))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(cpus))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(min(cpus, 2)))
    with quiet_tensorflow(own_process=True):
        from keras_alexnet.experiments.trial import run_job

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
