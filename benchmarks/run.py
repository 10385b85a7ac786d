#!/usr/bin/env python
"""keras-alexnet vs torchvision/PyTorch, side by side on this machine, in one run.

    python benchmarks/run.py                 # full run, writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick         # a smoke run (used by the tests)

On a GPU both frameworks see, it compares float32, bfloat16 (+XLA) and float16
against PyTorch AMP with channels_last, with MFU, into benchmarks/RESULTS_GPU.md.

Measures (median of repeats, same batch size and data for both):
inference images/s; training images/s for the frozen-features, fine-tune-all and
later-convs recipes; epochs with the activation cache; the JPEG-folder input
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


def worker_torch(task, batch, steps, repeats, device="cpu", precision=None, channels_last=False):
    """torchvision AlexNet, eager; ``precision`` "bfloat16"/"float16" runs under autocast (AMP)."""
    import contextlib

    from keras_alexnet.weights.state_dicts import import_torch  # loads no TensorFlow

    torch, torchvision = import_torch()
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None, num_classes=2).to(device)
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 2, (batch,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def autocast():
        return (
            torch.autocast(device_type=device, dtype=getattr(torch, precision))
            if precision
            else contextlib.nullcontext()
        )

    def finish():
        if device == "cuda":
            torch.cuda.synchronize()

    if task == "inference":
        model.eval()

        def step():
            with torch.no_grad(), autocast():
                for _ in range(steps):
                    model(x)
            finish()
    else:
        recipe = task.split(":")[1]
        model.train()
        groups = []
        if recipe == "frozen-features":
            model.features.requires_grad_(False)
            groups = [{"params": model.classifier.parameters(), "lr": 1e-4}]
        elif recipe == "fine-tune-all":
            groups = [
                {"params": model.features.parameters(), "lr": 1e-4},
                {"params": model.classifier.parameters(), "lr": 1e-3},
            ]
        else:  # later-convs, the guide's Example 3: freeze features[0:5] (conv1, conv2)
            model.features[:5].requires_grad_(False)
            groups = [
                {"params": model.features[5:].parameters(), "lr": 1e-4},
                {"params": model.classifier.parameters(), "lr": 1e-3},
            ]
        optimizer = torch.optim.Adam(groups)
        loss_fn = torch.nn.CrossEntropyLoss()
        # float16 AMP needs loss scaling, as PyTorch's AMP recipe does (Keras's mixed_float16 scales too).
        scaler = torch.amp.GradScaler(device) if precision == "float16" else None

        def step():
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                with autocast():
                    loss = loss_fn(model(x), y)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
            finish()

    seconds = _timed(step, 1, repeats)
    return {"images_per_s": batch * steps / seconds, "peak_rss_mib": _peak_rss_mib(), **_gpu_memory_mib(torch, device)}


def _gpu_memory_mib(torch, device):
    return {"peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20} if device == "cuda" else {}


def worker_keras(task, batch, steps, repeats, xla=None, precision=None):
    """keras-alexnet; ``xla`` None means the package's ``jit_compile="auto"``; ``precision`` a mixed policy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_alexnet import AlexNet
    from keras_alexnet.datasets import without_autotune
    from keras_alexnet.transfer import apply_recipe

    keras.utils.set_random_seed(0)
    # Set either way: with --quick one process runs several measurements.
    keras.mixed_precision.set_global_policy(f"mixed_{precision}" if precision else "float32")
    x = np.random.default_rng(0).normal(size=(batch, 224, 224, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 2, batch)
    if task == "inference":
        model = AlexNet(weights=None, classes=2, input_shape=(224, 224, 3), classifier_activation=None)
        infer = tf.function(lambda t: model(t, training=False), jit_compile=bool(xla))
        tensor = tf.constant(x)

        def step():
            for _ in range(steps):
                infer(tensor).numpy()
    else:
        recipe = task.split(":")[1]
        # A pipeline finished like the package's own, as users get it; prefetch overlaps the copy to a GPU.
        model = apply_recipe(
            AlexNet(weights="imagenet", include_top=False, input_shape=(224, 224, 3)),
            recipe,
            2,
            jit_compile="auto" if xla is None else xla,
        )
        ds = tf.data.Dataset.from_tensors((x, y)).repeat(steps).cache()
        if tf.config.list_physical_devices("GPU"):
            ds = ds.prefetch(2)  # overlaps the copy to the GPU, as the package's own pipelines do
        ds = without_autotune(ds)

        def step():
            model.fit(ds, epochs=1, verbose=0)

    seconds = _timed(step, 1, repeats)
    result = {"images_per_s": batch * steps / seconds, "peak_rss_mib": _peak_rss_mib()}
    if tf.config.list_physical_devices("GPU"):
        result["peak_gpu_mib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return result


def worker_matmul(framework, size=4096, repeats=10, device="cpu", precision="float32"):
    """GFLOP/s of one size^3 matmul: the machine's practical compute rate."""
    if framework == "torch":
        from keras_alexnet.weights.state_dicts import import_torch  # loads no TensorFlow

        torch, _ = import_torch()
        dtype = getattr(torch, precision)
        a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)

        def step():
            torch.mm(a, b)
            if device == "cuda":
                torch.cuda.synchronize()
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        import keras_alexnet  # noqa: F401  (same allocator setting as the training runs)

        a = tf.cast(tf.random.normal((size, size)), precision)
        b = tf.cast(tf.random.normal((size, size)), precision)
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
        model = apply_recipe(
            AlexNet(weights=None, include_top=False, input_shape=(size, size, 3)), task.split(":")[1], 2
        )
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
    from keras_alexnet.datasets import ImageFolder

    folder = ImageFolder.read(PHOTOS)
    ds = folder.dataset(batch, training=True, augment="resized-crop")

    def epoch():
        for _ in ds:
            pass

    return {"images_per_s": len(folder) / _timed(epoch, 1, repeats)}


def worker_cache(epochs, batch, fraction=None, architecture="alexnet"):
    """Frozen-features epochs on the real photos, uncached vs cached (``architecture`` "tiny": a smoke run).

    Per epoch: ``batches_s`` (first step to last step: the work the cache removes)
    and ``epoch_s`` (with ``train``'s end-of-epoch callbacks: backup, CSV, plot).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import keras_alexnet.training as training
    from keras_alexnet.datasets import ImageFolder

    photos = ImageFolder.read(PHOTOS)
    if fraction:
        photos = photos.split(fraction)[0]

    results = {}
    for cached in (False, True):
        epochs_s, batches_s = [], []

        class Clock(keras.callbacks.Callback):  # runs after train's own callbacks
            def __init__(self, batches_s, epochs_s):
                super().__init__()
                self.batches_s, self.epochs_s = batches_s, epochs_s

            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.last_batch = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.batches_s.append(self.last_batch - self.start)
                self.epochs_s.append(time.perf_counter() - self.start)

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run:
            training.train(
                photos,
                recipe="frozen-features",
                epochs=epochs,
                batch_size=batch,
                run_dir=run,
                cache_activations=cached,
                **({"architecture": "tiny", "weights": None} if architecture == "tiny" else {}),
                callbacks=[Clock(batches_s, epochs_s)],
                verbose=0,
                report=False,  # the training is measured, not the report, TensorBoard's files, calibration or TTA
                tensorboard=False,
                calibrate=False,
                measure_tta=False,
            )
        results["cached" if cached else "uncached"] = {
            "epoch_s": epochs_s,
            "batches_s": batches_s,
            "total_s": time.perf_counter() - start,
        }
    return results


def worker_conversion(check_onnx2tf):
    """Seconds for our ONNX -> Keras step vs onnx2tf's on the same ONNX file."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_alexnet.conversion import (
        export_onnx,
        keras_model_from_onnx,
        load_state_dict,
        parity_inputs,
        run_onnx2tf,
        save_weights_atomic,
        torchvision_alexnet,
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
            onnx2tf.convert(
                input_onnx_file_path=str(path), output_folder_path=str(Path(work) / "onnx2tf"), non_verbose=True
            )
            result["onnx2tf_s"] = time.perf_counter() - start
            result["onnx2tf_output_mib"] = (
                sum(f.stat().st_size for f in (Path(work) / "onnx2tf").rglob("*") if f.is_file()) / 2**20
            )
    return result


def run_worker(args):
    """Run one measurement in a fresh Python process; return its JSON result.

    With ``--quick`` (a check that everything runs, no numbers kept) the measurements of one
    framework share a process instead (``_SERVERS``): a process start costs more than a quick
    measurement.
    """
    server = _server_for(args) if QUICK else None
    if server is not None:
        return server.run(args)
    command = [sys.executable, __file__, "--worker", json.dumps(args)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


QUICK = False
_SERVERS = {}


class _Server:
    """A worker process that runs measurements one JSON line at a time (``--serve``)."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )

    def run(self, args):
        self.process.stdin.write(json.dumps(args) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {args} failed: its process ended (exit {self.process.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"benchmark worker {args} failed:\n{answer['error']}")
        return answer["result"]

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def _server_for(args):
    """The shared process of the measurement's framework (torch and TensorFlow never share one while either is
    measured; the conversion, which needs both and comes last, runs in torch's)."""
    family = {"torch": "torch", "keras": "tf", "pipeline": "tf", "cache": "tf", "conversion": "torch"}.get(args["kind"])
    if args["kind"] in ("matmul", "devices"):
        family = "torch" if args["framework"] == "torch" else "tf"
    if family is None:
        return None
    if family not in _SERVERS:
        _SERVERS[family] = _Server()
    return _SERVERS[family]


def serve():
    """``--serve``: run the measurements read from standard input, one JSON line each, answering in kind."""
    import traceback

    for line in sys.stdin:
        spec = json.loads(line)
        try:
            answer = {"result": WORKERS[spec.pop("kind")](**spec)}
        except Exception:
            answer = {"error": traceback.format_exc()[-3000:]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


def cpu_flags():
    """The CPU features that decide the kernels (ratios differ between AVX2-only and AVX-512/AMX machines)."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags)


def cpu_name():
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine():
    import tensorflow as tf

    from keras_alexnet.weights.state_dicts import import_torch  # loads no TensorFlow

    torch, _ = import_torch()
    gpus = tf.config.list_physical_devices("GPU")
    return f"{cpu_name()}, {os.cpu_count()} cores, flags: {cpu_flags()}, {'GPU: ' + ', '.join(g.name for g in gpus) if gpus else 'no GPU'}; Python {platform.python_version()}, TensorFlow {tf.__version__}, PyTorch {torch.__version__}"


def compare(task, batch, steps, repeats, rounds, keras_options=None, torch_options=None):
    """Alternate keras and torch workers ``rounds`` times; medians of rates and of per-round ratios."""
    task, xla = task.removesuffix(":xla"), task.endswith(":xla")
    keras_options = keras_options if keras_options is not None else {"xla": True if xla else None}
    ours, theirs, ratios = [], [], []
    for _ in range(rounds):
        spec = {"task": task, "batch": batch, "steps": steps, "repeats": repeats}
        ours.append(run_worker({"kind": "keras", **spec, **keras_options}))
        theirs.append(run_worker({"kind": "torch", **spec, **(torch_options or {})}))
        ratios.append(ours[-1]["images_per_s"] / theirs[-1]["images_per_s"])
    row = {
        "keras": statistics.median(r["images_per_s"] for r in ours),
        "torch": statistics.median(r["images_per_s"] for r in theirs),
        "ratio": statistics.median(ratios),
        "keras_rss": max(r["peak_rss_mib"] for r in ours),
        "torch_rss": max(r["peak_rss_mib"] for r in theirs),
        "flops": flops_per_image(task),
    }
    if "peak_gpu_mib" in ours[0] and "peak_gpu_mib" in theirs[0]:
        row["keras_gpu_mib"] = max(r["peak_gpu_mib"] for r in ours)
        row["torch_gpu_mib"] = max(r["peak_gpu_mib"] for r in theirs)
    return row


# Mixed-precision comparison: (label, keras worker options, torch worker options). PyTorch's side is
# its AMP recipe (autocast, GradScaler for float16) with channels_last, as its performance guide advises.
PRECISION_VARIANTS = (
    ("float32", {}, {}),
    ("bfloat16", {"precision": "bfloat16"}, {"precision": "bfloat16", "channels_last": True}),
    ("bfloat16+xla", {"precision": "bfloat16", "xla": True}, {"precision": "bfloat16", "channels_last": True}),
    ("float16", {"precision": "float16"}, {"precision": "float16", "channels_last": True}),
)

# Dense tensor-core peaks in TFLOP/s from NVIDIA's datasheets. float32 rows use the TF32 peak: both
# frameworks run convolutions in TF32 on these GPUs by default. Longer names are matched first.
PEAK_TFLOPS = {
    "H100 PCIe": {"float32": 378, "bfloat16": 756, "float16": 756},
    "H100": {"float32": 495, "bfloat16": 989, "float16": 989},
    "H200": {"float32": 495, "bfloat16": 989, "float16": 989},
}


def peak_tflops(device_name, precision):
    """Datasheet peak for a GPU name and precision, or None when the GPU is not in ``PEAK_TFLOPS``."""
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key in device_name:
            return PEAK_TFLOPS[key][precision.split("+")[0]]
    return None


def worker_devices(framework):
    """What one framework sees: its first GPU's name, or None (each asked in its own process: the frameworks never
    share one while either is measured)."""
    if framework == "torch":
        from keras_alexnet.weights.state_dicts import import_torch  # loads no TensorFlow

        torch, _ = import_torch()
        return {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {"gpu": gpus[0].name if gpus else None}


def devices_seen():
    """The device both frameworks can use: ``{"device": "cuda", "name": torch's name for it}``, or the CPU."""
    seen = {framework: run_worker({"kind": "devices", "framework": framework})["gpu"] for framework in ("tf", "torch")}
    if seen["tf"] and seen["torch"]:
        return {"device": "cuda", "name": seen["torch"]}
    return {"device": "cpu", "name": platform.processor() or "CPU"}


def precision_rows(device, tasks, variants, batch, steps, repeats, rounds):
    """Each task at each precision variant, keras-alexnet vs PyTorch on ``device``."""
    rows = {}
    for task in tasks:
        for label, keras_options, torch_options in variants:
            rows[(task, label)] = row = compare(
                task, batch, steps, repeats, rounds, keras_options, {"device": device, **torch_options}
            )
            print(
                f"{task:24s} {label:13s} keras {row['keras']:8.1f} img/s   torch {row['torch']:8.1f} img/s   ratio {row['ratio']:.2f}",
                flush=True,
            )
    return rows


WORKERS = {
    "torch": worker_torch,
    "keras": worker_keras,
    "matmul": worker_matmul,
    "pipeline": worker_pipeline,
    "cache": worker_cache,
    "conversion": worker_conversion,
    "devices": worker_devices,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--gpu-batch", type=int, default=256, help="batch size of the rows on a GPU")
    parser.add_argument("--repeats", type=int, default=2, help="timings per worker (median)")
    parser.add_argument(
        "--rounds", type=int, help="alternating keras/torch worker pairs per measurement (default 3 on CPU, 1 on GPU)"
    )
    parser.add_argument(
        "--precision-rows", action="store_true", help="on a CPU, also compare mixed precision (a GPU always does)"
    )
    parser.add_argument("--onnx2tf", action="store_true", help="also time onnx2tf (minutes)")
    parser.add_argument("--out", help="default benchmarks/RESULTS.md, or benchmarks/RESULTS_GPU.md on a GPU")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec.pop("kind")](**spec)))
        return 0
    if args.serve:
        return serve()
    global QUICK
    QUICK = args.quick
    try:
        return measure(args)
    finally:
        for server in _SERVERS.values():
            server.close()


def measure(args):
    """Every measurement of the command line's choice, printed, and written to RESULTS.md unless --quick."""

    devices = devices_seen()
    gpu = devices["device"] == "cuda"
    rounds = 1 if args.quick else args.rounds or (1 if gpu else 3)
    batch, repeats = (4, 1) if args.quick else (args.gpu_batch if gpu else args.batch, args.repeats)
    steps = 1 if args.quick else 8
    precisions = ("float32", "bfloat16") if gpu else ("float32",)
    matmul = {
        (fw, precision): run_worker(
            {
                "kind": "matmul",
                "framework": fw,
                "size": 256 if args.quick else 4096,
                "device": devices["device"],
                "precision": precision,
            }
        )["gflops"]
        for fw in ("tf", "torch")
        for precision in precisions
    }
    for precision in precisions:
        print(
            f"{precision} matmul: TensorFlow {matmul['tf', precision]:.0f} GFLOP/s, PyTorch {matmul['torch', precision]:.0f} GFLOP/s",
            flush=True,
        )
    rows, precision_table = {}, {}
    if not gpu:
        for task in ("inference", "inference:xla", *(f"train:{r}" for r in RECIPES)):
            rows[task] = row = compare(task, batch, steps, repeats, rounds)
            print(
                f"{task:28s} keras {row['keras']:8.1f} img/s   torch {row['torch']:8.1f} img/s   ratio {row['ratio']:.2f}",
                flush=True,
            )
    if gpu or args.precision_rows:
        tasks = ("inference", "train:frozen-features", "train:fine-tune-all")
        variants = PRECISION_VARIANTS
        if args.quick:
            tasks, variants = ("train:frozen-features",), PRECISION_VARIANTS[1:2]
        precision_table = precision_rows(devices["device"], tasks, variants, batch, steps, repeats, rounds)
    pipeline = run_worker({"kind": "pipeline", "batch": batch, "repeats": repeats})
    print(f"input pipeline (JPEG folder, resized-crop): {pipeline['images_per_s']:.0f} img/s", flush=True)
    cache = run_worker(
        {
            "kind": "cache",
            "epochs": 1 if args.quick else 3,  # quick: one epoch each way checks that both run
            "batch": args.batch if not args.quick else batch,
            "fraction": 0.05 if args.quick else None,
            "architecture": "tiny" if args.quick else "alexnet",  # quick: both ways run, nothing measured
        }
    )
    print(f"activation cache: {json.dumps(cache)}", flush=True)
    conversion = run_worker({"kind": "conversion", "check_onnx2tf": args.onnx2tf})
    print(f"conversion: {json.dumps(conversion)}", flush=True)
    if args.quick:
        return 0
    out = Path(args.out) if args.out else ROOT / "benchmarks" / ("RESULTS_GPU.md" if gpu else "RESULTS.md")
    results = {
        "devices": devices,
        "rows": rows,
        "precision": precision_table,
        "matmul": matmul,
        "pipeline": pipeline,
        "cache": cache,
        "conversion": conversion,
    }
    write_results(out, results, batch, repeats, rounds)
    print(f"wrote {out}")
    return 0


def write_results(path, results, batch, repeats, rounds):
    """RESULTS.md (or RESULTS_GPU.md): the machine, the tables, and on a CPU the hand-written reading."""
    devices, rows, precision, matmul = results["devices"], results["rows"], results["precision"], results["matmul"]
    pipeline, cache, conversion = results["pipeline"], results["cache"], results["conversion"]
    gpu = devices["device"] == "cuda"
    command = (
        "python benchmarks/run.py"
        + (" --onnx2tf" if "onnx2tf_s" in conversion else "")
        + (" --precision-rows" if precision and not gpu else "")
    )
    lines = [
        "# Benchmark results" + (f" on {devices['name']}" if gpu else ""),
        "",
        f"Machine: {machine()}.",
        f"Command: `{command}`; batch {batch}, 224x224, 8 steps per timing. Each framework runs in its own process; a keras "
        f"and a torch process alternate {rounds} time{'s' if rounds > 1 else ''} per row (each the median of {repeats} "
        "timings), so both see the same machine; rates are medians over rounds and the ratio is the median of the "
        "per-round ratios. PyTorch runs eager with torchvision's AlexNet and Adam over param groups; keras-alexnet runs "
        '`model.fit` with the recipe\'s factored Adam and its default `jit_compile="auto"` (no XLA on CPU; on a GPU, '
        "XLA when the convolutions are frozen)."
        + (" `inference:xla` is the same forward pass compiled with XLA." if rows else ""),
        "",
        "Matmul (4096^3) at the start of the run: "
        + "; ".join(
            f"{p_} TensorFlow {matmul['tf', p_]:.0f} GFLOP/s, PyTorch {matmul['torch', p_]:.0f} GFLOP/s"
            for p_ in sorted({k[1] for k in matmul})
        )
        + ". GFLOP/s below count the convolutions and dense layers of each step: forward, weight gradients of trained "
        "layers, input gradients above the lowest trained layer."
        + (
            ""
            if gpu
            else " This shared machine's speed drifts by up to a third over minutes, which is why rows alternate processes."
        ),
    ]
    if rows:
        lines += [
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
    if precision:
        lines += [
            "",
            f"Mixed precision on {devices['name']}: keras-alexnet with a `mixed_<precision>` policy (float32 head and "
            "optimizer, loss scaling for float16), `+xla` with `jit_compile=True`; PyTorch with its AMP recipe "
            "(`torch.autocast`, `GradScaler` for float16) and channels_last for the reduced precisions. MFU: model "
            "FLOP/s over the datasheet's dense peak (TF32 for float32)"
            + (
                f"; {devices['name']} is not in the peak table, so MFU is not given."
                if peak_tflops(devices["name"], "float32") is None
                else "."
            ),
            "",
            "| measurement | precision | keras-alexnet img/s | PyTorch img/s | ratio | MFU keras / torch | peak memory keras / torch (MiB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for (task, label), row in precision.items():
            peak = peak_tflops(devices["name"], label)
            mfu = (
                f"{row['flops'] * row['keras'] / (peak * 1e12):.1%} / {row['flops'] * row['torch'] / (peak * 1e12):.1%}"
                if peak
                else "n/a"
            )
            memory = (
                (row.get("keras_gpu_mib"), row.get("torch_gpu_mib")) if gpu else (row["keras_rss"], row["torch_rss"])
            )
            lines.append(
                f"| {task} | {label} | {row['keras']:.1f} | {row['torch']:.1f} | {row['ratio']:.2f}x | {mfu} | "
                f"{memory[0]:.0f} / {memory[1]:.0f}{' (GPU)' if gpu else ' (RSS)'} |"
            )
    uncached, cached = cache["uncached"], cache["cached"]
    later = {
        key: {kind: statistics.median(cache[kind][key][1:]) for kind in ("uncached", "cached")}
        for key in ("batches_s", "epoch_s")
    }
    frozen = rows["train:frozen-features"]["keras"] if rows else precision["train:frozen-features", "float32"]["keras"]
    lines += [
        "",
        f"Input pipeline from the JPEG folder (`tests/data/cats_vs_dogs/train`, decode + RandomResizedCrop + flip + normalise): "
        f"{pipeline['images_per_s']:.0f} images/s, {pipeline['images_per_s'] / frozen:.1f}x the frozen-features training rate above.",
        "",
        f'Activation cache (`train(..., recipe="frozen-features", cache_activations=True)` on 400 real photos, batch 32, {len(uncached["epoch_s"])} '
        f"epochs, median of the epochs after the first): training steps take {later['batches_s']['uncached']:.2f} s per epoch "
        f"uncached and {later['batches_s']['cached']:.2f} s cached, {later['batches_s']['uncached'] / later['batches_s']['cached']:.1f}x "
        f"faster; whole epochs, with `train`'s end-of-epoch backup, CSV and plot, {later['epoch_s']['uncached']:.2f} s vs "
        f"{later['epoch_s']['cached']:.2f} s, {later['epoch_s']['uncached'] / later['epoch_s']['cached']:.1f}x (whole runs incl. "
        f"model build and caching, no report or TensorBoard: {uncached['total_s']:.1f} s vs {cached['total_s']:.1f} s).",
        "",
        f"Conversion of the same ONNX file (full AlexNet): ours {conversion['ours_s']:.1f} s to a written `.weights.h5`"
        + (
            f"; onnx2tf's normal run (SavedModel + TFLite, {conversion['onnx2tf_output_mib']:.0f} MiB written) "
            f"{conversion['onnx2tf_s']:.1f} s, {conversion['onnx2tf_s'] / conversion['ours_s']:.1f}x ours; onnx2tf building its "
            f"model in memory only (what `--check-onnx2tf` uses) {conversion['onnx2tf_in_memory_s']:.1f} s, "
            f"{conversion['onnx2tf_in_memory_s'] / conversion['ours_s']:.1f}x ours."
            if "onnx2tf_s" in conversion
            else " (onnx2tf not timed in this run)."
        ),
    ]
    analysis = Path(__file__).with_name("ANALYSIS.md")  # hand-written reading of the CPU numbers
    if analysis.exists() and not gpu:
        lines += ["", analysis.read_text().strip()]
    from keras_alexnet._utils.files import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    sys.exit(main())
