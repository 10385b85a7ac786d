"""PyTorch transfer-learning guide, recipe 'later-convs', on real cat and dog photos.

    python examples/recipe_later_convs.py [--data TRAIN_DIR --val VAL_DIR --epochs 3]

Uses the ImageNet convolution weights shipped with keras-alexnet; runs offline.
"""

import argparse
from pathlib import Path

from keras_alexnet.training import train

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "cats_vs_dogs"

parser = argparse.ArgumentParser()
parser.add_argument("--data", default=str(PHOTOS / "train"))
parser.add_argument("--val", default=str(PHOTOS / "test"))
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

result = train(args.data, val=args.val, recipe="later-convs", epochs=args.epochs, run_dir="runs/later_convs", verbose=2)
print(f"recipe later-convs: validation accuracy {result.val_accuracy:.4f} ({result.seconds:.0f} s)")
