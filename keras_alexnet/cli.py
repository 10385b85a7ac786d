"""The ``keras-alexnet`` command line: thin wrappers over the Python API."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _convert(args):
    from keras_alexnet.convert import convert

    result = convert(args.source, out=args.out, check_onnx2tf=args.check_onnx2tf, keep_onnx=args.keep_onnx)
    worst = max(row.max_rel for row in result.parity)
    if worst > args.max_rel:
        print(f"parity check failed: max relative difference {worst:.2e} > {args.max_rel:.0e}", file=sys.stderr)
        return 1
    print(f"weights: {result.weights_path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-alexnet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser(
        "convert",
        help="convert torchvision AlexNet weights to Keras through ONNX, with a parity report",
    )
    convert.add_argument(
        "--source",
        default="torchvision",
        help="'torchvision' (download official ImageNet weights), 'random[:SEED]', or a .pth/.npz state dict",
    )
    convert.add_argument("--out", help="output .weights.h5 (default: the Keras cache, $KERAS_HOME/models)")
    convert.add_argument("--check-onnx2tf", action="store_true", help="also compare against onnx2tf's conversion (minutes)")
    convert.add_argument("--keep-onnx", metavar="PATH", help="keep the intermediate ONNX file here")
    convert.add_argument("--max-rel", type=float, default=1e-4, help="fail if any relative difference exceeds this")
    convert.set_defaults(run=_convert)
    return parser


def main(argv=None):
    """Entry point of the ``keras-alexnet`` console script."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
