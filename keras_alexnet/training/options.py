"""Training options as one validated object, the way MATLAB has ``trainingOptions``.

``train()``, the CLI and the run directory share ``TrainingOptions``: the CLI builds
it from flags, ``train`` runs it, and the run directory records it in
``options.json`` so a run says how it was made. Every field is checked when the
object is made, and an error names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

from keras_alexnet._utils.checks import is_count
from keras_alexnet._utils.choices import (
    ARCHITECTURES,
    AUGMENTATIONS,
    BAD_FILE_POLICIES,
    CACHE_DTYPES,
    CLASS_WEIGHTS,
    LR_SCHEDULES,
    MIXED_PRECISION,
    MOMENTUM_SOLVERS,
    OUTPUT_NETWORKS,
    SOLVERS,
)
from keras_alexnet._utils.files import atomic_write
from keras_alexnet.recipes import HEADS, RECIPES, Recipe

AUTO = "auto"  # recipe="auto": keras_alexnet.experiments chooses the recipe before training

DEFAULT_CACHE_MEMORY_LIMIT = 1 << 30  # bytes of cached activations kept in RAM before using disk


def _allowed(values):
    return ", ".join(repr(v) for v in values)


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


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """How to train: recipe, epochs, batches, rates, validation, schedule, precision, caching.

    Fields mirror MATLAB's ``trainingOptions`` where one exists (``MaxEpochs`` ->
    ``epochs``, ``MiniBatchSize`` -> ``batch_size``, ``InitialLearnRate`` ->
    ``learning_rate``, ``ValidationFrequency`` (iterations), ``ValidationPatience``
    -> ``patience``, ``LearnRateSchedule``/``LearnRateDropFactor``/``LearnRateDropPeriod``,
    ``CheckpointFrequency`` -> ``backup_every``).
    """

    recipe: object = "frozen-features"  # a name from keras_alexnet.recipes.RECIPES, a Recipe, or "auto"
    epochs: int = 3
    batch_size: int = 32
    learning_rate: object = None  # None: the recipe's; a float or a keras LearningRateSchedule
    optimizer: str | None = None  # None: the recipe's; else one of optimizers.SOLVERS
    val_split: float | None = None
    validation_frequency: int | None = None
    patience: int | None = None
    augment: str = "none"
    lr_schedule: str = "none"
    drop_factor: float = 0.1
    drop_period: int = 10
    mixed_precision: str | None = None
    xla: object = "auto"  # True, False or "auto"
    seed: int = 0
    deterministic: bool = False
    weights: str | None = "imagenet"
    architecture: str = "alexnet"  # "tiny": the same graph with few channels, for quick pipeline checks
    head: str = "alexnet"  # "compact": fastai's small head instead of fc6-fc8
    cache_activations: bool = False
    cache_dtype: str = "float32"
    cache_memory_limit: int = DEFAULT_CACHE_MEMORY_LIMIT
    on_bad_file: str = "skip"
    backup_every: int = 1
    save_optimizer: bool = False  # keep the optimizer's state in model.keras (3x the size with Adam)
    save_models: bool = True  # write model.keras (a comparison's runs keep only their numbers)
    # One-cycle also cycles momentum / beta_1 0.95-0.85-0.95, as PyTorch and fastai. None: the
    # recipe's choice (a transfer.Recipe's cycle_momentum; off in the built-in ones).
    cycle_momentum: bool | None = None
    freeze_epochs: int = 1  # two-stage recipes (fine-tune): epochs of the frozen stage, counted in ``epochs``
    report: bool = True  # write report.html (explain/report.py) when the run ends
    tensorboard: bool = True  # TensorBoard logs in run_dir/tensorboard
    tensorboard_images: bool = False  # and Grad-CAM overlays of a few validation images after each epoch
    # recipe="auto": epochs per comparison run (0: rule of thumb) or "10m" (experiments/auto.py)
    auto_budget: object = 2
    # "none", "auto" (n / (classes * count) per class, scikit-learn's "balanced") or {class: weight}
    class_weight: object = "none"
    balanced_sampling: bool = False  # draw each batch evenly over the classes (seeded, resumable)
    output_network: str = OUTPUT_NETWORKS[0]  # the epoch model.keras keeps; patience watches its metric
    calibrate: bool = True  # fit a temperature on the validation images at the end (layers.Temperature)

    def __post_init__(self):
        for name in (
            "epochs",
            "batch_size",
            "backup_every",
            "drop_period",
            "validation_frequency",
            "patience",
            "freeze_epochs",
        ):
            value = getattr(self, name)
            if value is not None and not is_count(value):
                raise ValueError(f"{name}={value!r}: use a whole number of at least 1.")
        if isinstance(self.recipe, str):
            if self.recipe not in (*RECIPES, AUTO):
                raise ValueError(f"recipe={self.recipe!r} is not known: use one of {', '.join((*RECIPES, AUTO))}.")
        elif not isinstance(self.recipe, Recipe):
            raise ValueError(f"recipe={self.recipe!r}: use a name ({', '.join(RECIPES)}) or a keras_alexnet.Recipe.")
        rate = self.learning_rate
        if isinstance(rate, (int, float)) and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"learning_rate={rate}: use a positive, finite number (or a keras LearningRateSchedule).")
        if self.optimizer is not None and self.optimizer not in SOLVERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not known: use one of {_allowed(SOLVERS)}.")
        if self.val_split is not None and not 0 < self.val_split < 1:
            raise ValueError(f"val_split={self.val_split}: hold out a fraction strictly between 0 and 1 (e.g. 0.3).")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment={self.augment!r}: use one of {', '.join(AUGMENTATIONS)}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r}: use one of {_allowed(LR_SCHEDULES)}.")
        if not (isinstance(self.drop_factor, (int, float)) and 0 < self.drop_factor <= 1):
            raise ValueError(f"drop_factor={self.drop_factor!r}: use a number in (0, 1], e.g. 0.1.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision={self.mixed_precision!r}: use None, 'float16' or 'bfloat16'.")
        if self.xla not in (True, False, "auto"):
            raise ValueError(f"xla={self.xla!r}: use True, False or 'auto'.")
        if self.cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"cache_dtype={self.cache_dtype!r}: use one of {_allowed(CACHE_DTYPES)}.")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={self.architecture!r}: use one of {_allowed(ARCHITECTURES)}.")
        if self.architecture != "alexnet" and self.weights == "imagenet":
            raise ValueError(
                f"weights='imagenet' fit only architecture='alexnet', not {self.architecture!r}: "
                "use weights=None (or a weights file made for it)."
            )
        if self.head not in HEADS:
            raise ValueError(f"head={self.head!r}: use one of {_allowed(HEADS)}.")
        if self.on_bad_file not in BAD_FILE_POLICIES:
            raise ValueError(f"on_bad_file={self.on_bad_file!r}: use 'skip' or 'raise'.")
        if self.recipe == AUTO:
            AutoBudget.parse(self.auto_budget)  # raises, naming the forms it reads
        if self.two_stage:
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
        if self.cycle_momentum not in (None, True, False):
            raise ValueError(f"cycle_momentum={self.cycle_momentum!r}: use True, False or None (the recipe's).")
        if self.cycle_momentum:
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
        if self.output_network not in OUTPUT_NETWORKS:
            raise ValueError(f"output_network={self.output_network!r}: use one of {_allowed(OUTPUT_NETWORKS)}.")
        if isinstance(self.class_weight, dict):
            for name, weight in self.class_weight.items():
                if not (isinstance(weight, (int, float)) and weight >= 0 and math.isfinite(weight)):
                    raise ValueError(f"class_weight[{name!r}]={weight!r}: use a non-negative, finite number per class.")
        elif self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(
                f"class_weight={self.class_weight!r}: use {_allowed(CLASS_WEIGHTS)} or a dict from class "
                "(name or index) to weight."
            )
        if self.balanced_sampling and self.class_weight != "none":
            raise ValueError(
                "balanced_sampling already evens the classes out: with class_weight too the rare classes would count "
                "twice. Use one of them (--balanced-sampling or --class-weight)."
            )
        if self.report and not self.save_models:
            raise ValueError("report=True reads model.keras: use save_models=True, or report=False.")
        if self.cache_activations and self.augment != "none":
            raise ValueError(
                "cache_activations needs augment='none': random augmentation changes the frozen "
                "layers' input every epoch."
            )

    @property
    def momentum_cycles(self):
        """Whether the one-cycle schedules cycle momentum: ``cycle_momentum``, or where None the recipe's choice."""
        if self.cycle_momentum is not None:
            return self.cycle_momentum
        if self.recipe == AUTO:
            return False
        return self.recipe_object.cycle_momentum and self._one_cycle and self.solver in MOMENTUM_SOLVERS

    @property
    def solver(self):
        """The optimizer's name: ``optimizer``, or the recipe's."""
        if self.optimizer or self.recipe == AUTO:
            return self.optimizer
        return self.recipe_object.optimizer

    @property
    def _one_cycle(self):
        # Two-stage recipes run one-cycle schedules in both stages.
        return self.two_stage or self.lr_schedule == "one-cycle"

    @property
    def two_stage(self):
        """Whether the recipe trains in two stages (fine-tune: the head first, then everything)."""
        return self.recipe != AUTO and self.recipe_object.two_stage

    @property
    def recipe_object(self):
        """The ``Recipe`` the options name (``recipe="auto"`` has none until it is resolved)."""
        if self.recipe == AUTO:
            raise ValueError("recipe='auto' names no recipe until keras_alexnet.experiments resolves it.")
        return RECIPES[self.recipe] if isinstance(self.recipe, str) else self.recipe

    @property
    def recipe_name(self):
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
            if field.name == "recipe" and not isinstance(value, str):
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
