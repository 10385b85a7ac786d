"""MATLAB's shapes guide: generate circles, rectangles, stars and triangles, transfer-learn AlexNet.

    python examples/matlab_shapes.py [--per-class 60 --epochs 8 --out shapes_output]

The same as `keras-alexnet demo`: MATLAB recipe, training-progress plot, confusion
matrix and a verified SavedModel.
"""

import argparse

from keras_alexnet.demo import run_demo

parser = argparse.ArgumentParser()
parser.add_argument("--per-class", type=int, default=60)
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--out", default="shapes_output")
args = parser.parse_args()
run_demo(args.out, per_class=args.per_class, epochs=args.epochs)
