"""A comparison's numbers: per-candidate summaries over seeds, the tie rule, tables and curves."""

from __future__ import annotations

import dataclasses
import io
import math
import statistics
from pathlib import Path

import numpy as np

from keras_alexnet._utils.choices import BALANCED_ACCURACY, COMPARE_METRICS, MACRO_F1, METRICS
from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.plotting import pyplot
from keras_alexnet._utils.text import SafeCSVWriter
from keras_alexnet.options import COMPARE
from keras_alexnet.run_directory import ComparisonFiles

RUNS_CSV, SUMMARY_CSV, SUMMARY_MD, CURVES = (
    ComparisonFiles.RUNS_CSV,
    ComparisonFiles.SUMMARY_CSV,
    ComparisonFiles.SUMMARY_MD,
    ComparisonFiles.CURVES,
)


@dataclasses.dataclass
class Summary:
    """A candidate over its seeds, ranked by ``metric`` (``mean_score``/``std_score``)."""

    candidate: object  # a compare.Candidate: recipe, head, rate
    seeds: int
    mean_accuracy: float
    std_accuracy: float  # over seeds (n - 1); 0 with one seed
    min_accuracy: float
    max_accuracy: float
    mean_loss: float
    best_epoch: int  # the median over seeds of the epoch the output network kept
    trained_parameters: int
    seconds: float  # mean per run
    mean_balanced_accuracy: float = float("nan")
    mean_macro_f1: float = float("nan")
    metric: str = COMPARE.metric  # a name of COMPARE_METRICS: what the ranking and the tie rule read
    mean_score: float = float("nan")
    std_score: float = 0.0
    verdict: str = ""

    def ties(self, best):
        """Whether this candidate's mean score is within ``best``'s seed-to-seed standard deviation of ``best``'s.

        The best candidate's own spread says how far its mean could move with other seeds:
        a smaller mean inside it is a tie, not a loss. (A candidate's own large spread does
        not make it a tie: it is as likely to be worse.)
        """
        if best.seeds < 2:
            return self.mean_score == best.mean_score
        return best.mean_score - self.mean_score <= best.std_score


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
        """The best candidate by its mean score; on a tie, the cheapest (fewest seconds) of those tied with it."""
        tied = [row for row in self.summary if row is self.best or row.ties(self.best)]
        return min(tied, key=lambda row: row.seconds)

    def markdown(self):
        """The summary as a Markdown table."""
        metric = self.summary[0].metric if self.summary else COMPARE.metric
        lines = [
            f"Ranked by validation {metric.replace('-', ' ')} (mean over seeds; a tie is within the best one's spread).",
            "",
            "| candidate | seeds | val accuracy (mean +- std) | min-max | balanced accuracy | macro-F1 | val loss "
            "| epoch kept | trained parameters | seconds/run | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in self.summary:
            balanced = f"{row.mean_balanced_accuracy:.3f}"
            if METRICS[metric] == BALANCED_ACCURACY:
                balanced += f" +- {row.std_score:.3f}"
            macro = f"{row.mean_macro_f1:.3f}" + (f" +- {row.std_score:.3f}" if METRICS[metric] == MACRO_F1 else "")
            lines.append(
                f"| {row.candidate.name} | {row.seeds} | {row.mean_accuracy:.3f} +- {row.std_accuracy:.3f} | "
                f"{row.min_accuracy:.3f}-{row.max_accuracy:.3f} | {balanced} | {macro} | {row.mean_loss:.3f} | "
                f"{row.best_epoch} | {row.trained_parameters:,} | {row.seconds:.0f} | {row.verdict} |"
            )
        return "\n".join(lines) + "\n"

    def __str__(self):
        note = "" if self.complete else "\n(stopped at the time limit: not every run finished)"
        return self.markdown() + note


def summarize(runs, metric=COMPARE.metric):
    """Per-candidate ``Summary`` rows, best mean ``metric`` (a name of ``COMPARE_METRICS``) first, each with its verdict."""
    if metric not in COMPARE_METRICS:
        raise ValueError(f"metric={metric!r}: use one of {', '.join(COMPARE_METRICS)}.")
    field = COMPARE_METRICS[metric]
    by_candidate = {}
    for run in runs:
        by_candidate.setdefault(run.candidate, []).append(run)
    rows = []
    for candidate, group in by_candidate.items():
        accuracy = [run.val_accuracy for run in group]
        scores = [getattr(run, field) for run in group]
        if any(not math.isfinite(value) for value in accuracy + scores):
            raise ValueError(
                f"{candidate.name}: a run ended with a non-finite validation {metric} (or was recorded by a version "
                "without it: compare again with --overwrite)."
            )
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
                statistics.fmean(run.val_balanced_accuracy for run in group),
                statistics.fmean(run.val_macro_f1 for run in group),
                metric,
                statistics.fmean(scores),
                statistics.stdev(scores) if len(group) > 1 else 0.0,
            )
        )
    rows.sort(key=lambda row: -row.mean_score)
    best = rows[0]
    for row in rows:
        if row is best:
            row.verdict = "best" if best.seeds > 1 else "best (1 seed: no spread)"
        elif row.ties(best):
            row.verdict = "tie (within the spread)"
        else:
            row.verdict = f"behind by {best.mean_score - row.mean_score:.3f}"
    return rows


def write_tables(out, runs, complete, run_fields, verbose, metric=COMPARE.metric):
    """Write ``runs.csv``, ``summary.csv``, ``summary.md`` and ``curves.png`` into ``out``; return the ``Comparison``.

    ``run_fields``: the run records' fields for ``runs.csv`` (its columns); ``metric``: what ranks them.
    """
    if not runs:
        raise ValueError("no run finished within the time limit: give it more time.")
    comparison = Comparison(out, runs, summarize(runs, metric), complete)
    fields = [name for name in run_fields if not name.endswith("_curve")]
    _write_csv(out / RUNS_CSV, fields, [[getattr(run, name) for name in fields] for run in runs])
    _write_csv(
        out / SUMMARY_CSV,
        [
            "recipe",
            "head",
            "learning_rate",
            "regularizer",
            "seeds",
            "mean_accuracy",
            "std_accuracy",
            "min_accuracy",
            "max_accuracy",
            "mean_balanced_accuracy",
            "mean_macro_f1",
            "mean_loss",
            "best_epoch",
            "trained_parameters",
            "seconds",
            "ranked_by",
            "verdict",
        ],
        [
            [
                row.candidate.recipe,
                row.candidate.head,
                row.candidate.learning_rate,
                row.candidate.regularizer,
                row.seeds,
                row.mean_accuracy,
                row.std_accuracy,
                row.min_accuracy,
                row.max_accuracy,
                row.mean_balanced_accuracy,
                row.mean_macro_f1,
                row.mean_loss,
                row.best_epoch,
                row.trained_parameters,
                row.seconds,
                row.metric,
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
    writer = SafeCSVWriter(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def plot_curves(runs, path):
    """Validation accuracy and loss per epoch: each candidate's mean over seeds, shaded from min to max."""
    plt = pyplot()

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
