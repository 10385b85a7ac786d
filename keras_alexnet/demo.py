"""The offline demo: MATLAB's transfer-learning guide on generated shapes.

Generates the shapes data set, splits it 70/30 per class, applies the MATLAB
recipe (new fc8 with learning-rate factors 20, sgdm, base rate 1e-4) to AlexNet
with the shipped ImageNet convolution weights, trains (keeping the epoch of the lowest
validation loss, calibrated), and writes the progress plot, the confusion matrix, the
reliability diagram and a verified SavedModel.
"""

from __future__ import annotations

import time
from pathlib import Path

from keras_alexnet.datasets import ImageFolder, generate_shapes
from keras_alexnet.evaluation import evaluate
from keras_alexnet.experiments import train
from keras_alexnet.export import export_savedmodel
from keras_alexnet.options import DEMO
from keras_alexnet.run_directory import RunDirectory


def run_demo(out=DEMO.out, per_class=DEMO.per_class, epochs=DEMO.epochs, seed=DEMO.seed, batch_size=10, print_fn=print):
    start = time.perf_counter()
    out = Path(out)
    data_dir = generate_shapes(out / "shapes", per_class=per_class, size=128, seed=seed)
    folder = ImageFolder.read(data_dir)
    train_set, val_set = folder.split(0.7, seed=seed)  # splitEachLabel(imds, 0.7, 'randomized')
    print_fn(f"shapes data set: {folder.counts()} -> {len(train_set)} training, {len(val_set)} validation images")
    result = train(
        train_set,
        val=val_set,
        recipe="matlab",
        epochs=epochs,
        batch_size=batch_size,
        run_dir=out / "run",
        overwrite=True,  # the demo's own folder: a second demo replaces the first
        validation_frequency=3 * 4,
        seed=seed,
        verbose=2,
    )
    evaluation = evaluate(result.model, val_set)
    evaluation.save(out)
    check = export_savedmodel(result.model, out / "savedmodel", overwrite=True)
    print_fn(evaluation.report())
    print_fn(f"\nvalidation accuracy: {evaluation.accuracy:.4f}")
    run = RunDirectory(out / "run")
    print_fn(f"training progress plot: {run.progress}")
    print_fn(f"confusion matrix: {out / 'confusion_matrix.png'}")
    print_fn(f"reliability diagram (calibration): {out / 'reliability.png'}")
    print_fn(f"report (open in a browser): {run.report}")
    print_fn(f"SavedModel: {check.path} (max |difference| to Keras {check.max_abs_diff:.1e})")
    print_fn(f"demo finished in {time.perf_counter() - start:.0f}s")
    return evaluation.accuracy
