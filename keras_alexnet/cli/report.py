"""``keras-alexnet report``: a run's HTML report."""

from __future__ import annotations

from keras_alexnet._utils.flags import (
    add_flags,
    typed_options,
)
from keras_alexnet.cli.common import tta_argument
from keras_alexnet.options import ReportOptions


def run(args):
    from keras_alexnet.report import write_report

    settings = ReportOptions(**typed_options(args, ReportOptions))
    path = write_report(args.run_dir, data=args.data, top_losses=settings.top_losses, tta=args.tta)
    print(f"report: {path}")
    return 0


def add(command):
    p = command(NAME, "write a self-contained HTML report of a training run (run-dir/report.html)", run)
    p.add_argument("--run-dir", required=True, help="the run directory `keras-alexnet train` wrote")
    p.add_argument("--data", help="a labelled folder to interpret the model on (default: the run's validation images)")
    add_flags(p, ReportOptions)
    tta_argument(p, "also score the model with test-time augmentation and show the gain")


NAME = "report"
EXAMPLE = "keras-alexnet report --run-dir runs/pets --data photos/test"
