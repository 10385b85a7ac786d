"""Training options as one validated object, the way MATLAB has ``trainingOptions``: the schema of
``train``'s flags.

``train()``, the CLI and the run directory share ``TrainingOptions``: each field holds its
default, its check and its flag (``_utils.flags.option``), the CLI's ``train`` flags are made
from the fields, ``train`` runs them, and the run directory records them in ``options.json`` so a
run says how it was made. Every field is checked when the object is made, and an error names the
field, the value and what is allowed. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
from pathlib import Path

from keras_alexnet._utils.checks import is_count
from keras_alexnet._utils.choices import (
    AUGMENTATIONS,
    BAD_FILE_POLICIES,
    CACHE_DTYPES,
    CLASS_WEIGHTS,
    COMPARE_METRICS,
    LR_SCHEDULES,
    MIXED_PRECISION,
    OUTPUT_NETWORKS,
)
from keras_alexnet._utils.files import atomic_write
from keras_alexnet._utils.flags import (
    Facts,
    below_one,
    check_fields,
    fields_where,
    fraction,
    non_negative_number,
    option,
    positive_int,
    seed_number,
)
from keras_alexnet.architecture import ARCHITECTURES
from keras_alexnet.optimizers.solvers import MOMENTUM_SOLVERS, SOLVERS
from keras_alexnet.recipes import RECIPES, Recipe, head_names, recipe_names

AUTO = "auto"  # recipe="auto": keras_alexnet.experiments chooses the recipe before training

DEFAULT_CACHE_MEMORY_LIMIT = 1 << 30  # bytes of cached activations kept in RAM before using disk


def on_off_auto(text):
    """--xla's text as the field's value: True, False or "auto"."""
    values = {"auto": "auto", "on": True, "off": False}
    if text not in values:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of auto, on, off")
    return values[text]


def budget(text):
    """--auto-budget's text: a whole number of epochs, or a time such as "10m" (AutoBudget.parse checks it)."""
    return int(text) if text.strip().isdigit() else text


def absolute_source(weights):
    """``weights`` with a relative file path made absolute in this process: Ray's trials and workers start in
    another working directory. Names (``"imagenet"``), URLs and None are kept."""
    if weights is None or weights == "imagenet" or "://" in str(weights):
        return weights
    return os.path.abspath(weights)


@dataclasses.dataclass(frozen=True)
class AutoBudget:
    """How much ``recipe="auto"`` may spend: ``epochs`` per comparison run (0: the rule) and an optional time limit."""

    epochs: int = 2
    minutes: float | None = None

    @classmethod
    def parse(cls, value):
        """``2`` or ``"2"``: 2 epochs per run; ``"10m"``: runs of 2 epochs until 10 minutes have passed; ``0``: the rule."""
        if isinstance(value, AutoBudget):
            return value
        text = str(value).strip().lower()
        if re.fullmatch(r"\d+", text):
            return cls(epochs=int(text))
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(m|min|minutes?)", text)
        if match and float(match.group(1)) > 0:
            return cls(epochs=2, minutes=float(match.group(1)))
        raise ValueError(
            f"auto budget {value!r}: give epochs per comparison run (e.g. 2; 0 uses the rule of thumb) or "
            "minutes (e.g. 10m)."
        )


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _class_weight_ok(value):
    if isinstance(value, dict):
        return all(_number(weight) and weight >= 0 for weight in value.values())
    return value in CLASS_WEIGHTS


# The single-field rules (Facts.check) that a flag's choices do not already say.
COUNT = (lambda value: value is None or is_count(value), "use a whole number of at least 1.")
RECIPE_CHECK = (
    lambda value: value is None or isinstance(value, Recipe) or value in (*RECIPES, AUTO),
    lambda: f"use one of {', '.join((*RECIPES, AUTO))} (a name), or a keras_alexnet.Recipe.",
)
RATE_CHECK = (
    lambda value: not isinstance(value, (int, float)) or (_number(value) and value > 0),
    "use a positive, finite number (or a keras LearningRateSchedule).",
)
CLASS_WEIGHT_CHECK = (
    _class_weight_ok,
    f"use {', '.join(map(repr, CLASS_WEIGHTS))} or a dict from class (name or index) to a non-negative, finite weight.",
)
ALPHA_CHECK = (lambda value: _number(value) and value >= 0, "use Beta's alpha, a positive number such as 0.4 (0: off).")


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """How to train: recipe, epochs, batches, rates, validation, schedule, precision, caching.

    Fields mirror MATLAB's ``trainingOptions`` where one exists (``MaxEpochs`` ->
    ``epochs``, ``MiniBatchSize`` -> ``batch_size``, ``InitialLearnRate`` ->
    ``learning_rate``, ``ValidationFrequency`` (iterations), ``ValidationPatience``
    -> ``patience``, ``LearnRateSchedule``/``LearnRateDropFactor``/``LearnRateDropPeriod``,
    ``CheckpointFrequency`` -> ``backup_every``).
    """

    # None: the rule of thumb's pick for the data (training.rule), said when the run starts; a name from
    # keras_alexnet.recipes.RECIPES, a Recipe, or "auto" (compare first: keras_alexnet.experiments)
    recipe: object = option(
        None,
        "a recipe (keras-alexnet layers --recipe NAME shows it); auto: compare the recipes on this data first "
        "(see --auto-budget), then train the winner (default: the rule of thumb picks by the data, as measured: "
        "fine-tune, or frozen-features for a few dozen images or one epoch; the run says which and why)",
        choices=lambda: (*recipe_names(), AUTO),
        commands=("lr-find",),
        per_run=True,
        check=RECIPE_CHECK,
    )
    epochs: int = option(
        3,
        "epochs in all (a two-stage recipe's frozen epochs included)",
        parse=positive_int,
        resumable=True,
        commands=("compare",),
        check=COUNT,
    )
    batch_size: int = option(32, "images per step", parse=positive_int, commands=("lr-find", "compare"), check=COUNT)
    # None: the recipe's; a float or a keras LearningRateSchedule
    learning_rate: object = option(
        None, "base learning rate (default: the recipe's)", name="--lr", parse=float, per_run=True, check=RATE_CHECK
    )
    optimizer: str | None = option(None, "the solver (default: the recipe's)", choices=SOLVERS, commands=("lr-find",))
    val_split: float | None = option(
        None,
        "hold out this stratified fraction of --data for validation (e.g. 0.3)",
        parse=float,
        commands=("lr-find", "compare"),
        check=(
            lambda value: value is None or 0 < value < 1,
            "hold out a fraction strictly between 0 and 1 (e.g. 0.3).",
        ),
    )
    validation_frequency: int | None = option(
        None, "validate every N iterations (default: every epoch)", parse=positive_int, metavar="N", check=COUNT
    )
    patience: int | None = option(
        None,
        "stop after N epochs without a better value of --output-network's metric (validation loss by default)",
        parse=positive_int,
        metavar="N",
        check=COUNT,
    )
    augment: str = option(
        "none", "random augmentation of the training images", choices=AUGMENTATIONS, commands=("compare",)
    )
    lr_schedule: str = option(
        "none",
        "piecewise: --drop-factor every --drop-period epochs; one-cycle: PyTorch's OneCycleLR peaking at --lr; "
        "cosine: linear warm-up, then cosine decay",
        choices=LR_SCHEDULES,
    )
    drop_factor: float = option(
        0.1,
        "piecewise: multiply the rate by this",
        parse=float,
        check=(lambda value: _number(value) and 0 < value <= 1, "use a number in (0, 1], e.g. 0.1."),
    )
    drop_period: int = option(10, "piecewise: every this many epochs", parse=positive_int, check=COUNT)
    mixed_precision: str | None = option(
        None, "compute in this precision, keep float32 weights", choices=[p for p in MIXED_PRECISION if p]
    )
    xla: object = option(  # True, False or "auto"
        "auto",
        "XLA for the training step (auto: off on CPU, where it is slower; on a GPU when the convolutions are frozen)",
        parse=on_off_auto,
        metavar="{auto,on,off}",
        check=(lambda value: value in (True, False, "auto"), "use True, False or 'auto'."),
    )
    seed: int = option(
        0,
        "seeds the split, the initial weights, the batch order and dropout",
        parse=seed_number,
        commands=("lr-find", "compare"),
        per_run=True,
    )
    deterministic: bool = option(False, "TensorFlow op determinism (GPUs; seeded CPU runs repeat anyway)", value=True)
    weights: str | None = option(
        "imagenet",
        "'imagenet' (shipped conv weights), a weights file, or 'none'",
        parse=lambda text: absolute_source(None if text == "none" else text),
        commands=("lr-find", "compare"),
    )
    architecture: str = option(  # "tiny": the same graph with few channels, for quick pipeline checks
        "alexnet",
        "tiny: the same graph with few channels, for quick pipeline checks (use --weights none)",
        choices=tuple(ARCHITECTURES),
        commands=("lr-find", "compare"),
    )
    head: str = option(  # "compact": fastai's small head instead of fc6-fc8
        "alexnet",
        "alexnet: fc6, fc7 and a new fc8 (58M parameters); compact: fastai's head on pool5 (0.3M)",
        choices=lambda: head_names(),
        commands=("lr-find",),
        per_run=True,
    )
    cache_activations: bool = option(
        False,
        "compute frozen layers once, train the rest on cached activations",
        value=True,
        aliases=("--cache-features",),
        per_run=True,
    )
    cache_dtype: str = option("float32", "the cached activations' dtype", choices=CACHE_DTYPES)
    cache_memory_limit: int = dataclasses.field(
        default=DEFAULT_CACHE_MEMORY_LIMIT, metadata={"facts": Facts(resumable=True)}
    )
    on_bad_file: str = option(
        "skip",
        "stop at the first unreadable image instead of skipping it (and naming it)",
        name="--fail-on-bad-file",
        value="raise",
        resumable=True,
        check=(lambda value: value in BAD_FILE_POLICIES, "use 'skip' or 'raise'."),
    )
    backup_every: int = option(
        1, "back up for --resume after every N-th epoch", parse=positive_int, metavar="N", resumable=True, check=COUNT
    )
    # keep the optimizer's state in model.keras (3x the size with Adam)
    save_optimizer: bool = option(
        False,
        "keep the optimizer's state in model.keras (to continue training it later; 3x the size with Adam)",
        value=True,
        resumable=True,
    )
    # write model.keras (a comparison's runs keep only their numbers)
    save_models: bool = dataclasses.field(default=True, metadata={"facts": Facts(per_run=True)})
    # One-cycle also cycles momentum / beta_1 0.95-0.85-0.95, as PyTorch and fastai. None: the
    # recipe's choice (a transfer.Recipe's cycle_momentum; off in the built-in ones).
    cycle_momentum: bool | None = option(
        None,
        "with --lr-schedule one-cycle or --recipe fine-tune: cycle momentum / Adam's beta_1 0.95-0.85-0.95 against "
        "the rate, as PyTorch's OneCycleLR and fastai do (default: off)",
        boolean=True,
        check=(lambda value: value in (None, True, False), "use True, False or None (the recipe's)."),
    )
    freeze_epochs: int = option(
        1,
        "two-stage recipes (fine-tune): epochs with the convolutions frozen before all layers train (counted in "
        "--epochs)",
        parse=positive_int,
        check=COUNT,
    )
    report: bool = option(
        True, "do not write report.html at the end", name="--no-report", value=False, resumable=True, per_run=True
    )
    tensorboard: bool = option(
        True, "do not write TensorBoard logs", name="--no-tensorboard", value=False, resumable=True
    )
    tensorboard_images: bool = option(
        False, "add Grad-CAM overlays of 4 validation images per epoch", value=True, resumable=True
    )
    # recipe="auto": epochs per comparison run (0: rule of thumb) or "10m" (experiments/auto.py)
    auto_budget: object = option(
        2,
        "--recipe auto: epochs per comparison run (3 seeds x every recipe and head), 'Nm' to stop starting runs "
        "after N minutes, or 0 for the guides' rule of thumb (no comparison)",
        parse=budget,
        metavar="EPOCHS|Nm",
        resumable=True,
    )
    # "none", "auto" (n / (classes * count) per class, scikit-learn's "balanced") or {class: weight}
    class_weight: object = option(
        "none",
        "auto: weigh each image n / (classes x its class's count), as scikit-learn's 'balanced', so rare classes "
        "count as much as common ones",
        choices=CLASS_WEIGHTS,
        commands=("lr-find",),
        check=CLASS_WEIGHT_CHECK,
    )
    balanced_sampling: bool = option(
        False,
        "draw every batch evenly over the classes (rare classes repeated within an epoch); instead of "
        "--class-weight, and better than it measured with a rare class of a few dozen images",
        value=True,
    )
    output_network: str = option(  # the epoch model.keras keeps; patience watches its metric
        OUTPUT_NETWORKS[0], "the epoch model.keras keeps, as MATLAB's OutputNetwork", choices=OUTPUT_NETWORKS
    )
    calibrate: bool = option(  # fit a temperature on the validation images at the end (layers.Temperature)
        True,
        "keep the probabilities as trained (default: fit a temperature on the validation images at the end, "
        "held near 1 when they are few: benchmarks/CONFIDENCE.md)",
        name="--no-calibrate",
        value=False,
        resumable=True,
    )
    # Regularizers (training/regularizers.py): 0 leaves each off.
    label_smoothing: float = option(
        0.0,
        "label smoothing: this share of the target spread over the classes (e.g. 0.1)",
        parse=below_one,
        metavar="EPS",
        commands=("compare",),
        check=(lambda value: _number(value) and 0 <= value < 1, "use a number in [0, 1), e.g. 0.1 (0: off)."),
    )
    mixup: float = option(
        0.0,
        "mixup: blend image pairs by Beta(alpha, alpha) (e.g. 0.4, fastai's); with --cutmix too, each batch "
        "takes one of the two at even odds",
        parse=non_negative_number,
        metavar="ALPHA",
        commands=("compare",),
        check=ALPHA_CHECK,
    )
    cutmix: float = option(
        0.0,
        "CutMix: paste a box of another image, Beta(alpha, alpha) (e.g. 1.0); with --mixup too, each batch takes "
        "one of the two at even odds",
        parse=non_negative_number,
        metavar="ALPHA",
        commands=("compare",),
        check=ALPHA_CHECK,
    )
    ema: float = option(
        0.0,
        "keep a moving average of the weights with this decay (e.g. 0.99): validated, kept and exported",
        parse=below_one,
        metavar="DECAY",
        commands=("compare",),
        check=(
            lambda value: _number(value) and 0 <= value < 1,
            "use the average's decay in (0, 1), e.g. 0.99 (0: off).",
        ),
    )
    measure_tta: bool = option(
        True,
        "skip measuring test-time augmentation on the validation images at the end",
        name="--no-measure-tta",
        value=False,
        per_run=True,
    )

    def __post_init__(self):
        check_fields(self)  # each field's own rule (its Facts.check or its flag's choices)
        # The rules between fields, each written once:
        if self.architecture != "alexnet" and self.weights == "imagenet":
            raise ValueError(
                f"weights='imagenet' fit only architecture='alexnet', not {self.architecture!r}: "
                "use weights=None (or a weights file made for it)."
            )
        if self.recipe == AUTO:
            AutoBudget.parse(self.auto_budget)  # raises, naming the forms it reads
        if self.two_stage:
            self._check_two_stage()
        if self.cycle_momentum:
            self._check_cycle_momentum()
        if self.balanced_sampling and self.class_weight != "none":
            raise ValueError(
                "balanced_sampling already evens the classes out: with class_weight too the rare classes would count "
                "twice. Use one of them (--balanced-sampling or --class-weight)."
            )
        if self.report and not self.save_models:
            raise ValueError("report=True reads model.keras: use save_models=True, or report=False.")
        if self.cache_activations and not self.activations_cacheable:
            self._refuse_cache()

    @property
    def activations_cacheable(self):
        """Whether the frozen layers see each image the same every epoch (no augmentation, no mixup or CutMix),
        the condition for ``cache_activations``."""
        return self.augment == "none" and not (self.mixup or self.cutmix)

    def _refuse_cache(self):
        if self.mixup or self.cutmix:
            raise ValueError(
                "cache_activations runs the frozen layers once per image, but mixup and CutMix blend the images "
                "before those layers, differently every epoch: leave --cache-activations off with --mixup/--cutmix "
                "(--label-smoothing and --ema work on cached activations)."
            )
        raise ValueError(
            "cache_activations needs augment='none': random augmentation changes the frozen layers' input every epoch."
        )

    def _check_two_stage(self):
        if self.epochs <= self.freeze_epochs:
            raise ValueError(
                f"recipe {self.recipe_name!r} trains {self.freeze_epochs} frozen epoch(s) (freeze_epochs), then "
                f"unfreezes: epochs={self.epochs} leaves no unfrozen epoch. Use epochs > freeze_epochs "
                f"(e.g. {self.freeze_epochs + 2})."
            )
        if self.learning_rate is not None and not isinstance(self.learning_rate, (int, float)):
            raise ValueError(
                f"recipe {self.recipe_name!r} makes its own one-cycle schedules from a peak rate: give "
                "learning_rate as a number."
            )
        if self.lr_schedule not in ("none", "one-cycle"):
            raise ValueError(
                f"recipe {self.recipe_name!r} runs one-cycle schedules in both stages: "
                f"lr_schedule={self.lr_schedule!r} does not apply (leave it 'none' or 'one-cycle')."
            )

    def _check_cycle_momentum(self):
        if not self._one_cycle:
            raise ValueError(
                "cycle_momentum cycles momentum against a one-cycle rate: use lr_schedule='one-cycle' "
                "(--lr-schedule one-cycle) or the fine-tune recipe (one-cycle in both stages), or leave "
                "cycle_momentum off (no --cycle-momentum)."
            )
        if self.solver not in MOMENTUM_SOLVERS:
            raise ValueError(
                f"cycle_momentum needs a solver with momentum ({', '.join(MOMENTUM_SOLVERS)}), not "
                f"{self.solver!r}: give optimizer='adam' or 'sgdm' (--optimizer adam), or leave cycle_momentum "
                "off (no --cycle-momentum)."
            )

    @property
    def momentum_cycles(self):
        """Whether the one-cycle schedules cycle momentum: ``cycle_momentum``, or where None the recipe's choice."""
        if self.cycle_momentum is not None:
            return self.cycle_momentum
        if self.recipe in (AUTO, None):
            return False
        return self.recipe_object.cycle_momentum and self._one_cycle and self.solver in MOMENTUM_SOLVERS

    @property
    def solver(self):
        """The optimizer's name: ``optimizer``, or the recipe's."""
        if self.optimizer or self.recipe in (AUTO, None):
            return self.optimizer
        return self.recipe_object.optimizer

    @property
    def _one_cycle(self):
        # Two-stage recipes run one-cycle schedules in both stages.
        return self.two_stage or self.lr_schedule == "one-cycle"

    @property
    def two_stage(self):
        """Whether the recipe trains in two stages (fine-tune: the head first, then everything)."""
        return self.recipe not in (AUTO, None) and self.recipe_object.two_stage

    @property
    def recipe_object(self):
        """The ``Recipe`` the options name (``recipe="auto"`` has none until it is resolved)."""
        if self.recipe == AUTO:
            raise ValueError("recipe='auto' names no recipe until keras_alexnet.experiments resolves it.")
        if self.recipe is None:
            raise ValueError("recipe=None names no recipe until the rule of thumb reads the data (training.rule).")
        return RECIPES[self.recipe] if isinstance(self.recipe, str) else self.recipe

    @property
    def recipe_name(self):
        if self.recipe is None:
            return "the rule of thumb's"
        return self.recipe if isinstance(self.recipe, str) else self.recipe.name

    def replace(self, **changes):
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, options=None, **changes):
        """``options`` (default: the defaults) with ``changes``, as ``train(data, options, **changes)`` takes them.

        Accepts the names fields had before they were renamed (``cache_features``).
        """
        if "cache_features" in changes:  # the name before the activation cache was named so
            changes["cache_activations"] = changes.pop("cache_features")
        return (options or cls()).replace(**changes)

    def to_dict(self):
        """The options as JSON-ready values (a recipe object by its fields, a schedule by its config)."""
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "recipe" and value is not None and not isinstance(value, str):
                value = value.to_dict()
            elif field.name == "learning_rate" and value is not None and not isinstance(value, (int, float)):
                value = {"class": type(value).__name__, "config": value.get_config()}
            values[field.name] = value
        return values

    def changed_from_defaults(self):
        """The names of the fields whose value is not the default's (as JSON sees them)."""
        mine = json.loads(json.dumps(self.to_dict(), default=str))
        defaults = json.loads(json.dumps(TrainingOptions().to_dict(), default=str))
        return sorted(name for name in mine if mine[name] != defaults[name])

    def save(self, path):
        """Write the options as JSON (atomically)."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def load(cls, path):
        """Options from an ``options.json`` written by ``save`` (named recipes and float rates)."""
        values = json.loads(Path(path).read_text())
        values.pop("result", None)  # what the run made (RunDirectory.record_result), not an option
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path} has unknown training options {unknown}; it was written by another version.")
        if isinstance(values.get("recipe"), dict):
            values["recipe"] = Recipe.from_dict(values["recipe"])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """``lr-find``'s sweep (fastai's ``lr_find``): rates from ``start_lr`` to ``end_lr``, exponentially, in
    at most ``steps`` steps."""

    start_lr: float = option(1e-7, "the first rate of the sweep", parse=float)
    end_lr: float = option(10.0, "the last rate of the sweep (it stops earlier when the loss diverges)", parse=float)
    steps: int = option(100, "at most this many steps", parse=positive_int)


SWEEP = SweepOptions()  # the defaults, for signatures


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """``demo``'s settings: MATLAB's guide on generated shapes (``keras_alexnet.demo``)."""

    out: str = option("demo_output", "the demo's folder (a second demo replaces the first)")
    per_class: int = option(60, "shapes generated per class", parse=positive_int)
    epochs: int = option(8, "epochs of the MATLAB recipe", parse=positive_int)
    seed: int = option(0, "seeds the shapes, the split and the training", parse=seed_number)


DEMO = DemoOptions()


@dataclasses.dataclass(frozen=True)
class CompareOptions:
    """``compare``'s own settings (the runs' training options are ``TrainingOptions``')."""

    seeds: int = option(3, "runs per candidate, seeds 0..N-1", parse=positive_int)
    out: str = option("comparison", "comparison folder; run again to continue a killed one")
    metric: str = option(
        "accuracy",
        "rank the candidates by this validation score (balanced-accuracy or macro-f1 for imbalanced classes)",
        choices=tuple(COMPARE_METRICS),
    )


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """``predict``'s settings."""

    top: int = option(5, "the classes shown per image", parse=positive_int)
    min_confidence: float = option(
        0.0,
        "answer 'unknown' when the top probability is under P (0: always the top class; the run report's "
        "accuracy/coverage curve helps pick P)",
        parse=fraction,
        metavar="P",
    )


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """``report``'s settings."""

    top_losses: int = option(9, "images in the top-losses gallery", parse=positive_int)


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """``export``'s settings."""

    max_accuracy_drop: float = option(
        0.02, "--quantize: refuse (write nothing) when the accuracy falls by more than this", parse=fraction
    )


COMPARE = CompareOptions()
PREDICT = PredictOptions()
REPORT = ReportOptions()
EXPORT = ExportOptions()

COMPARE_VAL_SPLIT = 0.3  # compare without --val or --val-split holds out this fraction of --data
# compare --regularizers: each name's settings, the values fastai's and timm's recipes start from.
REGULARIZERS = {
    "none": {},
    "label-smoothing": {"label_smoothing": 0.1},
    "mixup": {"mixup": 0.4},
    "cutmix": {"cutmix": 1.0},
    "ema": {"ema": 0.99},
}
REGULARIZER_NAMES = tuple(REGULARIZERS)

# The TrainingOptions fields each command's flags set (train: all of them), from their Facts.
LR_FIND_FIELDS = fields_where(TrainingOptions, lambda facts: "lr-find" in facts.commands)
COMPARE_FIELDS = fields_where(TrainingOptions, lambda facts: "compare" in facts.commands)
