"""``keras-alexnet predict``: top classes of any number of images, streamed."""

from __future__ import annotations

import sys

from keras_alexnet._utils.files import check_new_file
from keras_alexnet._utils.flags import (
    add_flags,
    typed_options,
)
from keras_alexnet._utils.text import printable
from keras_alexnet.cli.common import (
    overwrite_argument,
    training_options,
    tta_argument,
    warn_if_far_from_training,
    warn_if_tta_lowered,
)
from keras_alexnet.options import (
    PredictOptions,
    TrainingOptions,
)


def run(args):
    from keras_alexnet.deployment import KerasClassifier, load_classifier
    from keras_alexnet.evaluation import predict_files, write_predictions
    from keras_alexnet.model import AlexNet

    if args.out:
        check_new_file(args.out, args.overwrite)
    model = load_classifier(args.model) if args.model else KerasClassifier(AlexNet(weights="imagenet"))
    settings = PredictOptions(**typed_options(args, PredictOptions))
    top = min(settings.top, model.outputs)
    warn_if_far_from_training(args.model, args.images)
    if args.tta:
        warn_if_tta_lowered(args.model)

    def echo(prediction):
        if prediction.error is not None:
            print(f"skipped {printable(prediction.path)}: {prediction.error}", file=sys.stderr, flush=True)
        else:
            scores = ", ".join(f"{n} {p:.3f}" for n, p in prediction.top)
            unknown = (
                f"unknown (under {settings.min_confidence:g}): " if prediction.answer == prediction.UNKNOWN else ""
            )
            print(f"{printable(prediction.path)}: {unknown}{scores}", flush=True)

    predictions = predict_files(
        model,
        args.images,
        top=top,
        batch_size=training_options(args).batch_size,
        min_confidence=settings.min_confidence,
        tta=args.tta,
    )
    if args.out:
        done, skipped = write_predictions(predictions, args.out, top, echo)
    else:
        done = skipped = 0
        for prediction in predictions:
            echo(prediction)
            done, skipped = done + (prediction.error is None), skipped + (prediction.error is not None)
    where = f"; written to {args.out}" if args.out else ""
    print(f"{done} image(s) predicted" + (f", {skipped} skipped" if skipped else "") + where, file=sys.stderr)
    return 0 if done else 1


def add(command):
    p = command(NAME, "top-k classes of images, streamed in batches (any number of images)", run)
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument(
        "--model",
        help="model.keras, a SavedModel folder, a .tflite or an .onnx file (default: ImageNet AlexNet, needs "
        "`keras-alexnet convert`)",
    )
    add_flags(p, PredictOptions, ["top"])
    p.add_argument("--out", help="also write the predictions as CSV (path, answer, class, probability, ..., error)")
    add_flags(p, PredictOptions, ["min_confidence"])
    tta_argument(p, "blend each image's probabilities over test-time augmentation's views")
    overwrite_argument(p, "replace the --out file if it exists")
    add_flags(p, TrainingOptions, ["batch_size"])


NAME = "predict"
EXAMPLE = "keras-alexnet predict --model runs/pets/model.keras photo1.jpg photo2.jpg --top 3"
