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

import numpy as np

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
    from keras_alexnet.data import without_autotune
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
        # jit_compile "auto" and a pipeline finished like the package's own, as users get them.
        model = apply_recipe(AlexNet(weights="imagenet", include_top=False, input_shape=(224, 224, 3)), recipe, 2)
        ds = without_autotune(tf.data.Dataset.from_tensors((x, y)).repeat(steps).cache())

        def step():
            model.fit(ds, epochs=1, verbose=0)

    seconds = _timed(step, 1, repeats)
    return {"images_per_s": batch * steps / seconds, "peak_rss_mib": _peak_rss_mib()}


def worker_matmul(framework, size=4096, repeats=10):
    """GFLOP/s of one float32 size^3 matmul: the machine's practical compute rate."""
    if framework == "torch":
        from keras_alexnet.convert import import_torch

        torch, _ = import_torch()
        a, b = torch.randn(size, size), torch.randn(size, size)

        def step():
            torch.mm(a, b)
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras_alexnet  # noqa: F401  (same allocator setting as the training runs)
        import tensorflow as tf

        a, b = tf.random.normal((size, size)), tf.random.normal((size, size))
        matmul = tf.function(tf.matmul)

        def step():
            matmul(a, b).numpy()

    return {"gflops": 2 * size**3 / _timed(step, 2, repeats) / 1e9}


def flops_per_image(task, size=224):
    """Multiply-add FLOPs per image of one inference or training step (convolutions and dense layers).

    Training counts, per layer: the forward pass; the weight gradient if the layer
    trains; the input gradient if any layer below it trains. Both frameworks do this work.
    """
    import keras

    from keras_alexnet import AlexNet
    from keras_alexnet.transfer import apply_recipe

    if task == "inference":
        model = AlexNet(weights=None, classes=2, input_shape=(size, size, 3))
    else:
        model = apply_recipe(AlexNet(weights=None, include_top=False, input_shape=(size, size, 3)), task.split(":")[1], 2)
    total, below_trains = 0, False
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            continue
        kernel_macs = int(np.prod(layer.kernel.shape))
        spatial = int(np.prod(layer.output.shape[1:-1])) if isinstance(layer, keras.layers.Conv2D) else 1
        forward = 2 * kernel_macs * spatial
        trains = task != "inference" and layer.kernel.trainable
        total += forward * (1 + int(trains) + int(below_trains))
        below_trains = below_trains or trains
    return total


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
    """Frozen-features epochs on the real photos, uncached vs cached.

    Per epoch: ``batches_s`` (first step to last step: the work the cache removes)
    and ``epoch_s`` (with ``train``'s end-of-epoch callbacks: backup, CSV, plot).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import keras_alexnet.training as training
    from keras_alexnet.data import ImageFolder

    photos = ImageFolder.read(PHOTOS)
    if fraction:
        photos = photos.split(fraction)[0]

    results = {}
    for cached in (False, True):
        epochs_s, batches_s = [], []

        class Clock(keras.callbacks.Callback):  # runs after train's own callbacks
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.last_batch = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                batches_s.append(self.last_batch - self.start)
                epochs_s.append(time.perf_counter() - self.start)

        original = training.fit
        training.fit = lambda *a, **k: original(*a, **{**k, "extra_callbacks": [Clock()]})
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run:
            training.train(photos, recipe="frozen-features", epochs=epochs, batch_size=batch, run_dir=run, cache_features=cached, verbose=0)
        training.fit = original
        results["cached" if cached else "uncached"] = {"epoch_s": epochs_s, "batches_s": batches_s, "total_s": time.perf_counter() - start}
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


WORKERS = {
    "torch": worker_torch, "keras": worker_keras, "matmul": worker_matmul, "pipeline": worker_pipeline,
    "cache": worker_cache, "conversion": worker_conversion,
}


def compare(task, batch, steps, repeats, rounds):
    """Alternate keras and torch workers ``rounds`` times; medians of rates and of per-round ratios."""
    ours, theirs, ratios = [], [], []
    for _ in range(rounds):
        spec = {"task": task.removesuffix(":xla"), "batch": batch, "steps": steps, "repeats": repeats}
        ours.append(run_worker({"kind": "keras", **spec, "xla": task.endswith(":xla")}))
        theirs.append(run_worker({"kind": "torch", **spec}))
        ratios.append(ours[-1]["images_per_s"] / theirs[-1]["images_per_s"])
    return {
        "keras": statistics.median(r["images_per_s"] for r in ours),
        "torch": statistics.median(r["images_per_s"] for r in theirs),
        "ratio": statistics.median(ratios),
        "keras_rss": max(r["peak_rss_mib"] for r in ours),
        "torch_rss": max(r["peak_rss_mib"] for r in theirs),
        "flops": flops_per_image(task.removesuffix(":xla")),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timings per worker (median)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating keras/torch worker pairs per measurement")
    parser.add_argument("--onnx2tf", action="store_true", help="also time onnx2tf (minutes)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec.pop("kind")](**spec)))
        return 0

    batch, repeats, rounds = (4, 1, 1) if args.quick else (args.batch, args.repeats, args.rounds)
    steps = 1 if args.quick else 8
    matmul = {fw: run_worker({"kind": "matmul", "framework": fw, "size": 256 if args.quick else 4096})["gflops"] for fw in ("tf", "torch")}
    print(f"float32 matmul: TensorFlow {matmul['tf']:.0f} GFLOP/s, PyTorch {matmul['torch']:.0f} GFLOP/s", flush=True)
    rows = {}
    for task in ("inference", "inference:xla", *(f"train:{r}" for r in RECIPES)):
        rows[task] = row = compare(task, batch, steps, repeats, rounds)
        print(f"{task:28s} keras {row['keras']:8.1f} img/s   torch {row['torch']:8.1f} img/s   ratio {row['ratio']:.2f}", flush=True)
    pipeline = run_worker({"kind": "pipeline", "batch": batch, "repeats": repeats})
    print(f"input pipeline (JPEG folder, resized-crop): {pipeline['images_per_s']:.0f} img/s", flush=True)
    cache = run_worker({"kind": "cache", "epochs": 2 if args.quick else 3, "batch": batch, "fraction": 0.05 if args.quick else None})
    print(f"feature cache: {json.dumps(cache)}", flush=True)
    conversion = run_worker({"kind": "conversion", "check_onnx2tf": args.onnx2tf})
    print(f"conversion: {json.dumps(conversion)}", flush=True)
    if args.quick:
        return 0
    write_results(Path(args.out), rows, matmul, pipeline, cache, conversion, batch, repeats, rounds)
    print(f"wrote {args.out}")
    return 0


def write_results(path, rows, matmul, pipeline, cache, conversion, batch, repeats, rounds):
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine()}.",
        f"Command: `python benchmarks/run.py{' --onnx2tf' if 'onnx2tf_s' in conversion else ''}`; batch {batch}, 224x224, "
        f"8 steps per timing. Each framework runs in its own process; a keras and a torch process alternate {rounds} times per "
        f"row (each the median of {repeats} timings), so both see the same machine; rates are medians over rounds and the "
        "ratio is the median of the per-round ratios. PyTorch runs eager with torchvision's AlexNet and Adam over param "
        "groups; keras-alexnet runs `model.fit` with the recipe's factored Adam and its default `jit_compile=\"auto\"` "
        "(no XLA on CPU). `inference:xla` is the same forward pass compiled with XLA.",
        "",
        f"float32 matmul (4096^3) at the start of the run: TensorFlow {matmul['tf']:.0f} GFLOP/s, PyTorch {matmul['torch']:.0f} "
        "GFLOP/s (this shared machine's speed drifts by up to a third over minutes, which is why rows alternate processes). "
        "GFLOP/s below count the convolutions and dense layers of each step: forward, weight gradients of trained layers, "
        "input gradients above the lowest trained layer.",
        "",
        "| measurement | keras-alexnet img/s | PyTorch img/s | ratio | GFLOP/s keras / torch | peak RSS keras / torch (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for task, row in rows.items():
        ours, theirs = row["flops"] * row["keras"] / 1e9, row["flops"] * row["torch"] / 1e9
        lines.append(
            f"| {task} | {row['keras']:.1f} | {row['torch']:.1f} | {row['ratio']:.2f}x | "
            f"{ours:.0f} / {theirs:.0f} | {row['keras_rss']:.0f} / {row['torch_rss']:.0f} |"
        )
    uncached, cached = cache["uncached"], cache["cached"]
    later = {key: {kind: statistics.median(cache[kind][key][1:]) for kind in ("uncached", "cached")} for key in ("batches_s", "epoch_s")}
    frozen = rows["train:frozen-features"]["keras"]
    lines += [
        "",
        f"Input pipeline from the JPEG folder (`tests/data/cats_vs_dogs/train`, decode + RandomResizedCrop + flip + normalise): "
        f"{pipeline['images_per_s']:.0f} images/s, {pipeline['images_per_s'] / frozen:.1f}x the fastest training step above.",
        "",
        f"Frozen-feature cache (`train(..., recipe=\"frozen-features\")` on 400 real photos, {len(uncached['epoch_s'])} epochs, "
        f"median of the epochs after the first): training steps take {later['batches_s']['uncached']:.2f} s per epoch uncached "
        f"and {later['batches_s']['cached']:.2f} s cached, {later['batches_s']['uncached'] / later['batches_s']['cached']:.1f}x "
        f"faster; whole epochs, with `train`'s end-of-epoch backup, CSV and plot, {later['epoch_s']['uncached']:.2f} s vs "
        f"{later['epoch_s']['cached']:.2f} s, {later['epoch_s']['uncached'] / later['epoch_s']['cached']:.1f}x (whole runs incl. "
        f"model build and caching: {uncached['total_s']:.1f} s vs {cached['total_s']:.1f} s).",
        "",
        f"Conversion of the same ONNX file (full AlexNet): ours {conversion['ours_s']:.1f} s to a written `.weights.h5`"
        + (
            f"; onnx2tf's normal run (SavedModel + TFLite, {conversion['onnx2tf_output_mib']:.0f} MiB written) "
            f"{conversion['onnx2tf_s']:.1f} s, {conversion['onnx2tf_s'] / conversion['ours_s']:.1f}x ours; onnx2tf building its "
            f"model in memory only (what `--check-onnx2tf` uses) {conversion['onnx2tf_in_memory_s']:.1f} s, "
            f"{conversion['onnx2tf_in_memory_s'] / conversion['ours_s']:.1f}x ours."
            if "onnx2tf_s" in conversion else " (onnx2tf not timed in this run)."
        ),
    ]
    analysis = Path(__file__).with_name("ANALYSIS.md")  # hand-written reading of these numbers
    if analysis.exists():
        lines += ["", analysis.read_text().strip()]
    from keras_alexnet.files import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    sys.exit(main())
