"""``keras-alexnet evaluate``: scores, confusion matrix, calibration (and test-time augmentation's gain)."""

from __future__ import annotations

import time

from keras_alexnet._utils.files import check_folder_target
from keras_alexnet._utils.flags import (
    add_flags,
)
from keras_alexnet.cli.common import training_options, tta_argument, warn_if_far_from_training, warn_if_tta_lowered
from keras_alexnet.options import (
    TrainingOptions,
)


def run(args):
    from keras_alexnet.deployment import load_classifier
    from keras_alexnet.evaluation import evaluate, tta_gain

    if args.out:
        check_folder_target(args.out)
    classifier = load_classifier(args.model)
    warn_if_far_from_training(args.model, [args.data])
    started = time.perf_counter()
    result = evaluate(classifier, args.data, batch_size=training_options(args).batch_size)
    if args.tta:
        warn_if_tta_lowered(args.model)
        plain, plain_seconds = result, time.perf_counter() - started
        started = time.perf_counter()
        result = evaluate(classifier, args.data, batch_size=training_options(args).batch_size, tta=True)
        print(tta_gain(plain, result, plain_seconds, time.perf_counter() - started))
    print(result.report())
    if args.out:
        paths = result.save(args.out)
        print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0


def add(command):
    p = command(NAME, "accuracy, per-class precision/recall, confusion matrix", run)
    p.add_argument("--model", required=True, help="model.keras, a SavedModel folder, a .tflite or an .onnx file")
    p.add_argument("--data", required=True, help="folder with one sub-folder per class")
    p.add_argument("--out", help="folder for evaluation.txt, confusion_matrix.png and reliability.png")
    tta_argument(p, "also evaluate with test-time augmentation and print the gain and the cost per image")
    add_flags(p, TrainingOptions, ["batch_size"])


NAME = "evaluate"
EXAMPLE = "keras-alexnet evaluate --model runs/pets/model.keras --data test/ --out runs/pets/eval"
