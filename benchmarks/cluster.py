"""More than one machine, measured on one: Ray clusters of 1-CPU nodes made with ``ray.cluster_utils``.

    python benchmarks/cluster.py [--candidates 4] [--seeds 2] [--epochs 2] [--only comparison|overhead|workers] [--quick]

Three measurements, each side by side in one run (report ratios, never absolute times):

1. **comparison**: the same ``compare`` (``--candidates`` recipes x heads, ``--seeds``, the shipped photos,
   AlexNet with the shipped ImageNet convolutions) on a cluster of one 1-CPU node and of two;
   wall-time ratio (goal: at least 1.7x).
2. **per-trial overhead**: Ray's own cost per trial against the process pool compare used before
   (a fresh Python that imports keras-alexnet and TensorFlow, what both pay): empty trials that do
   that import, against ``subprocess.run`` of the same import, and Ray's start-up; as a share of
   the comparison's wall time in (1).
3. **train --workers**: ``train_on_workers`` with 2 workers against 1 worker (1 CPU each; frozen
   features, the compact head), images per second over the epochs after the first (a 6-epoch run
   less a 1-epoch run: start-up cancels out).

``--quick`` makes everything small (the tiny network, 2 candidates): a smoke run.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import cpu_flags, cpu_name  # noqa: E402  (the same machine description as run.py)

PHOTOS = ROOT / "tests" / "data" / "cats_vs_dogs"
IMPORT = "import keras_alexnet.experiments.compare"
TRAINING_IMAGES = sum(1 for path in (PHOTOS / "train").rglob("*") if path.is_file())


def _cluster(nodes):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(nodes):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
    return cluster


def _shutdown(cluster):
    import ray

    ray.shutdown()
    cluster.shutdown()


def comparison(nodes, candidates, seeds, options, folder):
    """Wall seconds of one comparison on ``nodes`` 1-CPU nodes."""
    from keras_alexnet.experiments import compare

    cluster = _cluster(nodes)
    try:
        started = time.perf_counter()
        compare(
            PHOTOS / "train", val=PHOTOS / "test", candidates=candidates, seeds=seeds, out=folder, verbose=0, **options
        )
        return time.perf_counter() - started
    finally:
        _shutdown(cluster)


def _import_trial(config):
    subprocess_free = time.perf_counter()
    exec(IMPORT)  # the import a comparison's run makes first, in this fresh worker process
    from ray import tune

    tune.report({"seconds": time.perf_counter() - subprocess_free})


def overhead(trials, folder):
    """(Ray start-up s, Ray s per empty trial, pool s per empty run): the trials and runs import the package."""
    import ray
    from ray import tune

    from keras_alexnet._utils.ray_cluster import connect, quiet_stderr

    started = time.perf_counter()
    with connect():
        startup = time.perf_counter() - started
        began = time.perf_counter()
        tuner = tune.Tuner(
            tune.with_resources(_import_trial, {"cpu": 1}),
            param_space={"index": tune.grid_search(list(range(trials)))},
            tune_config=tune.TuneConfig(max_concurrent_trials=1),
            run_config=tune.RunConfig(storage_path=str(Path(folder).resolve()), verbose=0),
        )
        with quiet_stderr():
            tuner.fit()
        ray_per_trial = (time.perf_counter() - began) / trials
    assert not ray.is_initialized()
    began = time.perf_counter()
    for _ in range(trials):
        subprocess.run([sys.executable, "-c", IMPORT], check=True, capture_output=True)
    pool_per_run = (time.perf_counter() - began) / trials
    return startup, ray_per_trial, pool_per_run


def workers_rate(workers, options, folder, epochs):
    """Images per second of ``train --workers`` over the epochs after the first (from ``history.json``'s clock)."""
    from keras_alexnet.training.on_workers import train_on_workers

    cluster = _cluster(workers)
    try:
        started = time.perf_counter()
        train_on_workers(
            PHOTOS / "train", workers=workers, val=PHOTOS / "test", run_dir=folder, epochs=epochs, verbose=0, **options
        )
        wall = time.perf_counter() - started
    finally:
        _shutdown(cluster)
    return TRAINING_IMAGES * epochs / wall, wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--only", choices=("comparison", "overhead", "workers"))
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from keras_alexnet.experiments import candidates_of

    base = {"batch_size": 32, "epochs": args.epochs, "report": False}
    if args.quick:
        base.update(architecture="tiny", weights=None, epochs=1)
        args.candidates, args.trials = 2, 2
    chosen = candidates_of(heads=("compact", "alexnet"))[: args.candidates]
    print(f"Machine: {cpu_name()}, flags: {cpu_flags()}; Python {sys.version.split()[0]}")
    parts = [args.only] if args.only else ["comparison", "overhead", "workers"]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        one = None
        if "comparison" in parts or "overhead" in parts:
            one = comparison(1, chosen, args.seeds, base, scratch / "one")
        if "comparison" in parts:
            two = comparison(2, chosen, args.seeds, base, scratch / "two")
            print(
                f"comparison ({len(chosen)} candidates x {args.seeds} seeds, {base['epochs']} epochs, "
                f"{'tiny' if args.quick else 'AlexNet'}): 1 node {one:.1f} s, 2 nodes {two:.1f} s, "
                f"speed-up {one / two:.2f}x"
            )
        if "overhead" in parts:
            startup, ray_trial, pool_run = overhead(args.trials, scratch / "overhead")
            share = (startup + len(chosen) * args.seeds * max(ray_trial - pool_run, 0.0)) / one
            print(
                f"per-trial overhead ({args.trials} empty trials that import keras-alexnet): Ray start-up {startup:.1f} "
                f"s, Ray {ray_trial:.2f} s per trial, the old process pool {pool_run:.2f} s per run, ratio "
                f"{ray_trial / pool_run:.2f}x; Ray's extra cost {share:.1%} of the 1-node comparison's wall time"
            )
        if "workers" in parts:
            options = {"recipe": "frozen-features", "head": "compact", "batch_size": 32, "report": False}
            if args.quick:
                options.update(architecture="tiny", weights=None)
            rates = {}
            for workers in (1, 2):
                _, short_wall = workers_rate(workers, options, scratch / f"w{workers}a", 1)
                _, long_wall = workers_rate(workers, options, scratch / f"w{workers}b", 6)
                rates[workers] = 5 * TRAINING_IMAGES / max(long_wall - short_wall, 1e-9)  # the epochs after the first
            print(
                f"train --workers (frozen-features, compact head, batch 32, epochs after the first): 1 worker "
                f"{rates[1]:.1f} images/s, 2 workers {rates[2]:.1f} images/s, {rates[2] / rates[1]:.2f}x"
            )
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
