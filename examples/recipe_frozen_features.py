"""PyTorch transfer-learning guide, recipe 'frozen-features': convolutions frozen, a new classifier trained (Adam 1e-4).

python examples/recipe_frozen_features.py [--data TRAIN_DIR --val VAL_DIR --epochs 3]
"""

from cats_vs_dogs import run

run("frozen-features")
