"""``keras-alexnet convert``: torchvision weights to Keras through ONNX, with a parity report."""

from __future__ import annotations

import sys


def run(args):
    from keras_alexnet.conversion import ParityError, convert

    try:
        threshold = {} if args.max_rel is None else {"max_rel": args.max_rel}
        result = convert(
            args.source, out=args.out, check_onnx2tf=args.check_onnx2tf, keep_onnx=args.keep_onnx, **threshold
        )
    except ParityError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"weights: {result.weights_path}")
    return 0


def add(command):
    p = command(NAME, "convert torchvision AlexNet weights to Keras through ONNX, with a parity report", run)
    p.add_argument(
        "--source",
        default="torchvision",
        help="'torchvision' (download official ImageNet weights), 'random[:SEED]', or a .pth/.npz state dict",
    )
    p.add_argument("--out", help="output .weights.h5 (default: the Keras cache, $KERAS_HOME/models)")
    p.add_argument("--check-onnx2tf", action="store_true", help="also compare against onnx2tf's conversion")
    p.add_argument("--keep-onnx", metavar="PATH", help="keep the intermediate ONNX file here")
    p.add_argument(
        "--max-rel",
        type=float,
        help="fail (and write nothing) if any relative difference exceeds this (default 1e-4)",
    )


NAME = "convert"
EXAMPLE = "keras-alexnet convert --source alexnet-owt-7be5be79.pth"
