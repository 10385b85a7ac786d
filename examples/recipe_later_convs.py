"""PyTorch transfer-learning guide, recipe 'later-convs' (Example 3): features[0:5] (conv1, conv2) frozen, features[5:] (conv3..conv5) at 1/10 of the rate, classifier at 1e-4 (Adam).

python examples/recipe_later_convs.py [--data TRAIN_DIR --val VAL_DIR --epochs 3]
"""

from cats_vs_dogs import run

run("later-convs")
