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


# The scores of a run's images, the one table of their names: the CLI's spelling (compare's --metric)
# -> the name in a fit's logs and log.csv (Keras's "accuracy"; keras_alexnet.metrics names the others
# from here). The validation images' score is logged as validation(name).
METRICS = {"accuracy": "accuracy", "balanced-accuracy": "balanced_accuracy", "macro-f1": "macro_f1"}
ACCURACY, BALANCED_ACCURACY, MACRO_F1 = METRICS.values()


def metric_flag(name):
    """The CLI's spelling of metric ``name`` (``balanced_accuracy`` -> ``balanced-accuracy``)."""
    return {logged: flag for flag, logged in METRICS.items()}[name]


def validation(name):
    """The log's name of metric ``name`` on the validation images (Keras's ``val_`` prefix)."""
    return f"val_{name}"


# What compare ranks by (--metric), and the run record's field for each.
COMPARE_METRICS = {flag: validation(name) for flag, name in METRICS.items()}
# A training set whose largest class has this many times the images of the smallest is imbalanced:
# the report warns, and auto ranks its comparison by balanced accuracy.
IMBALANCE_RATIO = 2
