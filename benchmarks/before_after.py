"""The keras rows of ``run.py`` for two checkouts of keras-alexnet, their workers alternated in one run.

    python benchmarks/before_after.py --before /tmp/old-clone [--rounds 2] [--tasks inference train:fine-tune-all]

Each round runs the same worker (``run.py --worker``) once with the other checkout's package
first on ``PYTHONPATH`` and once with this one's, so drift of a shared machine hits both alike.
Prints each round's images/s and the medians; a refactoring should leave them within noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("inference", "train:frozen-features", "train:fine-tune-all", "cache")


def worker(checkout, spec):
    """Run ``run.py``'s worker with ``checkout``'s package; its JSON result."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(checkout)}
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=checkout)
    if done.returncode != 0:
        raise RuntimeError(f"worker {spec} with {checkout} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spec_of(task, batch, steps, repeats):
    if task == "cache":  # train() on the shipped photos, uncached then cached, 3 epochs
        return {"kind": "cache", "epochs": 3, "batch": batch}
    return {"kind": "keras", "task": task, "batch": batch, "steps": steps, "repeats": repeats}


def rate(task, result):
    """Images/s of a keras worker; for the cache worker, epochs/minute of cached whole runs (higher is faster)."""
    if task == "cache":
        return 60.0 / result["cached"]["total_s"]
    return result["images_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a checkout of the commit to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    sides = {"before": Path(args.before).resolve(), "after": ROOT}
    print(f"before: {sides['before']}  after: {sides['after']}", flush=True)
    for task in args.tasks:
        rates = {side: [] for side in sides}
        for round_ in range(args.rounds):
            for side in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                result = worker(sides[side], spec_of(task, args.batch, 8, 2))
                rates[side].append(rate(task, result))
        unit = "runs/min (cached, whole train())" if task == "cache" else "img/s"
        shown = {side: ", ".join(f"{value:.2f}" for value in values) for side, values in rates.items()}
        medians = {side: statistics.median(values) for side, values in rates.items()}
        print(
            f"{task:24s} before {shown['before']} | after {shown['after']} {unit}; "
            f"median after/before {medians['after'] / medians['before']:.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
