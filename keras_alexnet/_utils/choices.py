"""The named choices that options, the library and the command line share.

Kept free of TensorFlow and Keras, so that ``keras-alexnet --help`` and argument
checks answer without loading them.
"""

AUGMENTATIONS = ("none", "flip", "resized-crop")
SOLVERS = ("sgdm", "sgd", "adam", "adamw", "rmsprop")
MOMENTUM_SOLVERS = ("sgdm", "adam", "adamw")  # the solvers whose momentum (beta_1) a one-cycle can cycle
LR_SCHEDULES = ("none", "piecewise", "one-cycle", "cosine")
MIXED_PRECISION = (None, "float16", "bfloat16")
CACHE_DTYPES = ("float32", "float16")
BAD_FILE_POLICIES = ("skip", "raise")
ARCHITECTURES = ("alexnet", "tiny")
# The names of keras_alexnet.transfer.RECIPES, in its order (a test keeps the two equal).
RECIPE_NAMES = ("frozen-features", "fine-tune-all", "later-convs", "matlab", "fine-tune")
# train(recipe="auto") chooses one of RECIPE_NAMES from the data (training/auto.py).
TRAIN_RECIPES = (*RECIPE_NAMES, "auto")
TWO_STAGE_RECIPES = ("fine-tune",)  # Recipe.stages == 2 (a test keeps them equal)
HEADS = ("alexnet", "compact")
