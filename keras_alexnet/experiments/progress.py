"""What a comparison prints while its trials run: a line per epoch of each run (which run, which node,
elapsed and an estimate of the time left) and one when a run ends."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from keras_alexnet.run_directory import RunDirectory


class Progress:
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
            record = Path(job["run_dir"]) / RunDirectory.TRIAL_RESULT
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
            f"{duration(self.elapsed())} elapsed, about {duration(left)} left"
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


def duration(seconds):
    """``1m05s`` or ``42s``."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
