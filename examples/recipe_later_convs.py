"""PyTorch transfer-learning guide, recipe 'later-convs': conv1..conv3 frozen, conv4/conv5 at 1/10 of the rate, classifier at 1e-4 (Adam).

python examples/recipe_later_convs.py [--data TRAIN_DIR --val VAL_DIR --epochs 3]
"""

from cats_vs_dogs import run

run("later-convs")
