"""A comparison's numbers: per-candidate summaries over seeds, the tie rule, tables and curves."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import statistics
from pathlib import Path

import numpy as np

from keras_alexnet._utils.files import atomic_write

RUNS_CSV, SUMMARY_CSV, SUMMARY_MD, CURVES = "runs.csv", "summary.csv", "summary.md", "curves.png"


@dataclasses.dataclass
class Summary:
    """A candidate over its seeds."""

    candidate: object  # a compare.Candidate: recipe, head, rate
    seeds: int
    mean_accuracy: float
    std_accuracy: float  # over seeds (n - 1); 0 with one seed
    min_accuracy: float
    max_accuracy: float
    mean_loss: float
    best_epoch: int  # the median over seeds of the epoch with the best validation accuracy
    trained_parameters: int
    seconds: float  # mean per run
    verdict: str = ""

    def ties(self, best):
        """Whether this candidate's mean is within ``best``'s seed-to-seed standard deviation of ``best``'s mean.

        The best candidate's own spread says how far its mean could move with other seeds:
        a smaller mean inside it is a tie, not a loss. (A candidate's own large spread does
        not make it a tie: it is as likely to be worse.)
        """
        if best.seeds < 2:
            return self.mean_accuracy == best.mean_accuracy
        return best.mean_accuracy - self.mean_accuracy <= best.std_accuracy


@dataclasses.dataclass
class Comparison:
    """What ``compare`` found; ``summary`` is sorted best first."""

    directory: Path
    runs: list
    summary: list
    complete: bool  # False when a time limit stopped it before every run

    @property
    def best(self):
        return self.summary[0]

    def winner(self):
        """The best candidate by mean accuracy; on a tie, the cheapest (fewest seconds) of those tied with it."""
        tied = [row for row in self.summary if row is self.best or row.ties(self.best)]
        return min(tied, key=lambda row: row.seconds)

    def markdown(self):
        """The summary as a Markdown table."""
        lines = [
            "| candidate | seeds | val accuracy (mean +- std) | min-max | val loss | best epoch | trained parameters "
            "| seconds/run | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in self.summary:
            lines.append(
                f"| {row.candidate.name} | {row.seeds} | {row.mean_accuracy:.3f} +- {row.std_accuracy:.3f} | "
                f"{row.min_accuracy:.3f}-{row.max_accuracy:.3f} | {row.mean_loss:.3f} | {row.best_epoch} | "
                f"{row.trained_parameters:,} | {row.seconds:.0f} | {row.verdict} |"
            )
        return "\n".join(lines) + "\n"

    def __str__(self):
        note = "" if self.complete else "\n(stopped at the time limit: not every run finished)"
        return self.markdown() + note


def summarize(runs):
    """Per-candidate ``Summary`` rows, best mean accuracy first, each with its verdict."""
    by_candidate = {}
    for run in runs:
        by_candidate.setdefault(run.candidate, []).append(run)
    rows = []
    for candidate, group in by_candidate.items():
        accuracy = [run.val_accuracy for run in group]
        if any(not math.isfinite(value) for value in accuracy):
            raise ValueError(f"{candidate.name}: a run ended with a non-finite validation accuracy.")
        rows.append(
            Summary(
                candidate,
                len(group),
                statistics.fmean(accuracy),
                statistics.stdev(accuracy) if len(group) > 1 else 0.0,
                min(accuracy),
                max(accuracy),
                statistics.fmean(run.val_loss for run in group),
                int(statistics.median_low(run.best_epoch for run in group)),
                group[0].trained_parameters,
                statistics.fmean(run.seconds for run in group),
            )
        )
    rows.sort(key=lambda row: -row.mean_accuracy)
    best = rows[0]
    for row in rows:
        if row is best:
            row.verdict = "best" if best.seeds > 1 else "best (1 seed: no spread)"
        elif row.ties(best):
            row.verdict = "tie (within the spread)"
        else:
            row.verdict = f"behind by {best.mean_accuracy - row.mean_accuracy:.3f}"
    return rows


def write_tables(out, runs, complete, run_fields, verbose):
    if not runs:
        raise ValueError("no run finished within the time limit: give it more time.")
    comparison = Comparison(out, runs, summarize(runs), complete)
    """Write ``runs.csv``, ``summary.csv``, ``summary.md`` and ``curves.png`` into ``out``; return the ``Comparison``.

    ``run_fields``: the run records' fields for ``runs.csv`` (its columns).
    """
    fields = [name for name in run_fields if not name.endswith("_curve")]
    _write_csv(out / RUNS_CSV, fields, [[getattr(run, name) for name in fields] for run in runs])
    _write_csv(
        out / SUMMARY_CSV,
        [
            "recipe",
            "head",
            "learning_rate",
            "seeds",
            "mean_accuracy",
            "std_accuracy",
            "min_accuracy",
            "max_accuracy",
            "mean_loss",
            "best_epoch",
            "trained_parameters",
            "seconds",
            "verdict",
        ],
        [
            [
                row.candidate.recipe,
                row.candidate.head,
                row.candidate.learning_rate,
                row.seeds,
                row.mean_accuracy,
                row.std_accuracy,
                row.min_accuracy,
                row.max_accuracy,
                row.mean_loss,
                row.best_epoch,
                row.trained_parameters,
                row.seconds,
                row.verdict,
            ]
            for row in comparison.summary
        ],
    )
    markdown = comparison.markdown()
    atomic_write(out / SUMMARY_MD, lambda tmp: Path(tmp).write_text(markdown))
    plot_curves(runs, out / CURVES)
    if verbose:
        print(str(comparison))
        winner = comparison.winner()
        print(
            f"winner: {winner.candidate.name} ({winner.verdict}{', the cheapest of those tied' if winner is not comparison.best else ''})"
        )
        print(f"table: {out / SUMMARY_MD}  curves: {out / CURVES}")
    return comparison


def _write_csv(path, header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def plot_curves(runs, path):
    """Validation accuracy and loss per epoch: each candidate's mean over seeds, shaded from min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_candidate = {}
    for run in runs:
        by_candidate.setdefault(run.candidate, []).append(run)
    figure, axes = plt.subplots(1, 2, figsize=(13, 5))
    colours = plt.get_cmap("tab20").colors
    for index, (candidate, group) in enumerate(by_candidate.items()):
        colour = colours[index % len(colours)]
        for axis, key in ((axes[0], "val_accuracy_curve"), (axes[1], "val_loss_curve")):
            length = min(len(getattr(run, key)) for run in group)
            curves = np.array([getattr(run, key)[:length] for run in group])
            epochs = np.arange(1, length + 1)
            axis.plot(
                epochs,
                curves.mean(axis=0),
                "o-",
                color=colour,
                label=f"{candidate.name} ({len(group)} seed{'s' if len(group) > 1 else ''})",
            )
            if len(group) > 1:
                axis.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color=colour, alpha=0.15)
    axes[0].set_ylabel("Validation accuracy")
    axes[1].set_ylabel("Validation loss")
    for axis in axes:
        axis.set_xlabel("Epoch")
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(loc="lower right", fontsize=8)
    axes[0].set_title("Mean over seeds (band: min to max)")
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)
