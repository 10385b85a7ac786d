"""Validation accuracy of each recipe on the shipped cat and dog photos, over several seeds.

On a few hundred photos the seed alone moves accuracy by points, so one seed per recipe
misleads: this reports the mean, the standard deviation and the range over seeds.

    python benchmarks/recipe_accuracy.py [--seeds 0 1 2] [--epochs 3] [--out benchmarks/RECIPES.md]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "cats_vs_dogs"


def variants():
    """(label, recipe, train keyword arguments): the recipes, plus the old later-convs for comparison."""
    from keras_alexnet.recipes import Recipe, Stage

    old_later = Recipe(
        "later-convs-conv3-frozen",
        "before 0.2: conv1..conv3 frozen, conv4/conv5 at 1/10",
        stages=(Stage(frozen=("conv1", "conv2", "conv3"), factors={"conv4": 0.1, "conv5": 0.1}),),
        optimizer="adam",
        learning_rate=1e-4,
    )
    held_out = {"val": PHOTOS / "test"}
    return [
        ("frozen-features", "frozen-features", {**held_out, "cache_activations": True}),
        (
            "frozen-features, compact head",
            "frozen-features",
            {**held_out, "cache_activations": True, "head": "compact"},
        ),
        ("fine-tune-all", "fine-tune-all", held_out),
        ("later-convs (guide: conv1-2 frozen)", "later-convs", held_out),
        ("later-convs, conv1-3 frozen (before 0.2)", old_later, held_out),
        ("matlab (6 epochs, 70/30 split of train)", "matlab", {"val_split": 0.3, "epochs": 6, "batch_size": 10}),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RECIPES.md"))
    parser.add_argument("--only", nargs="+", help="run only the rows whose label starts with one of these")
    args = parser.parse_args()
    from keras_alexnet.training import train

    rows = []
    for label, recipe, kwargs in variants():
        if args.only and not any(label.startswith(prefix) for prefix in args.only):
            continue
        accuracies, seconds = [], []
        for seed in args.seeds:
            options = {"epochs": args.epochs, **kwargs}
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as run:
                result = train(PHOTOS / "train", recipe=recipe, seed=seed, run_dir=run, verbose=0, **options)
            seconds.append(time.perf_counter() - start)
            accuracies.append(result.val_accuracy)
            print(f"{label} seed {seed}: {result.val_accuracy:.4f} ({seconds[-1]:.0f} s)", flush=True)
        rows.append((label, accuracies, statistics.median(seconds)))
    lines = [
        "# Recipe accuracy on the shipped photos, over seeds",
        "",
        f"`python benchmarks/recipe_accuracy.py` (seeds {args.seeds}, {args.epochs} epochs unless stated; "
        "400 training photos, 200 held-out test photos; ImageNet convolution weights, fresh fc6-fc8).",
        "",
        "| recipe | mean | std | min - max | per seed | seconds per run (median) |",
        "|---|---|---|---|---|---|",
    ]
    for label, accuracies, run_seconds in rows:
        mean = statistics.mean(accuracies)
        std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        lines.append(
            f"| {label} | {mean:.3f} | {std:.3f} | {min(accuracies):.3f} - {max(accuracies):.3f} | "
            f"{', '.join(f'{a:.3f}' for a in accuracies)} | {run_seconds:.0f} |"
        )
    lines += ["", "Differences smaller than the spread over seeds are ties, not wins.", ""]
    Path(args.out).write_text("\n".join(lines))
    Path(args.out).with_suffix(".json").write_text(json.dumps({label: acc for label, acc, _ in rows}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
