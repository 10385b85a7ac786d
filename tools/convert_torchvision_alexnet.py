#!/usr/bin/env python
"""Convert torchvision AlexNet weights to a Keras .weights.h5 through ONNX.

The same code as ``keras-alexnet convert``; see ``--help``.

    python tools/convert_torchvision_alexnet.py --source torchvision
    python tools/convert_torchvision_alexnet.py --source alexnet_features_imagenet.npz --out x.weights.h5
"""

import sys

from keras_alexnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
