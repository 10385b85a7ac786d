#!/usr/bin/env python
"""The default, the regularizers and test-time augmentation, over seeds 0-2 on three data sets;
writes benchmarks/QUALITY.md (rewritten after every run, so a stopped measurement keeps what it has).

    python benchmarks/quality.py --work DIR   # about 90 minutes on 2 cores; again with DIR to continue
    python benchmarks/quality.py --quick      # a smoke run: tiny network, one seed

Each run trains in a process of its own (Keras keeps a fitted model's memory for the process's
life) and its numbers go to DIR/runs.jsonl as it ends, so a stopped measurement continues.
benchmarks/quality_runs.jsonl is that file for benchmarks/QUALITY.md (every run's numbers).

Data sets, all made offline, none of them tuned on:
- photos: the shipped cat and dog photos, 400 training and the 200 held-out test photos;
- shapes: the MATLAB guide's generated shapes (4 classes, 40 each, 128 pixels; a 30% split);
- digits: scikit-learn's 8x8 handwritten digits (10 classes, 30 training and 10 validation images
  each, drawn as 64-pixel grey PNGs): small grey images unlike ImageNet's, standing in for
  Fashion-MNIST, whose IDX files cannot be downloaded here.

Each run's test-time augmentation is scored both ways from the same view probabilities: the
blend ``tta.blend`` (fastai's: 0.25 of the plain prediction) and the equal mean of the six views
(what 0.6 did).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.run import cpu_flags, cpu_name  # noqa: E402

PHOTOS = ROOT / "tests" / "data" / "cats_vs_dogs"
DEFAULT = "no flags (0.7's default: the rule of thumb)"
CONFIGS = (
    ("frozen-features (0.6's default)", {"recipe": "frozen-features", "cache_activations": True}),
    ("fine-tune", {"recipe": "fine-tune"}),
    ("fine-tune + label smoothing 0.1", {"recipe": "fine-tune", "label_smoothing": 0.1}),
    ("fine-tune + mixup 0.4", {"recipe": "fine-tune", "mixup": 0.4}),
    ("fine-tune + CutMix 1.0", {"recipe": "fine-tune", "cutmix": 1.0}),
    ("fine-tune + EMA 0.99", {"recipe": "fine-tune", "ema": 0.99}),
    (DEFAULT, {}),  # no recipe: training.rule picks one from the data
)


def make_digits(folder, train_per_class=30, val_per_class=10):
    """scikit-learn's digits as PNG folders: (train folder, validation folder)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    counts = {}
    for image, label in zip(digits.images, digits.target):
        seen = counts.get(label, 0)
        if seen >= train_per_class + val_per_class:
            continue
        counts[label] = seen + 1
        side = "train" if seen < train_per_class else "val"
        target = Path(folder) / side / f"digit{label}"
        target.mkdir(parents=True, exist_ok=True)
        pixels = (255 - image * 255 / 16).astype(np.uint8)  # dark strokes on white
        Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(target / f"{seen:03d}.png")
    return Path(folder) / "train", Path(folder) / "val"


def data_sets(folder, quick):
    from keras_alexnet.datasets import generate_shapes

    shapes = generate_shapes(Path(folder) / "shapes", per_class=8 if quick else 40, size=128, seed=0)
    digits_train, digits_val = make_digits(Path(folder) / "digits", *((4, 2) if quick else (30, 10)))
    return {
        "photos": {"data": PHOTOS / "train", "val": PHOTOS / "test"},
        "shapes": {"data": shapes, "val_split": 0.3},
        "digits": {"data": digits_train, "val": digits_val},
    }


def run_one(data, config, seed, run_dir, quick):
    import numpy as np

    from keras_alexnet.datasets import ImageFolder
    from keras_alexnet.deployment import KerasClassifier
    from keras_alexnet.training import train
    from keras_alexnet.tta import blend, view_probabilities

    extra = {"architecture": "tiny", "weights": None} if quick else {}
    started = time.perf_counter()
    result = train(
        data["data"],
        val=data.get("val"),
        run_dir=run_dir,
        overwrite=True,  # the benchmark's own folder: a run stopped before it recorded is trained again
        seed=seed,
        epochs=3,
        verbose=0,
        report=False,
        tensorboard=False,
        measure_tta=False,
        val_split=data.get("val_split"),
        **config,
        **extra,
    )
    seconds = time.perf_counter() - started
    val_dir = data.get("val")
    if val_dir is not None:
        val_set = ImageFolder.read(val_dir, class_names=result.class_names)
    else:
        val_set = ImageFolder.read(data["data"]).split(1 - data["val_split"], seed=seed)[1]
    started = time.perf_counter()
    views, read = view_probabilities(KerasClassifier(result.model), val_set.paths)
    tta_seconds = time.perf_counter() - started
    label_of = dict(zip(map(str, val_set.paths), val_set.labels))
    labels = np.asarray([label_of[p] for p in read])
    return {
        "accuracy": float(np.mean(views[:, 0].argmax(1) == labels)),
        "kept_accuracy": result.val_accuracy,
        "blend": float(np.mean(blend(views).argmax(1) == labels)),
        "mean": float(np.mean(views.mean(axis=1).argmax(1) == labels)),
        "seconds": seconds,
        "tta_seconds": tta_seconds,
    }


def _stats(values):
    mean = statistics.mean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def write_table(path, results, seeds, quick, minutes):
    lines = [
        "# Quality: the default, the regularizers and test-time augmentation",
        "",
        f"`python benchmarks/quality.py` (seeds {seeds}, 3 epochs, AlexNet with the shipped ImageNet convolutions"
        f"{'; QUICK: tiny network' if quick else ''}). Machine: {cpu_name()}, flags: {cpu_flags()}. "
        f"{minutes:.0f} minutes of training and scoring. Validation accuracy of the output network (mean +- std over "
        "seeds). The regularizers' settings are fastai's and timm's starting values, not tuned here; the default's "
        "rule (training/rule.py) sets its 5-step threshold between these shapes (4 head steps) and auto's (6), so "
        "its row is in-sample. The blend of test-time augmentation is fastai's; it and 0.6's equal mean differ by "
        "less than the runs' noise (the last line).",
        "",
        "## Accuracy",
        "",
        "| configuration | " + " | ".join(results) + " | seconds per run (median) |",
        "|---|" + "---|" * (len(results) + 1),
    ]
    best = {}
    for name in results:
        means = {label: _stats([r["accuracy"] for r in runs])[0] for label, runs in results[name].items() if runs}
        if means:
            top = max(means, key=means.get)
            best[name] = (top, *_stats([r["accuracy"] for r in results[name][top]]))
    for label, _ in CONFIGS:
        cells, seconds = [], []
        for name in results:
            runs = results[name].get(label) or []
            if not runs:
                cells.append("-")
                continue
            mean, std = _stats([r["accuracy"] for r in runs])
            cells.append(f"{mean:.3f} +- {std:.3f}" + (" (best)" if best.get(name, (None,))[0] == label else ""))
            seconds += [r["seconds"] for r in runs]
        shown = f"{statistics.median(seconds):.0f}" if seconds else "-"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {shown} |")
    lines += ["", "A mean within the best one's standard deviation ties with it (`compare`'s rule).", ""]
    lines += [
        "## The default against the best",
        "",
        "| data | the default | the best | gap | within the best's spread |",
    ]
    lines += ["|---|---|---|---|---|"]
    for name in results:
        runs = results[name].get(DEFAULT) or []
        if not runs or name not in best:
            continue
        mean, std = _stats([r["accuracy"] for r in runs])
        top, top_mean, top_std = best[name]
        gap = top_mean - mean
        inside = "yes" if gap <= top_std + 1e-9 else "no"
        lines.append(
            f"| {name} | {mean:.3f} +- {std:.3f} | {top}: {top_mean:.3f} +- {top_std:.3f} | {gap:.3f} | {inside} |"
        )
    lines += [
        "",
        "",
        "## Test-time augmentation (six views; the same runs)",
        "",
        "| configuration | data | plain | equal mean of 6 views (0.6) | blend, 0.25 plain (0.7) | TTA seconds / plain run |",
        "|---|---|---|---|---|---|",
    ]
    for label, _ in CONFIGS:
        for name in results:
            runs = results[name].get(label) or []
            if not runs:
                continue
            plain, old, new = (_stats([r[key] for r in runs]) for key in ("accuracy", "mean", "blend"))
            cost = statistics.median(r["tta_seconds"] for r in runs)
            lines.append(
                f"| {label} | {name} | {plain[0]:.3f} +- {plain[1]:.3f} | {old[0]:.3f} ({old[0] - plain[0]:+.3f}) | "
                f"{new[0]:.3f} ({new[0] - plain[0]:+.3f}) | {cost:.1f} s |"
            )
    gains = {"mean": [], "blend": []}
    for by_config in results.values():
        for runs in by_config.values():
            for key in gains:
                gains[key] += [r[key] - r["accuracy"] for r in runs]
    if gains["blend"]:
        lowered = {key: sum(gain < 0 for gain in values) for key, values in gains.items()}
        lines += [
            "",
            f"Over all {len(gains['blend'])} runs the blend changed accuracy by {statistics.mean(gains['blend']):+.4f} on "
            f"average (lower in {lowered['blend']} runs), the equal mean by {statistics.mean(gains['mean']):+.4f} (lower "
            f"in {lowered['mean']}): on validation sets of 48 to 200 images neither helps reliably, so every run "
            "measures test-time augmentation on its own validation images and `predict --tta`/`evaluate --tta` say "
            "when it lowered that run's accuracy.",
        ]
    Path(path).write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", help="data sets (photos, shapes, digits)")
    parser.add_argument("--work", help="folder for the data, the runs and runs.jsonl (default: a temporary one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "QUALITY.md"))
    parser.add_argument("--one", nargs=3, metavar=("SET", "CONFIG", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a run in its own process: prints its numbers as JSON
        name, index, seed = args.one
        sets = data_sets(args.work, args.quick)
        run_dir = Path(args.work) / "runs" / f"{name}-{index}-{seed}"
        print("RESULT " + json.dumps(run_one(sets[name], CONFIGS[int(index)][1], int(seed), run_dir, args.quick)))
        return
    seeds = [0] if args.quick else args.seeds
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        sets = data_sets(work, args.quick)
        names = [name for name in sets if not args.only or name in args.only]
        record = work / "runs.jsonl"
        done = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
        results = {name: {} for name in names}
        for row in done:
            if row["set"] in results:
                results[row["set"]].setdefault(row["config"], []).append(row)
        for index, (label, _) in enumerate(CONFIGS):
            for name in names:
                for seed in seeds:
                    if any(r["config"] == label and r["seed"] == seed for r in results[name].get(label, [])):
                        continue
                    command = [sys.executable, __file__, "--work", str(work), "--one", name, str(index), str(seed)]
                    finished = subprocess.run(
                        command + (["--quick"] if args.quick else []), capture_output=True, text=True, check=False
                    )
                    lines = [line for line in finished.stdout.splitlines() if line.startswith("RESULT ")]
                    if not lines:
                        raise SystemExit(f"{label} | {name} | seed {seed} failed:\n{finished.stderr[-3000:]}")
                    outcome = {**json.loads(lines[-1][len("RESULT ") :]), "set": name, "config": label, "seed": seed}
                    with open(record, "a") as handle:
                        handle.write(json.dumps(outcome) + "\n")
                    results[name].setdefault(label, []).append(outcome)
                    print(f"{label} | {name} | seed {seed}: {outcome}", flush=True)
                    write_table(args.out, results, seeds, args.quick, _minutes(results))
        write_table(args.out, results, seeds, args.quick, _minutes(results))


def _minutes(results):
    """The runs' own time, training and scoring (a measurement continued later counts once)."""
    runs = [run for by_config in results.values() for group in by_config.values() for run in group]
    return sum(run["seconds"] + run["tta_seconds"] for run in runs) / 60


if __name__ == "__main__":
    main()
