"""The named choices that options, the library and the command line share.

Kept free of TensorFlow and Keras, so that ``keras-alexnet --help`` and argument
checks answer without loading them. Recipes and heads are tables of their own
(``keras_alexnet.recipes``), solvers too (``keras_alexnet.optimizers.solvers``); their names are derived
from them.
"""

AUGMENTATIONS = ("none", "flip", "resized-crop")
LR_SCHEDULES = ("none", "piecewise", "one-cycle", "cosine")
MIXED_PRECISION = (None, "float16", "bfloat16")
CACHE_DTYPES = ("float32", "float16")
BAD_FILE_POLICIES = ("skip", "raise")
# MATLAB's OutputNetwork: the epoch whose weights model.keras keeps (the first is the default).
OUTPUT_NETWORKS = ("best-validation-loss", "best-validation-accuracy", "last")
CLASS_WEIGHTS = ("none", "auto")  # "auto": scikit-learn's "balanced", n / (classes * count)
EXPLAIN_METHODS = ("gradcam", "occlusion", "activations", "filters")
# Test-time augmentation's views, in order (preprocessing.tta_crops makes them).
TTA_VIEWS = ("centre", "centre mirrored", "shifted left", "shifted right", "shifted up", "shifted down")
TTA_BETA = 0.25  # the plain prediction's weight in test-time augmentation's blend (fastai's default)


def tta_description(beta=TTA_BETA):
    """How test-time augmentation combines its views, in words."""
    return (
        f"{len(TTA_VIEWS)} views ({', '.join(TTA_VIEWS)}): {beta:g} of the plain prediction, "
        f"{1 - beta:g} of the others' mean"
    )


# What compare ranks by (--metric), and the run record's field for each.
COMPARE_METRICS = {
    "accuracy": "val_accuracy",
    "balanced-accuracy": "val_balanced_accuracy",
    "macro-f1": "val_macro_f1",
}
# A training set whose largest class has this many times the images of the smallest is imbalanced:
# the report warns, and auto ranks its comparison by balanced accuracy.
IMBALANCE_RATIO = 2
