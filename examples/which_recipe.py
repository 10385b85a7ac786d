"""Which recipe? Find the rate, compare the recipes over seeds, or let `auto` choose, on the shipped photos.

python examples/which_recipe.py [--seeds 3 --epochs 3]     # about 20 minutes on 2 cores for everything

The same from the command line:
    keras-alexnet lr-find --data tests/data/cats_vs_dogs/train --recipe frozen-features
    keras-alexnet compare --data tests/data/cats_vs_dogs/train --val tests/data/cats_vs_dogs/test
    keras-alexnet train --data tests/data/cats_vs_dogs/train --val tests/data/cats_vs_dogs/test --recipe auto
"""

import argparse
from pathlib import Path

from keras_alexnet import experiments
from keras_alexnet.experiments import candidates_of, compare
from keras_alexnet.training import TrainingOptions
from keras_alexnet.training.lr_find import lr_find_on_folder

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "cats_vs_dogs"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

# 1. The learning rate of one recipe, from the data (fastai's lr_find).
found = lr_find_on_folder(PHOTOS / "train", TrainingOptions(recipe="frozen-features"), plot="runs/lr_find.png")
print(found)

# 2. Every recipe and head over seeds: a table with mean +- std, and ties called ties.
comparison = compare(
    PHOTOS / "train",
    val=PHOTOS / "test",
    candidates=candidates_of(),
    seeds=args.seeds,
    epochs=args.epochs,
    out="runs/comparison",
)
print("winner:", comparison.winner().candidate.name)

# 3. Or in one step: a budgeted comparison (2 epochs per run), then the winner trained to --epochs.
result = experiments.train(
    PHOTOS / "train", val=PHOTOS / "test", recipe="auto", epochs=args.epochs, run_dir="runs/auto", overwrite=True
)
print(f"auto chose {result.options.recipe} / {result.options.head}: validation accuracy {result.val_accuracy:.4f}")
