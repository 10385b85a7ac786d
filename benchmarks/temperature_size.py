#!/usr/bin/env python
"""When can a validation set carry a temperature? Held-out NLL and ECE against the validation set's size;
writes the section "The temperature against the validation set's size" of benchmarks/CONFIDENCE.md.

    python benchmarks/temperature_size.py --work DIR   # about 15 minutes on 2 cores; again with DIR to continue
    python benchmarks/temperature_size.py --quick      # a smoke run: tiny network, one seed

Three data sets (benchmarks/quality.py's), each cut into a training set, a validation pool and a held-out
set that neither training nor the temperature sees:
- photos: the shipped training photos, 200 to train and 200 as the pool; held out: the 200 test photos;
- shapes: generated shapes (4 classes), 40 per class to train, 50 per class as the pool, 100 per class held out;
- digits: scikit-learn's digits as 64-pixel PNGs, 30 per class to train, 20 per class as the pool, the
  other 1,297 held out.

Each (data set, seed) trains once with ``train``'s defaults (no recipe: the rule of thumb; 3 epochs; the
pool as validation images, so the kept epoch is the one ``train`` would keep) in a process of its own, and
keeps the probabilities of the pool and of the held-out images. Then, for each size n, 40 random draws of n
pool images (without replacement; one draw at n = 200, the whole pool) each give a temperature, and the
held-out images are scored with it, with T = 1, and with the rule ``calibration.choose_temperature`` applies.
Only the temperature depends on n here; the model and its kept epoch do not (they were chosen on the pool).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.quality import PHOTOS  # noqa: E402
from benchmarks.run import cpu_flags, cpu_name  # noqa: E402

SIZES = (6, 12, 25, 50, 100, 200)
DRAWS = 40
SECTION = "## The temperature against the validation set's size"


def _copy(paths, folder):
    for path in paths:
        target = Path(folder) / path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / path.name)


def _cut(folder, counts, out):
    """Copy each class folder's files, sorted, into out/<part>/<class>/ by ``counts`` (part -> per class)."""
    for class_folder in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        files = sorted(class_folder.iterdir())
        start = 0
        for part, count in counts.items():
            chosen = files[start : start + count] if count else files[start:]
            _copy(chosen, Path(out) / part)
            start += len(chosen)


def make_sets(work, quick):
    """{name: {"train", "pool", "held_out"}} folders under ``work``, made once."""
    from benchmarks.quality import make_digits
    from keras_alexnet.datasets import generate_shapes

    work = Path(work)
    sets = {}
    photos = work / "photos"
    if not photos.exists():
        _cut(PHOTOS / "train", {"train": 8 if quick else 100, "pool": 0}, photos / "cut")
        _copy(sorted((PHOTOS / "test").glob("*/*")), photos / "cut" / "held_out")
    sets["photos"] = photos / "cut"
    shapes = work / "shapes"
    if not shapes.exists():
        generate_shapes(shapes / "all", per_class=20 if quick else 190, size=128, seed=1)
        _cut(shapes / "all", {"train": 8 if quick else 40, "pool": 6 if quick else 50, "held_out": 0}, shapes / "cut")
    sets["shapes"] = shapes / "cut"
    digits = work / "digits"
    if not digits.exists():
        make_digits(digits / "all", train_per_class=200, val_per_class=0)  # every digit (at most 200 a class)
        _cut(
            digits / "all" / "train",
            {"train": 4 if quick else 30, "pool": 4 if quick else 20, "held_out": 0},
            digits / "cut",
        )
    sets["digits"] = digits / "cut"
    return {name: {part: folder / part for part in ("train", "pool", "held_out")} for name, folder in sets.items()}


def train_one(train, pool, held_out, seed, run_dir, out, quick):
    """One training run (in its own process): the pool's and the held-out images' probabilities to ``out``."""
    from keras_alexnet.datasets import ImageFolder
    from keras_alexnet.training import train as train_run

    extra = {"architecture": "tiny", "weights": None} if quick else {}
    started = time.perf_counter()
    result = train_run(
        train, val=pool, run_dir=run_dir, overwrite=True, seed=seed, epochs=3, verbose=0, report=False,
        tensorboard=False, measure_tta=False, calibrate=False, **extra,
    )  # fmt: skip
    arrays = {"seconds": time.perf_counter() - started}
    for name, folder in (("pool", pool), ("held_out", held_out)):
        images = ImageFolder.read(folder, class_names=result.class_names)
        arrays[name] = result.model.predict(images.dataset(64).map(lambda x, y: x), verbose=0)
        arrays[name + "_labels"] = np.asarray(images.labels)
    np.savez(out, **arrays)


def _scores(probabilities, labels, temperature):
    from keras_alexnet.calibration import expected_calibration_error, negative_log_likelihood, tempered

    scaled = tempered(probabilities, temperature)
    return negative_log_likelihood(scaled, labels), expected_calibration_error(scaled, labels)


def measure(arrays, seed):
    """Per size: the draws' temperatures and held-out (NLL, ECE) with the fitted T, T = 1 and the rule's T."""
    from keras_alexnet.calibration import choose_temperature, fit_temperature

    pool, pool_labels = arrays["pool"], arrays["pool_labels"]
    held, held_labels = arrays["held_out"], arrays["held_out_labels"]
    plain = _scores(held, held_labels, 1.0)
    rng = np.random.default_rng(seed)
    rows = {}
    for size in SIZES:
        if size > len(pool):
            continue
        draws = 1 if size == len(pool) else DRAWS
        rows[size] = []
        for _ in range(draws):
            chosen = rng.choice(len(pool), size, replace=False)
            fitted = fit_temperature(pool[chosen], pool_labels[chosen])
            choice = choose_temperature(pool[chosen], pool_labels[chosen])
            rows[size].append(
                {
                    "fitted": fitted,
                    "rule": choice.temperature,
                    "fitted_scores": _scores(held, held_labels, fitted),
                    "rule_scores": _scores(held, held_labels, choice.temperature),
                    "plain_scores": plain,
                }
            )
    return rows


def _mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def section(results, seeds, quick, minutes):
    """The Markdown section: one table per data set, one row per size."""
    lines = [
        SECTION,
        "",
        f"`python benchmarks/temperature_size.py` (seeds {seeds}, 3 epochs, `train`'s defaults"
        f"{'; QUICK: tiny network' if quick else ''}; {minutes:.0f} minutes of training). Machine: {cpu_name()}, flags: "
        f"{cpu_flags()}. The model is trained once per seed with a 200-image validation pool; the temperature is "
        f"fitted on {DRAWS} random draws of n pool images and scored on held-out images neither trained nor "
        "validated on. Per size: the median fitted T and its 10th-90th percentile over draws and seeds; held-out "
        "NLL and ECE with T = 1, with the fitted T and with the rule's T (mean over draws, then mean +- std over "
        "seeds); and the share of draws where the fitted T (the rule's T) makes held-out NLL worse than T = 1.",
        "",
    ]
    for name, per_seed in results.items():
        held = next(iter(per_seed.values()))["held_out_count"]
        lines += [
            f"### {name} ({held} held-out images)",
            "",
            "| n | fitted T: median (10-90%) | rule's T: median (10-90%) | NLL, T = 1 | NLL, fitted T | NLL, rule's T "
            "| ECE, T = 1 | ECE, fitted T | ECE, rule's T | NLL worse than T = 1: fitted, rule |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        sizes = sorted({size for seed_rows in per_seed.values() for size in seed_rows["rows"]}, key=int)
        for size in sizes:
            draws = [row for seed_rows in per_seed.values() for row in seed_rows["rows"].get(size, [])]
            fitted = np.array([row["fitted"] for row in draws])
            rule = np.array([row["rule"] for row in draws])

            def per_seed_mean(key, index, size=size, per_seed=per_seed):
                means = [
                    statistics.mean(row[key][index] for row in seed_rows["rows"][size])
                    for seed_rows in per_seed.values()
                    if size in seed_rows["rows"]
                ]
                mean, std = _mean_std(means)
                return f"{mean:.3f} +- {std:.3f}"

            worse = np.mean([row["fitted_scores"][0] > row["plain_scores"][0] + 1e-9 for row in draws])
            rule_worse = np.mean([row["rule_scores"][0] > row["plain_scores"][0] + 1e-9 for row in draws])
            lines.append(
                f"| {size} | {np.median(fitted):.2f} ({np.percentile(fitted, 10):.2f}-{np.percentile(fitted, 90):.2f})"
                f" | {np.median(rule):.2f} ({np.percentile(rule, 10):.2f}-{np.percentile(rule, 90):.2f})"
                f" | {per_seed_mean('plain_scores', 0)} | {per_seed_mean('fitted_scores', 0)}"
                f" | {per_seed_mean('rule_scores', 0)} | {per_seed_mean('plain_scores', 1)}"
                f" | {per_seed_mean('fitted_scores', 1)} | {per_seed_mean('rule_scores', 1)}"
                f" | {worse:.2f}, {rule_worse:.2f} |"
            )
        accuracy = [seed_rows["held_out_accuracy"] for seed_rows in per_seed.values()]
        mean, std = _mean_std(accuracy)
        lines += ["", f"Held-out accuracy {mean:.3f} +- {std:.3f}.", ""]
    return "\n".join(lines)


def write_section(path, text):
    """Replace (or append) the section in ``path``, keeping everything before it."""
    path = Path(path)
    current = path.read_text() if path.exists() else ""
    before = current.split(SECTION)[0].rstrip("\n")
    path.write_text((before + "\n\n" if before else "") + text.rstrip("\n") + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="a folder for data, runs and probabilities (kept; continues)")
    parser.add_argument("--quick", action="store_true", help="tiny network, one seed: a smoke run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "CONFIDENCE.md"))
    parser.add_argument("--train-one", nargs=6, metavar=("TRAIN", "POOL", "HELD", "SEED", "RUN", "OUT"))
    args = parser.parse_args(argv)
    if args.train_one:
        train, pool, held, seed, run_dir, out = args.train_one
        train_one(train, pool, held, int(seed), run_dir, out, args.quick)
        return
    import tempfile

    seeds = args.seeds[:1] if args.quick else args.seeds
    work = Path(args.work or tempfile.mkdtemp(prefix="temperature-size-"))
    work.mkdir(parents=True, exist_ok=True)
    sets = make_sets(work, args.quick)
    for name, parts in sets.items():  # every training run first: the measuring below takes seconds
        for seed in seeds:
            out = work / f"{name}-{seed}.npz"
            if not out.exists():
                command = [sys.executable, __file__, "--train-one", str(parts["train"]), str(parts["pool"])]
                command += [str(parts["held_out"]), str(seed), str(work / "runs" / f"{name}-{seed}"), str(out)]
                subprocess.run(command + (["--quick"] if args.quick else []), check=True)
    results, seconds = {}, 0.0
    for name in sets:
        results[name] = {}
        for seed in seeds:
            arrays = dict(np.load(work / f"{name}-{seed}.npz"))
            seconds += float(arrays["seconds"])
            held_accuracy = float(np.mean(arrays["held_out"].argmax(1) == arrays["held_out_labels"]))
            print(
                f"{name} seed {seed}: trained in {float(arrays['seconds']):.0f} s, held-out accuracy {held_accuracy:.3f}"
            )
            results[name][seed] = {
                "rows": measure(arrays, seed),
                "held_out_accuracy": held_accuracy,
                "held_out_count": len(arrays["held_out_labels"]),
            }
    text = section(results, seeds, args.quick, seconds / 60)
    write_section(args.out, text)
    (work / "results.json").write_text(json.dumps({k: {str(s): v for s, v in r.items()} for k, r in results.items()}))
    print(text)


if __name__ == "__main__":
    main()
