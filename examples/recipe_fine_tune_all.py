"""PyTorch transfer-learning guide, recipe 'fine-tune-all', on real cat and dog photos.

    python examples/recipe_fine_tune_all.py [--data TRAIN_DIR --val VAL_DIR --epochs 3]

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

result = train(args.data, val=args.val, recipe="fine-tune-all", epochs=args.epochs, run_dir="runs/fine_tune_all", verbose=2)
print(f"recipe fine-tune-all: validation accuracy {result.val_accuracy:.4f} ({result.seconds:.0f} s)")
