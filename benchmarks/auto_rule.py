#!/usr/bin/env python
"""auto's zero-budget rule against the comparison's best, over seeds; writes benchmarks/AUTO_RULE.md.

    python benchmarks/auto_rule.py              # about 40 minutes on 2 cores
    python benchmarks/auto_rule.py --quick      # a smoke run

``--auto-budget 0`` picks a recipe and head without training (``experiments.auto.rule_of_thumb``).
This measures, on data sets that can be made offline, whether that choice lands within the
spread of the best candidate of a full comparison (every recipe and head, seeds 0-2, 3 epochs):

- the generated shapes of the MATLAB guide (the demo's data: 4 classes, 60 images each, 128 pixels,
  a 30% validation split): images unlike ImageNet's photos;
- the shipped cat and dog photos (400 training, 200 held-out) are in benchmarks/COMPARISON.md,
  measured with the same command (``--only shapes`` skips nothing else here).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.run import cpu_flags, cpu_name  # noqa: E402

PHOTOS = ROOT / "tests" / "data" / "cats_vs_dogs"


def _summary(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _row(data, recipe, head, rule, rows):
    """A table row: the rule's choice against the best candidate of ``rows`` (a summary.csv)."""
    best, chosen, gap, inside = _verdict(rows, recipe, head)
    return (
        f"| {data} | {recipe} / {head} ({rule}) | {float(chosen['mean_accuracy']):.3f} +- "
        f"{float(chosen['std_accuracy']):.3f} | {best['recipe']} / {best['head']} | {float(best['mean_accuracy']):.3f} "
        f"+- {float(best['std_accuracy']):.3f} | {gap:.3f} | {'yes' if inside else 'no'} |"
    )


def _verdict(rows, recipe, head):
    best = rows[0]
    chosen = next(row for row in rows if row["recipe"] == recipe and row["head"] == head and not row["learning_rate"])
    gap = float(best["mean_accuracy"]) - float(chosen["mean_accuracy"])
    inside = gap <= float(best["std_accuracy"])
    return best, chosen, gap, inside


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "AUTO_RULE.md"))
    parser.add_argument(
        "--work", help="a folder for the shapes and the comparison (kept: run again to continue a stopped run)"
    )
    args = parser.parse_args()
    from keras_alexnet.datasets import ImageFolder, generate_shapes
    from keras_alexnet.experiments import compare
    from keras_alexnet.experiments.auto import rule_of_thumb

    seeds, epochs = (1, 2) if args.quick else (3, 3)
    started = time.perf_counter()
    lines = [
        "# auto's zero-budget rule, measured",
        "",
        f"`python benchmarks/auto_rule.py` (every recipe and head, seeds 0-{seeds - 1}, {epochs} epochs, "
        f"`compare`'s tie rule). Machine: {cpu_name()}, {os.cpu_count()} cores, flags: {cpu_flags()}.",
        "",
        "| data | the rule's choice (and why) | its accuracy | the best candidate | best's accuracy | gap | within "
        "the best's spread |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work) if args.work else Path(scratch)
        shapes = work / "shapes"
        if not shapes.exists():
            generate_shapes(shapes, per_class=20 if args.quick else 60, size=128, seed=0)
        out = work / "comparison"
        comparison = compare(
            shapes,
            val_split=0.3,
            epochs=epochs,
            batch_size=10,
            seeds=seeds,
            out=out,
            verbose=1,
            **({"architecture": "tiny", "weights": None} if args.quick else {}),
        )
        recipe, head, rule, _ = rule_of_thumb(ImageFolder.read(shapes))
        lines.append(_row("generated shapes (240)", recipe, head, rule, _summary(out / "summary.csv")))
        table = comparison.markdown()
    photos = _summary(ROOT / "benchmarks" / "comparison_summary.csv")
    recipe, head, rule, _ = rule_of_thumb(ImageFolder.read(PHOTOS / "train"))
    lines.append(_row("shipped photos (400; COMPARISON.md)", recipe, head, rule, photos))
    minutes = (time.perf_counter() - started) / 60
    lines += ["", f"The shapes comparison ({minutes:.0f} minutes):", "", table]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
