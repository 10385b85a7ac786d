"""PyTorch transfer-learning guide, recipe 'fine-tune-all': everything fine-tuned, convolutions at 1/10 of the head's rate (Adam, 1e-5 vs 1e-4).

python examples/recipe_fine_tune_all.py [--data TRAIN_DIR --val VAL_DIR --epochs 3]
"""

from cats_vs_dogs import run

run("fine-tune-all")
