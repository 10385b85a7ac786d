#!/usr/bin/env python
"""Honest confidence on the shipped photos, over seeds; writes benchmarks/CONFIDENCE.md.

    python benchmarks/confidence.py            # about 15 minutes on 2 cores
    python benchmarks/confidence.py --quick    # a smoke run (1 seed, 2 epochs)
    python benchmarks/confidence.py --held-out ../shared/data/cats_vs_dogs/train
                                               # calibration also scored on more photos

Every run: frozen-features (ImageNet convolutions, AlexNet's head), cached activations, on the
400 shipped training photos with a stratified 30% validation split, evaluated on the 200
held-out test photos (100 cats, 100 dogs) it never saw.

1. The output network: ``last`` against ``best-validation-loss`` and ``best-validation-accuracy``:
   test accuracy and expected calibration error, before and after the temperature.
2. Calibration: ECE, NLL and Brier on the test photos before and after the temperature
   fitted on the validation split; the accuracy must be identical. Beside each ECE its floor:
   the mean ECE a perfectly calibrated model with the same confidences shows on as many images
   (labels drawn from its own probabilities), so that an ECE under sampling noise is not read as
   miscalibration. ``--held-out DIR`` (class folders ``cats``, ``dogs``) scores the same models on
   more photos as well, leaving out any photo equal in content to a shipped one.
3. Test-time augmentation: the gain over plain evaluation and the cost per image.
4. "Unknown": generated shapes (no cat, no dog) shown to the cats/dogs model: the share answered
   "unknown" at the largest threshold that keeps the accuracy on the test photos (an "unknown"
   counted as a miss) within 2 points of no threshold.
5. Imbalance: 10:1 (all 200 training cats, 20 dogs) without and with ``class_weight="auto"`` and
   ``balanced_sampling``: the minority class's recall and balanced accuracy on the balanced test photos;
   also at the last epoch, and at a tenth of the recipe's learning rate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.run import cpu_flags, cpu_name  # noqa: E402
from benchmarks.temperature_size import SECTION as SIZE_SECTION  # noqa: E402

PHOTOS = ROOT / "tests" / "data" / "cats_vs_dogs"
BASE = {
    "recipe": "frozen-features",
    "cache_activations": True,
    "val_split": 0.3,
    "report": False,
    "tensorboard": False,
    "backup_every": 100,  # only the last epoch's backup (nothing here resumes)
}


def _spread(values):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} +- {std:.3f}"


QUICK = {}  # --quick: the tiny architecture, to check the script in a minute


def _train(data, seed, epochs, **changes):
    from keras_alexnet.training import train

    with tempfile.TemporaryDirectory() as run:
        return train(data, seed=seed, epochs=epochs, run_dir=run, verbose=0, **{**BASE, **QUICK, **changes})


class Done:
    """Rows measured so far, kept in a JSON file so that a run stopped half-way continues."""

    def __init__(self, path):
        self.path = Path(path) if path else None
        self.rows = json.loads(self.path.read_text()) if self.path and self.path.exists() else {}

    def get(self, key, measure, *args):
        if key not in self.rows:
            self.rows[key] = measure(*args)
            if self.path:
                self.path.write_text(json.dumps(self.rows))
        return self.rows[key]


def _unknown_share(test, shapes_confidence, tolerance=0.02):
    """(threshold, share of shapes answered unknown): the largest threshold whose test accuracy, an
    "unknown" counted as a miss, stays within ``tolerance`` of the accuracy without one."""
    confidence = test.probabilities.max(axis=1)
    correct = test.probabilities.argmax(axis=1) == test.labels
    plain = correct.mean()
    best = 0.0
    for threshold in np.linspace(0.5, 0.999, 500):
        if (correct & (confidence >= threshold)).mean() >= plain - tolerance:
            best = threshold
    return best, float((shapes_confidence < best).mean())


def output_networks(seeds, epochs, shapes, held_out, done):
    rows, held_out_rows, tta_rows, unknown_rows = {}, {}, [], []
    for rule in ("last", "best-validation-loss", "best-validation-accuracy"):
        for seed in seeds:
            key = f"network {rule} {seed}" + (" held-out" if held_out else "")
            found = done.get(key, _network_run, rule, seed, epochs, shapes, held_out)
            rows.setdefault(rule, []).append(found["row"])
            if held_out:
                held_out_rows.setdefault(rule, []).append(found["held_out"])
            print(rule, seed, found["row"], flush=True)
            if "tta" in found:
                tta_rows.append(found["tta"])
                unknown_rows.append(found["unknown"])
    return rows, held_out_rows, tta_rows, unknown_rows


def held_out_photos(folder, scratch):
    """A folder of links to the photos of ``folder``'s ``cats`` and ``dogs`` that no shipped photo equals."""
    shipped = {_digest(path) for path in PHOTOS.rglob("*") if path.is_file()}
    target = Path(scratch) / "held_out"
    for name in ("cats", "dogs"):
        (target / name).mkdir(parents=True)
        for path in sorted((Path(folder) / name).iterdir()):
            if path.is_file() and _digest(path) not in shipped:
                os.symlink(path.resolve(), target / name / path.name)
    return target


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scores(evaluation):
    from keras_alexnet.calibration import ece_floor

    before, after = evaluation.calibration_before(), evaluation.calibration()
    return {
        "accuracy": evaluation.accuracy,
        "ece_before": before.ece,
        "ece_after": after.ece,
        "floor_before": ece_floor(evaluation.probabilities_before()),
        "floor_after": ece_floor(evaluation.probabilities),
        "nll_before": before.nll,
        "nll_after": after.nll,
        "brier_before": before.brier,
        "brier_after": after.brier,
    }


def _network_run(rule, seed, epochs, shapes, held_out):
    from keras_alexnet.evaluation import evaluate, predict_files

    found = {}
    result = _train(PHOTOS / "train", seed, epochs, output_network=rule)
    start = time.perf_counter()
    test = evaluate(result.model, PHOTOS / "test")
    plain_seconds = time.perf_counter() - start
    found["row"] = {
        "epoch": result.output_epoch,
        **_scores(test),
        "temperature": result.temperature,
    }
    if held_out:
        found["held_out"] = _scores(evaluate(result.model, held_out))
    if rule == "best-validation-loss":
        start = time.perf_counter()
        augmented = evaluate(result.model, PHOTOS / "test", tta=True)
        tta_seconds = time.perf_counter() - start
        found["tta"] = (test.accuracy, augmented.accuracy, 1000 * plain_seconds / 200, 1000 * tta_seconds / 200)
        confidence = np.array([p.top[0][1] for p in predict_files(result.model, [shapes], top=1) if p.top])
        found["unknown"] = _unknown_share(test, confidence)
    return found


def crossfit(seeds, epochs, done):
    """Temperature scaling when the calibration images are like the scored ones: the default run's
    uncalibrated test probabilities, T fitted on one half of the test photos and scored on the other
    (both ways, averaged)."""
    return [done.get(f"crossfit {seed}", _crossfit_run, seed, epochs) for seed in seeds]


def _crossfit_run(seed, epochs):
    from keras_alexnet.calibration import CalibrationScores, fit_temperature, tempered
    from keras_alexnet.evaluation import evaluate

    result = _train(PHOTOS / "train", seed, epochs, calibrate=False)
    test = evaluate(result.model, PHOTOS / "test")
    order = np.random.default_rng(seed).permutation(len(test.labels))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    before, after = [], []
    for fit_half, score_half in (halves, halves[::-1]):
        temperature = fit_temperature(test.probabilities[fit_half], test.labels[fit_half])
        scored = test.probabilities[score_half]
        before.append(CalibrationScores.of(scored, test.labels[score_half]).ece)
        after.append(CalibrationScores.of(tempered(scored, temperature), test.labels[score_half]).ece)
    return {"ece_before": float(np.mean(before)), "ece_after": float(np.mean(after))}


def imbalance(seeds, epochs, scratch, done):

    data = Path(scratch) / "ten_to_one"
    for name, keep in (("cats", 200), ("dogs", 20)):
        target = data / name
        target.mkdir(parents=True)
        for path in sorted((PHOTOS / "train" / name).iterdir())[:keep]:
            os.symlink(path, target / path.name)
    rows = {}
    for label, changes in (
        ("unweighted", {}),
        ("--class-weight auto", {"class_weight": "auto"}),
        ("--balanced-sampling", {"balanced_sampling": True}),
        ("unweighted, --output-network last", {"output_network": "last"}),
        ("--class-weight auto, --output-network last", {"class_weight": "auto", "output_network": "last"}),
        # A tenth of the recipe's rate: the head memorises the 14 training dogs more slowly.
        ("unweighted, --lr 1e-5", {"learning_rate": 1e-5}),
        ("--class-weight auto, --lr 1e-5", {"class_weight": "auto", "learning_rate": 1e-5}),
        ("--balanced-sampling, --lr 1e-5", {"balanced_sampling": True, "learning_rate": 1e-5}),
    ):
        for seed in seeds:
            row = done.get(f"imbalance {label} {seed}", _imbalance_run, data, seed, epochs, changes)
            rows.setdefault(label, []).append(row)
            print(label, seed, row, flush=True)
    return rows


def _imbalance_run(data, seed, epochs, changes):
    from keras_alexnet.evaluation import evaluate

    result = _train(data, seed, epochs, **changes)
    test = evaluate(result.model, PHOTOS / "test")
    return {
        "epoch": result.output_epoch,
        "dog_recall": float(test.recall[test.class_names.index("dogs")]),
        "balanced_accuracy": test.balanced_accuracy,
        "macro_f1": test.macro_f1,
        "accuracy": test.accuracy,
    }


def _calibration_table(networks):
    lines = [
        "| --output-network | accuracy | ECE before -> after (per seed) | ECE floor before, after | NLL before -> after "
        "| Brier before -> after |",
        "|---|---|---|---|---|---|",
    ]
    for rule, runs in networks.items():
        cell = {key: _spread([run[key] for run in runs]) for key in runs[0] if key not in ("epoch", "temperature")}
        seeds = ", ".join(f"{run['ece_before']:.3f} -> {run['ece_after']:.3f}" for run in runs)
        lines.append(
            f"| {rule} | {cell['accuracy']} | {cell['ece_before']} -> {cell['ece_after']} ({seeds}) | "
            f"{cell['floor_before']}, {cell['floor_after']} | {cell['nll_before']} -> {cell['nll_after']} | "
            f"{cell['brier_before']} -> {cell['brier_after']} |"
        )
    return lines


def _kept_epochs(networks):
    return [
        f"- {rule}: epochs {', '.join(str(run['epoch']) for run in runs)} kept; temperature "
        f"{_spread([run['temperature'] for run in runs])}"
        for rule, runs in networks.items()
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "CONFIDENCE.md"))
    parser.add_argument("--keep", help="a JSON file of the runs done: a run stopped half-way continues from it")
    parser.add_argument("--held-out", help="a folder of more cats and dogs photos to score calibration on")
    args = parser.parse_args()
    seeds, epochs = ([0], 2) if args.quick else (args.seeds, args.epochs)
    if args.quick:
        QUICK.update(architecture="tiny", weights=None)
    done = Done(args.keep)
    from keras_alexnet.datasets import generate_shapes

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        shapes = generate_shapes(Path(scratch) / "shapes", per_class=25, size=128, seed=0)
        held_out = held_out_photos(args.held_out, scratch) if args.held_out else None
        networks, held_out_networks, tta, unknown = output_networks(seeds, epochs, shapes, held_out, done)
        held_out_count = sum(1 for _ in held_out.rglob("*.*")) if held_out else 0
        balance = imbalance(seeds, epochs, scratch, done)
        crossed = crossfit(seeds, epochs, done)
        shutil.rmtree(shapes)
    minutes = (time.perf_counter() - started) / 60
    lines = [
        "# Honest confidence on the shipped photos",
        "",
        f"`python benchmarks/confidence.py` (seeds {seeds}, {epochs} epochs; {minutes:.0f} minutes). Machine: "
        f"{cpu_name()}, {os.cpu_count()} cores, flags: {cpu_flags()}.",
        "",
        "frozen-features (ImageNet convolutions, fresh fc6-fc8), cached activations, 400 training photos with a "
        "stratified 30% validation split; scored on the 200 held-out test photos. Mean +- standard deviation "
        "over seeds.",
        "",
        "## The output network and calibration",
        "",
        *_kept_epochs(networks),
        "",
        "Scored on the 200 test photos:",
        "",
        *_calibration_table(networks),
        "",
        "The temperature fitted on the validation split (120 of the training folder's photos). The ECE floor: the",
        "ECE a perfectly calibrated model with the same confidences shows on as many images, from sampling alone.",
        "Fitted on one half of the test photos and scored on the other (both ways, averaged; the default run",
        "with --no-calibrate): ECE "
        f"{_spread([row['ece_before'] for row in crossed])} -> {_spread([row['ece_after'] for row in crossed])}.",
    ]
    if held_out_networks:
        lines += [
            "",
            f"The same models scored on {held_out_count:,} more photos (`--held-out {args.held_out}`, none equal to a",
            "shipped photo):",
            "",
            *_calibration_table(held_out_networks),
        ]
    gains = [after - before for before, after, _, _ in tta]
    lines += [
        "",
        "## Test-time augmentation (best-validation-loss runs)",
        "",
        f"Accuracy {_spread([row[0] for row in tta])} -> {_spread([row[1] for row in tta])} "
        f"(gain {_spread(gains)}); {statistics.fmean(row[2] for row in tta):.1f} -> "
        f"{statistics.fmean(row[3] for row in tta):.1f} ms per image (6 views).",
        "",
        "## Unknown: 100 generated shapes shown to the cats/dogs model",
        "",
        "| seed | threshold (test accuracy within 2 points) | shapes answered unknown |",
        "|---|---|---|",
    ]
    lines += [f"| {seed} | {threshold:.3f} | {share:.2f} |" for seed, (threshold, share) in zip(seeds, unknown)]
    lines += [
        "",
        "## Imbalance: 200 cats, 20 dogs (10:1), scored on 100 cats and 100 dogs",
        "",
        "| training | epoch kept | dog recall | balanced accuracy (per seed) | macro-F1 | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for label, runs in balance.items():
        cell = {key: _spread([run[key] for run in runs]) for key in runs[0] if key != "epoch"}
        kept = ", ".join(str(run.get("epoch", "?")) for run in runs)
        per_seed = ", ".join(f"{run['balanced_accuracy']:.3f}" for run in runs)
        lines.append(
            f"| {label} | {kept} | {cell['dog_recall']} | {cell['balanced_accuracy']} ({per_seed}) | "
            f"{cell['macro_f1']} | {cell['accuracy']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        out = Path(args.out)
        kept = out.read_text().partition(SIZE_SECTION)  # benchmarks/temperature_size.py's section stays
        Path(args.out).write_text(text + (f"\n{SIZE_SECTION}{kept[2]}" if kept[1] else ""))


if __name__ == "__main__":
    main()
