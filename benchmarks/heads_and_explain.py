#!/usr/bin/env python
"""Heads and explanations, side by side on this machine, in one run; writes benchmarks/HEADS_EXPLAIN.md.

    python benchmarks/heads_and_explain.py          # about 5 minutes on 2 cores
    python benchmarks/heads_and_explain.py --quick  # a smoke run

1. A cached epoch (frozen convolutions, 400 shipped photos' pool5 activations) with the
   compact head vs AlexNet's head (fc6/fc7/fc8, Adam), and each head's step against its
   bound: FLOPs at the machine's measured matmul rate, and the bytes Adam's update moves
   (7 float32 passes over the trained parameters) at the machine's measured copy rate.
2. Grad-CAM of one image, ours (Keras) vs pytorch-grad-cam on torchvision's AlexNet with
   the same (seeded) weights, each in its own process, and against one forward pass.
3. Occlusion sensitivity of one 224 x 224 image (196 masked copies, batched).
4. The HTML report of a run with 50 validation images.
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.run import _timed, cpu_flags, cpu_name  # noqa: E402  (the same timer and machine as run.py)

PHOTOS = ROOT / "tests" / "data" / "cats_vs_dogs"


def machine():
    return f"{cpu_name()}, {os.cpu_count()} cores, flags: {cpu_flags()}"


def machine_rates():
    """(GFLOP/s of a float32 matmul, GB/s of a large array copy) measured now."""
    import tensorflow as tf

    a = tf.random.normal((2048, 2048))
    matmul = tf.function(tf.matmul)
    gflops = 2 * 2048**3 / _timed(lambda: matmul(a, a).numpy(), 1, 5) / 1e9
    big = np.ones(64 * 2**20, np.float32)  # 256 MiB
    target = np.empty_like(big)
    seconds = _timed(lambda: np.copyto(target, big), 1, 5)
    return gflops, 2 * big.nbytes / seconds / 1e9


def _timed_fit(model, data, steps, epochs=3):
    """Seconds per cached epoch and per step of ``model.fit`` (traced and warmed up first)."""
    model.fit(data, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0)
    seconds = (time.perf_counter() - start) / epochs
    return {"epoch_s": seconds, "step_ms": 1000 * seconds / steps}


def heads(quick):
    """Cached-epoch seconds of both heads, trained parameters, and each step's bound."""
    import keras
    import tensorflow as tf

    from keras_alexnet.datasets import ImageFolder
    from keras_alexnet.model import AlexNet
    from keras_alexnet.training import cache_activations, split_frozen_prefix
    from keras_alexnet.transfer import apply_recipe

    folder = ImageFolder.read(PHOTOS / "train")
    if quick:
        folder = folder._subset(list(range(0, len(folder), 10)))
    batch = 32
    gflops, gbps = machine_rates()
    rows = {}
    for head in ("alexnet", "compact"):
        model = apply_recipe(AlexNet(weights="imagenet", include_top=False), "frozen-features", 2, head=head)
        prefix, rest = split_frozen_prefix(model)  # AlexNet's head: after the flatten; compact: pool5
        rest.compile(optimizer=model.optimizer, loss=model.loss)
        cached = cache_activations(prefix, folder.dataset(batch), count=len(folder))
        features = cached.features
        data = tf.data.Dataset.from_tensor_slices((features, cached.labels)).batch(batch).cache().prefetch(2)
        steps = -(-len(folder) // batch)
        rows[head] = _timed_fit(rest, data, steps)
        parameters = int(sum(np.prod(w.shape) for w in rest.trainable_weights))
        # forward + backward = 3 x 2 x parameters FLOPs per image for dense layers
        flop_bound = 6 * parameters * batch / (gflops * 1e9)
        memory_bound = 7 * 4 * parameters / (gbps * 1e9)
        rows[head].update(bound_ms=1000 * max(flop_bound, memory_bound), parameters=parameters)
    # The framework's floor: the same fit loop on a model with 18 parameters.
    floor = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    floor.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    tiny = tf.data.Dataset.from_tensor_slices((np.zeros((len(folder), 8), np.float32), np.zeros(len(folder), np.int32)))
    rows["floor"] = _timed_fit(floor, tiny.batch(batch).cache().prefetch(2), -(-len(folder) // batch))
    return rows, gflops, gbps


def gradcam_keras(weights_path, images):
    from keras_alexnet import AlexNet
    from keras_alexnet.explain import GradCamExplainer
    from keras_alexnet.preprocessing import eval_transform

    model = AlexNet(weights=weights_path, classes=1000, classifier_activation=None)
    x = np.stack([eval_transform(p) for p in images])
    explainer = GradCamExplainer(model, "conv5")
    explainer(x[:1])  # trace
    per_image = _timed(lambda: [explainer(x[i : i + 1]) for i in range(len(x))], 0, 3) / len(x)
    import tensorflow as tf

    infer = tf.function(lambda batch: model(batch, training=False))  # traced, like the explainer's step
    forward = _timed(lambda: [infer(x[i : i + 1]).numpy() for i in range(len(x))], 1, 3) / len(x)
    return {"gradcam_s": per_image, "forward_s": forward}


def gradcam_torch(state_path, images):
    from keras_alexnet.conversion import import_torch, torchvision_alexnet
    from keras_alexnet.preprocessing import eval_transform

    torch, _ = import_torch()
    from pytorch_grad_cam import GradCAM

    state = dict(np.load(state_path))
    model = torchvision_alexnet(state, features_only=False).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    x = torch.from_numpy(np.stack([eval_transform(p) for p in images]).transpose(0, 3, 1, 2).copy())
    cam = GradCAM(model=model, target_layers=[model.features[11]])
    cam(input_tensor=x[:1], targets=None)
    per_image = _timed(lambda: [cam(input_tensor=x[i : i + 1], targets=None) for i in range(len(x))], 0, 3) / len(x)
    return {"gradcam_s": per_image}


def occlusion_seconds(model_path, image):
    from keras_alexnet.explain import occlusion_sensitivity
    from keras_alexnet.model import load_model
    from keras_alexnet.preprocessing import eval_transform

    model = load_model(model_path)
    x = eval_transform(image)
    occlusion_sensitivity(model, x, patch=112, stride=112)  # trace
    return _timed(lambda: occlusion_sensitivity(model, x), 0, 3)


def report_seconds(quick, scratch):
    from keras_alexnet.datasets import ImageFolder
    from keras_alexnet.report import write_report
    from keras_alexnet.training import train

    folder = ImageFolder.read(PHOTOS / "test")
    chosen = list(range(0, len(folder), 4))[:50]
    val = folder._subset(chosen)
    train_set = ImageFolder.read(PHOTOS / "train")
    if quick:
        train_set = train_set._subset(list(range(0, len(train_set), 20)))
    run = Path(scratch) / "run"
    train(train_set, val=val, run_dir=run, head="compact", epochs=1, cache_activations=True, verbose=0, report=False)
    start = time.perf_counter()
    write_report(run)
    return time.perf_counter() - start, len(val)


def worker(name, args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = globals()[name](*args)
    print("RESULT " + json.dumps(result))


def in_process(name, *args):
    """Run ``name(*args)`` in a fresh Python (threads, memory and torch kept apart)."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.heads_and_explain import worker; worker({name!r}, {list(args)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    output = done.stdout
    return json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "HEADS_EXPLAIN.md"))
    args = parser.parse_args()
    images = sorted((PHOTOS / "test" / "cats").iterdir())[:5] + sorted((PHOTOS / "test" / "dogs").iterdir())[:5]
    images = [str(p) for p in (images[:2] if args.quick else images)]
    with tempfile.TemporaryDirectory() as scratch:
        heads_rows, gflops, gbps = in_process("heads", args.quick)
        # Seeded torchvision weights, saved once, read by both Grad-CAM workers.
        state_path = str(Path(scratch) / "state.npz")
        weights_path = str(Path(scratch) / "seeded.weights.h5")
        subprocess.run(
            [sys.executable, "-m", "keras_alexnet.cli", "convert", "--source", "random:7", "--out", weights_path],
            check=True,
            capture_output=True,
        )
        code = (
            "from keras_alexnet.conversion import load_state_dict; import numpy as np; "
            f"s, _ = load_state_dict('random:7', progress=lambda *a: None); np.savez({state_path!r}, **s)"
        )
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        ours = in_process("gradcam_keras", weights_path, images)
        reference = in_process("gradcam_torch", state_path, images)
        report_s, report_images = in_process("report_seconds", args.quick, scratch)
        occlusion_s = in_process("occlusion_seconds", str(Path(scratch) / "run" / "model.keras"), images[0])
    alex, compact = heads_rows["alexnet"], heads_rows["compact"]
    lines = [
        "# Heads and explanations",
        "",
        f"Machine: {machine()}. Matmul {gflops:.0f} GFLOP/s, copy {gbps:.1f} GB/s (measured in this run).",
        f"Generated by `python benchmarks/heads_and_explain.py{' --quick' if args.quick else ''}`; times are medians; "
        "compare the ratios, not the absolute times, across machines.",
        "",
        "## A cached epoch: compact head vs AlexNet's head (frozen convolutions, Adam, batch 32)",
        "",
        "| head | trained parameters | epoch s | step ms | bound ms (FLOPs or Adam's bytes) | step / bound |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in (("AlexNet (fc6, fc7, fc8)", alex), ("compact (fastai)", compact)):
        lines.append(
            f"| {name} | {row['parameters']:,} | {row['epoch_s']:.2f} | {row['step_ms']:.1f} | {row['bound_ms']:.2f} "
            f"| {row['step_ms'] / row['bound_ms']:.1f}x |"
        )
    floor = heads_rows["floor"]
    lines.append(
        f"| Keras's fit loop alone (a model with 18 parameters) | 18 | {floor['epoch_s']:.2f} | {floor['step_ms']:.1f} | | |"
    )
    lines += [
        "",
        f"**Compact-head cached epoch: {alex['epoch_s'] / compact['epoch_s']:.1f}x faster** than AlexNet's head.",
        "",
        "## Explanations (one image, model loaded)",
        "",
        "| what | seconds | ratio |",
        "|---|---|---|",
        f"| Grad-CAM, ours (Keras, conv5) | {ours['gradcam_s']:.3f} | {ours['gradcam_s'] / reference['gradcam_s']:.2f}x "
        "pytorch-grad-cam's |",
        f"| Grad-CAM, pytorch-grad-cam (torchvision, same weights) | {reference['gradcam_s']:.3f} | 1 |",
        f"| one forward pass (Keras, traced) | {ours['forward_s']:.3f} | Grad-CAM = {ours['gradcam_s'] / ours['forward_s']:.1f}x |",
        f"| occlusion sensitivity, 224 x 224, 196 patches of 45 at stride 14 | {occlusion_s:.2f} | |",
        f"| HTML report of a run, {report_images} validation images | {report_s:.1f} | |",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
