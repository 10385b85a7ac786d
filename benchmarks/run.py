#!/usr/bin/env python
"""keras-alexnet vs torchvision/PyTorch, side by side on this machine, in one run.

    python benchmarks/run.py                 # full run, writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick         # a smoke run (used by the tests)

Measures (median of repeats, same batch size and data for both):
inference images/s; training images/s for the frozen-features, fine-tune-all and
later-convs recipes; epochs with the frozen-feature cache; the JPEG-folder input
pipeline; conversion time of our tool vs onnx2tf on the same ONNX file; peak
memory of each training process. Each framework runs in its own subprocess so
that threads and peak memory are measured apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "cats_vs_dogs" / "train"
RECIPES = ("frozen-features", "fine-tune-all", "later-convs")


def _peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(step, warmup, repeats):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker_torch(task, batch, steps, repeats):
    from keras_alexnet.convert import import_torch

    torch, torchvision = import_torch()
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None, num_classes=2)
    x = torch.randn(batch, 3, 224, 224)
    y = torch.randint(0, 2, (batch,))
    if task == "inference":
        model.eval()

        def step():
            with torch.no_grad():
                for _ in range(steps):
                    model(x)
    else:
        recipe = task.split(":")[1]
        model.train()
        groups = []
        if recipe == "frozen-features":
            model.features.requires_grad_(False)
            groups = [{"params": model.classifier.parameters(), "lr": 1e-4}]
        elif recipe == "fine-tune-all":
            groups = [{"params": model.features.parameters(), "lr": 1e-4}, {"params": model.classifier.parameters(), "lr": 1e-3}]
        else:  # later-convs: freeze features[:8] (conv1..conv3)
            model.features[:8].requires_grad_(False)
            groups = [{"params": model.features[8:].parameters(), "lr": 1e-4}, {"params": model.classifier.parameters(), "lr": 1e-3}]
        optimizer = torch.optim.Adam(groups)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(x), y).backward()
                optimizer.step()

    seconds = _timed(step, 1, repeats)
    return {"images_per_s": batch * steps / seconds, "peak_rss_mib": _peak_rss_mib()}


def worker_keras(task, batch, steps, repeats, xla=False):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_alexnet import AlexNet
    from keras_alexnet.transfer import apply_recipe

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(batch, 224, 224, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 2, batch)
    if task == "inference":
        model = AlexNet(weights=None, classes=2, input_shape=(224, 224, 3), classifier_activation=None)
        infer = tf.function(lambda t: model(t, training=False), jit_compile=xla)
        tensor = tf.constant(x)

        def step():
            for _ in range(steps):
                infer(tensor).numpy()
    else:
        recipe = task.split(":")[1]
        # jit_compile "auto": XLA where it wins (frozen convolutions), as users get it.
        model = apply_recipe(AlexNet(weights="imagenet", include_top=False, input_shape=(224, 224, 3)), recipe, 2)
        ds = tf.data.Dataset.from_tensors((x, y)).repeat(steps).cache()

        def step():
            model.fit(ds, epochs=1, verbose=0)

    seconds = _timed(step, 1, repeats)
    return {"images_per_s": batch * steps / seconds, "peak_rss_mib": _peak_rss_mib()}


def worker_pipeline(batch, repeats):
    """Images/s of the JPEG-folder pipeline alone (decode, resize, crop, normalise)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_alexnet.data import ImageFolder

    folder = ImageFolder.read(PHOTOS)
    ds = folder.dataset(batch, training=True, augment="resized-crop")

    def epoch():
        for _ in ds:
            pass

    return {"images_per_s": len(folder) / _timed(epoch, 1, repeats)}


def worker_cache(epochs, batch, fraction=None):
    """Frozen-features epochs on the real photos, uncached vs cached (seconds per epoch)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from keras_alexnet.data import ImageFolder
    from keras_alexnet.training import train

    photos = ImageFolder.read(PHOTOS)
    if fraction:
        photos = photos.split(fraction)[0]

    results = {}
    for cached in (False, True):
        times = []

        class Clock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.start)

        import keras_alexnet.training as training

        original = training.fit
        training.fit = lambda *a, **k: original(*a, **{**k, "extra_callbacks": [Clock()]})
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run:
            train(photos, recipe="frozen-features", epochs=epochs, batch_size=batch, run_dir=run, cache_features=cached, verbose=0)
        training.fit = original
        results["cached" if cached else "uncached"] = {"epoch_s": times, "total_s": time.perf_counter() - start}
    return results


def worker_conversion(check_onnx2tf):
    """Seconds for our ONNX -> Keras step vs onnx2tf's on the same ONNX file."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_alexnet.convert import (
        export_onnx, keras_model_from_onnx, load_state_dict, parity_inputs, run_onnx2tf, save_weights_atomic, torchvision_alexnet,
    )

    state, _ = load_state_dict("random:0", progress=lambda *_: None)
    with tempfile.TemporaryDirectory() as work:
        path = export_onnx(torchvision_alexnet(state, False), Path(work) / "a.onnx")
        start = time.perf_counter()
        save_weights_atomic(keras_model_from_onnx(path), Path(work) / "ours.weights.h5")
        result = {"ours_s": time.perf_counter() - start}
        if check_onnx2tf:
            import onnx2tf

            start = time.perf_counter()
            run_onnx2tf(path, parity_inputs(1), Path(work) / "onnx2tf_memory")
            result["onnx2tf_in_memory_s"] = time.perf_counter() - start
            start = time.perf_counter()  # its normal run: SavedModel + float32/float16 TFLite on disk
            onnx2tf.convert(input_onnx_file_path=str(path), output_folder_path=str(Path(work) / "onnx2tf"), non_verbose=True)
            result["onnx2tf_s"] = time.perf_counter() - start
            result["onnx2tf_output_mib"] = sum(f.stat().st_size for f in (Path(work) / "onnx2tf").rglob("*") if f.is_file()) / 2**20
    return result


def run_worker(args):
    """Run one measurement in a fresh Python process; return its JSON result."""
    command = [sys.executable, __file__, "--worker", json.dumps(args)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine():
    import tensorflow as tf

    from keras_alexnet.convert import import_torch

    torch, _ = import_torch()
    gpus = tf.config.list_physical_devices("GPU")
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {'GPU: ' + ', '.join(g.name for g in gpus) if gpus else 'no GPU'}; Python {platform.python_version()}, TensorFlow {tf.__version__}, PyTorch {torch.__version__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--onnx2tf", action="store_true", help="also time onnx2tf (minutes)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        kind = spec.pop("kind")
        result = {"torch": worker_torch, "keras": worker_keras, "pipeline": worker_pipeline, "cache": worker_cache, "conversion": worker_conversion}[kind](**spec)
        print(json.dumps(result))
        return 0

    batch, repeats = (4, 1) if args.quick else (args.batch, args.repeats)
    steps = 1 if args.quick else 8
    rows = []
    for task in ("inference", "inference:xla", *(f"train:{r}" for r in RECIPES)):
        ours = run_worker({"kind": "keras", "task": task.removesuffix(":xla"), "batch": batch, "steps": steps, "repeats": repeats, "xla": task.endswith(":xla")})
        theirs = run_worker({"kind": "torch", "task": task.removesuffix(":xla"), "batch": batch, "steps": steps, "repeats": repeats})
        rows.append((task, ours, theirs))
        print(f"{task:28s} keras {ours['images_per_s']:8.1f} img/s   torch {theirs['images_per_s']:8.1f} img/s   ratio {ours['images_per_s'] / theirs['images_per_s']:.2f}", flush=True)
    pipeline = run_worker({"kind": "pipeline", "batch": batch, "repeats": repeats})
    print(f"input pipeline (JPEG folder, resized-crop): {pipeline['images_per_s']:.0f} img/s", flush=True)
    cache = run_worker({"kind": "cache", "epochs": 2 if args.quick else 3, "batch": batch, "fraction": 0.05 if args.quick else None})
    print(f"feature cache: {json.dumps(cache)}", flush=True)
    conversion = run_worker({"kind": "conversion", "check_onnx2tf": args.onnx2tf})
    print(f"conversion: {json.dumps(conversion)}", flush=True)
    if args.quick:
        return 0
    write_results(Path(args.out), rows, pipeline, cache, conversion, batch, repeats)
    print(f"wrote {args.out}")
    return 0


def write_results(path, rows, pipeline, cache, conversion, batch, repeats):
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine()}.",
        f"Command: `python benchmarks/run.py{' --onnx2tf' if 'onnx2tf_s' in conversion else ''}`; batch {batch}, 224x224, "
        f"8 steps per timing, median of {repeats} repeats, each framework in its own process. PyTorch runs eager with "
        "torchvision's AlexNet and Adam over param groups; keras-alexnet runs `model.fit` with the recipe's factored Adam "
        "and its default `jit_compile=\"auto\"` (XLA when the convolutions are frozen). `inference:xla` is the same "
        "forward pass compiled with XLA.",
        "",
        "| measurement | keras-alexnet img/s | PyTorch img/s | ratio | peak RSS keras / torch (MiB) |",
        "|---|---|---|---|---|",
    ]
    for task, ours, theirs in rows:
        lines.append(
            f"| {task} | {ours['images_per_s']:.1f} | {theirs['images_per_s']:.1f} | "
            f"{ours['images_per_s'] / theirs['images_per_s']:.2f}x | {ours['peak_rss_mib']:.0f} / {theirs['peak_rss_mib']:.0f} |"
        )
    uncached, cached = cache["uncached"], cache["cached"]
    later_uncached = statistics.median(uncached["epoch_s"][1:])
    later_cached = statistics.median(cached["epoch_s"][1:])
    frozen = next(ours for task, ours, _ in rows if task == "train:frozen-features")["images_per_s"]
    lines += [
        "",
        f"Input pipeline from the JPEG folder (`tests/data/cats_vs_dogs/train`, decode + RandomResizedCrop + flip + normalise): "
        f"{pipeline['images_per_s']:.0f} images/s, {pipeline['images_per_s'] / frozen:.1f}x the fastest training step above, so it is not the bottleneck.",
        "",
        f"Frozen-feature cache (frozen-features recipe, 400 real photos, {len(uncached['epoch_s'])} epochs): epochs after the first take "
        f"{later_uncached:.2f} s uncached and {later_cached:.3f} s cached: {later_uncached / later_cached:.1f}x faster "
        f"(whole run incl. model build and caching: {uncached['total_s']:.1f} s vs {cached['total_s']:.1f} s).",
        "",
        f"Conversion of the same ONNX file (full AlexNet): ours {conversion['ours_s']:.1f} s to a written `.weights.h5`"
        + (
            f"; onnx2tf's normal run (SavedModel + TFLite, {conversion['onnx2tf_output_mib']:.0f} MiB written) "
            f"{conversion['onnx2tf_s']:.1f} s, {conversion['onnx2tf_s'] / conversion['ours_s']:.1f}x ours; onnx2tf building its "
            f"model in memory only (what `--check-onnx2tf` uses) {conversion['onnx2tf_in_memory_s']:.1f} s, "
            f"{conversion['onnx2tf_in_memory_s'] / conversion['ours_s']:.1f}x ours."
            if "onnx2tf_s" in conversion else " (onnx2tf not timed in this run)."
        ),
        "",
        "GPU: no accelerator was lent to this run; mixed precision, XLA vs AMP + channels_last and MFU are not measured here.",
    ]
    from keras_alexnet.files import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    sys.exit(main())
