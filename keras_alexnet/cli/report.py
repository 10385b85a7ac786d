"""``keras-alexnet report``: a run's HTML report."""

from __future__ import annotations

from keras_alexnet._utils.flags import (
    positive_int,
)
from keras_alexnet.cli.common import tta_argument


def run(args):
    from keras_alexnet.explain.report import write_report

    path = write_report(args.run_dir, data=args.data, top_losses=args.top_losses, tta=args.tta)
    print(f"report: {path}")
    return 0


def add(command):
    p = command(NAME, "write a self-contained HTML report of a training run (run-dir/report.html)", run)
    p.add_argument("--run-dir", required=True, help="the run directory `keras-alexnet train` wrote")
    p.add_argument("--data", help="a labelled folder to interpret the model on (default: the run's validation images)")
    p.add_argument("--top-losses", type=positive_int, default=9, help="images in the top-losses gallery (default 9)")
    tta_argument(p, "also score the model with test-time augmentation and show the gain")


NAME = "report"
EXAMPLE = "keras-alexnet report --run-dir runs/pets --data photos/test"
