"""``keras-alexnet predict`` on thousands of images: streamed batches against holding every image.

    python benchmarks/predict.py [--images 10000] [--reference-images 2000]

Makes ``--images`` files (hard links of the shipped test photos, in nested folders), saves an
AlexNet (the real network, random weights, 2 classes), and runs in fresh processes, alternated:

- **streamed**: ``keras-alexnet predict FOLDER --out predictions.csv`` (this package);
- **reference**: what ``predict`` did before (every image through torchvision's eval transform
  into one array, then ``model.predict``), on ``--reference-images`` of them.

Prints images/s and peak resident memory (``VmHWM``: ``ru_maxrss`` would keep the size of this
process, which forks them) of each, the CPU's flags, and the
ratios; ``RESULTS.md`` keeps the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import cpu_flags, cpu_name  # noqa: E402  (the same machine description as run.py)

PHOTOS = ROOT / "tests" / "data" / "cats_vs_dogs" / "test"

STREAMED = """
import sys, time
peak_kb = lambda: int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
from keras_alexnet.cli import main
start = time.perf_counter()
code = main(["predict", "--model", sys.argv[1], sys.argv[2], "--out", sys.argv[3], "--top", "1"])
print("RESULT", time.perf_counter() - start, peak_kb(), code)
"""

REFERENCE = """
import sys, time
peak_kb = lambda: int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
from pathlib import Path
import numpy as np
from keras_alexnet.model import load_model
from keras_alexnet.preprocessing import eval_transform
model = load_model(sys.argv[1])
paths = sorted(Path(sys.argv[2]).rglob("*.jpg"))[: int(sys.argv[3])]
start = time.perf_counter()
batch = np.stack([eval_transform(path) for path in paths])  # predict before issue 19
scores = model.predict(batch, verbose=0)
print("RESULT", time.perf_counter() - start, peak_kb(), len(scores))
"""


def run(code, *args):
    """(seconds, peak MB) of a fresh process running ``code`` with ``args``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(done.stderr[-3000:])
    _, seconds, peak_kb, _ = lines[-1].split()
    return float(seconds), int(peak_kb) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--reference-images", type=int, default=2000)
    args = parser.parse_args()
    from keras_alexnet.layers import attach_class_names
    from keras_alexnet.model import AlexNet

    photos = sorted(PHOTOS.rglob("*.jpg"))
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = scratch / "model.keras"
        attach_class_names(AlexNet(weights=None, classes=2), ["cat", "dog"]).save(model)
        images = scratch / "images"
        for index in range(args.images):
            folder = images / f"{index // 1000:03d}" / f"{index // 100 % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            os.link(photos[index % len(photos)], folder / f"{index:06d}.jpg")
        results = {}
        started = time.perf_counter()
        seconds, peak = run(STREAMED, model, images, scratch / "predictions.csv")
        results["streamed"] = {"images": args.images, "images_per_s": args.images / seconds, "peak_mb": peak}
        seconds, peak = run(REFERENCE, model, images, args.reference_images)
        results["reference"] = {
            "images": args.reference_images,
            "images_per_s": args.reference_images / seconds,
            "peak_mb": peak,
        }
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, flags: {cpu_flags()}")
    for name, result in results.items():
        print(
            f"{name:9s} {result['images']:6d} images  {result['images_per_s']:7.1f} images/s  peak {result['peak_mb']:7.0f} MB"
        )
    ratio = results["streamed"]["images_per_s"] / results["reference"]["images_per_s"]
    print(f"speed ratio streamed/reference: {ratio:.2f}; total {time.perf_counter() - started:.0f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
