"""``keras-alexnet export``: a verified SavedModel, TFLite or ONNX file (``keras_alexnet.formats``)."""

from __future__ import annotations

from keras_alexnet._utils.files import check_not_source
from keras_alexnet._utils.flags import (
    add_flags,
    typed_options,
)
from keras_alexnet.cli.common import overwrite_argument
from keras_alexnet.formats import FORMATS, export_formats, quantizations
from keras_alexnet.options import ExportOptions


def run(args):
    from keras_alexnet.export import calibration_crops, export, labelled_images
    from keras_alexnet.layers import class_names_of
    from keras_alexnet.model import load_model

    check_not_source(args.out, args.model)
    model = load_model(args.model)
    labelled = None
    if args.data or args.quantize:
        labelled = labelled_images(args.model, args.data, class_names_of(model))
        if args.quantize and labelled is None:
            print("note: no labelled images (--data, or a run's validation set): the accuracy gate is skipped")
    check = export(
        model,
        args.format,
        args.out,
        overwrite=args.overwrite,
        quantize=args.quantize,
        labelled=labelled,
        representative=calibration_crops(labelled) if args.quantize == "int8" and labelled else None,
        max_accuracy_drop=ExportOptions(**typed_options(args, ExportOptions)).max_accuracy_drop,
    )
    size = sum(p.stat().st_size for p in check.path.rglob("*")) if check.path.is_dir() else check.path.stat().st_size
    shown = f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"
    if args.quantize:  # float32 TFLite holds 4 bytes a parameter
        shown += f", float32 would be about {4 * model.count_params() / 2**20:.1f} MB"
    print(
        f"{args.format}{' ' + args.quantize if args.quantize else ''} written to {check.path} ({shown}); "
        f"checked on {check.samples} images: max |difference| to Keras {check.max_abs_diff:.2e}"
    )
    if check.gate is not None:
        print(check.gate)
    return 0


def add(command):
    p = command(NAME, "export a trained model to SavedModel (TF Serving), TFLite or ONNX, verified", run)
    p.add_argument("--model", required=True)
    p.add_argument(
        "--format",
        required=True,
        choices=export_formats(),
        help="; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values() if f.writable),
    )
    p.add_argument("--out", required=True)
    overwrite_argument(p, "replace an existing export (a SavedModel folder or .tflite file) at --out")
    p.add_argument(
        "--quantize",
        choices=quantizations(),
        help="TFLite only: a smaller file (float16 half, dynamic and int8 a quarter), checked with its own "
        "tolerance and, on labelled images, its accuracy",
    )
    p.add_argument(
        "--data",
        help="--quantize: labelled images (a folder per class) to check the accuracy on and, for int8, to calibrate "
        "on (up to 200 of them); default the validation images of the run that wrote --model",
    )
    add_flags(p, ExportOptions)


NAME = "export"
EXAMPLE = "keras-alexnet export --model runs/pets/model.keras --format onnx --out pets.onnx"
