"""Every deployment format of one trained model, side by side with torchvision, in one run.

    python benchmarks/deploy.py [--epochs 3] [--repeats 30]

Trains AlexNet (frozen-features, the shipped ImageNet convolutions) on the shipped training
photos, exports it to every format `keras-alexnet export` writes (SavedModel; TFLite float32,
float16, dynamic and int8; ONNX), then measures each in a fresh process: accuracy on the
shipped held-out photos (through `keras_alexnet.deployment`, each format's own input), latency
of one image (median and p90), images/s at batch 32 (TFLite takes one image a call), file size
and peak memory. torchvision's AlexNet (eager, and its own ONNX export in ONNX Runtime) runs
beside it for latency and throughput (its classifier is not trained here: no accuracy).
Prints a Markdown table and the CPU's flags.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import cpu_flags, cpu_name  # noqa: E402  (the same machine description as run.py)

PHOTOS = ROOT / "tests" / "data" / "cats_vs_dogs"

MEASURE_OURS = """
import json, sys, time
peak_kb = lambda: int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
import numpy as np
from keras_alexnet.deployment import load_classifier
from keras_alexnet.evaluation import evaluate
path, photos, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
classifier = load_classifier(path)
accuracy = evaluate(classifier, photos).accuracy
image = classifier.transform(sorted(__import__("pathlib").Path(photos).rglob("*.jpg"))[0])
batch = [image] * 32 if classifier.format in ("savedmodel", "tflite") else np.stack([image] * 32)
classifier.probabilities(batch[:1] if isinstance(batch, list) else batch[:1])
times = []
for _ in range(repeats):
    start = time.perf_counter()
    classifier.probabilities(batch[:1] if isinstance(batch, list) else batch[:1])
    times.append(time.perf_counter() - start)
start = time.perf_counter()
for _ in range(3):
    classifier.probabilities(batch)
rate = 3 * 32 / (time.perf_counter() - start)
print("RESULT " + json.dumps({"accuracy": accuracy, "median_ms": 1000 * float(np.median(times)),
      "p90_ms": 1000 * float(np.percentile(times, 90)), "images_per_s": rate,
      "peak_mb": peak_kb() / 1024}))
"""

MEASURE_TORCH = """
import json, sys, time
peak_kb = lambda: int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
import numpy as np
kind, onnx_path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
import torch, torchvision
torch.manual_seed(0)
model = torchvision.models.alexnet(num_classes=2).eval()
x = torch.randn(32, 3, 224, 224)
if kind == "torch-onnx":
    torch.onnx.export(model, x[:1], onnx_path, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}},
                      dynamo=False)
    import onnxruntime as ort
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    run = lambda b: session.run(None, {"x": b.numpy()})
else:
    def run(b):
        with torch.no_grad():
            return model(b)
run(x[:1])
times = []
for _ in range(repeats):
    start = time.perf_counter(); run(x[:1]); times.append(time.perf_counter() - start)
start = time.perf_counter()
for _ in range(3):
    run(x)
rate = 3 * 32 / (time.perf_counter() - start)
print("RESULT " + json.dumps({"accuracy": None, "median_ms": 1000 * float(np.median(times)),
      "p90_ms": 1000 * float(np.percentile(times, 90)), "images_per_s": rate,
      "peak_mb": peak_kb() / 1024,
      "size_mb": (__import__("os").path.getsize(onnx_path) / 2**20) if kind == "torch-onnx" else None}))
"""


def measure(code, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(lines[-1][len("RESULT ") :])


def size_mb(path):
    path = Path(path)
    total = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
    return total / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    from keras_alexnet.datasets import ImageFolder
    from keras_alexnet.export import calibration_crops, export_onnx, export_savedmodel, export_tflite
    from keras_alexnet.training import train

    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        result = train(
            PHOTOS / "train",
            run_dir=scratch / "run",
            recipe="frozen-features",
            epochs=args.epochs,
            cache_activations=True,
            report=False,
            tensorboard=False,
            verbose=0,
        )
        model = result.model
        held_out = ImageFolder.read(PHOTOS / "test", class_names=result.class_names)
        training = ImageFolder.read(PHOTOS / "train", class_names=result.class_names)
        files = {"keras": scratch / "run" / "model.keras", "savedmodel": scratch / "savedmodel"}
        export_savedmodel(model, files["savedmodel"])
        gates = {}
        for quantize in (None, "float16", "dynamic", "int8"):
            name = f"tflite {quantize or 'float32'}"
            files[name] = scratch / f"{quantize or 'float32'}.tflite"
            check = export_tflite(
                model,
                files[name],
                quantize=quantize,
                labelled=held_out if quantize else None,
                representative=calibration_crops(training, 200) if quantize == "int8" else None,
                max_accuracy_drop=1.0,  # measured here, not refused
            )
            gates[name] = check.gate
        files["onnx"] = scratch / "model.onnx"
        export_onnx(model, files["onnx"])
        for name, path in files.items():
            rows[name] = {**measure(MEASURE_OURS, path, PHOTOS / "test", args.repeats), "size_mb": size_mb(path)}
            print(name, rows[name], flush=True)
        for kind in ("torch-eager", "torch-onnx"):
            rows[f"torchvision ({kind.split('-')[1]})"] = measure(
                MEASURE_TORCH, kind, scratch / "tv.onnx", args.repeats
            )
    print(f"\nmachine: {cpu_name()}, {os.cpu_count()} cores, flags: {cpu_flags()}\n")
    print(
        "| format | accuracy (200 held-out photos) | batch 1 median / p90 (ms) | images/s at batch 32 | file (MB) | peak memory (MB) |"
    )
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        accuracy = "-" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        size = "-" if row.get("size_mb") is None else f"{row['size_mb']:.1f}"
        print(
            f"| {name} | {accuracy} | {row['median_ms']:.1f} / {row['p90_ms']:.1f} | {row['images_per_s']:.1f} | "
            f"{size} | {row['peak_mb']:.0f} |"
        )
    float_size = rows["tflite float32"]["size_mb"]
    for name, gate in gates.items():
        if gate is not None:
            print(f"{name}: {gate}; {rows[name]['size_mb'] / float_size:.0%} of float32's size")


if __name__ == "__main__":
    main()
