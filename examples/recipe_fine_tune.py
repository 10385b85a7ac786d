"""fastai's fine_tune as a recipe: one frozen epoch (one-cycle), then every layer with discriminative
rates (conv1 at 1/100 of the head), base rate halved, one-cycle; one run directory, stage switch in the plot.

python examples/recipe_fine_tune.py [--data TRAIN_DIR --val VAL_DIR --epochs 3]
"""

from cats_vs_dogs import run

run("fine-tune")
