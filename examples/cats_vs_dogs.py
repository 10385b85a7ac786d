"""Shared by the recipe examples: train one recipe on real cat and dog photos and
print the validation accuracy. Runs offline with the ImageNet convolution weights
shipped in keras-alexnet."""

import argparse
from pathlib import Path

from keras_alexnet import train

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "cats_vs_dogs"


def run(recipe):
    parser = argparse.ArgumentParser(description=f"recipe {recipe} on cats vs dogs")
    parser.add_argument("--data", default=str(PHOTOS / "train"), help="training folder, one sub-folder per class")
    parser.add_argument("--val", default=str(PHOTOS / "test"), help="validation folder")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    # overwrite: each run of an example replaces that example's own runs/<recipe>.
    result = train(
        args.data, val=args.val, recipe=recipe, epochs=args.epochs, run_dir=f"runs/{recipe}", overwrite=True, verbose=2
    )
    print(f"recipe {recipe}: validation accuracy {result.val_accuracy:.4f} ({result.seconds:.0f} s)")
    return result
