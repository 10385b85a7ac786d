"""``recipe="auto"``: choose the recipe from the data, by a short comparison or by the guides' rule.

With a budget, ``choose_recipe`` runs ``compare`` (every recipe and head, three seeds,
``budget`` epochs each) and takes the best mean accuracy; on a tie (inside the spread)
the cheaper candidate. With a zero budget it applies the rule of thumb the transfer
guides give (PyTorch's, MATLAB's, CS231n's): few images per class, or images unlike
ImageNet's photos, keep the convolutions frozen; many images like ImageNet's fine-tune
everything. Either way the choice and its reason go to ``auto.json`` in the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from keras_alexnet._utils.files import atomic_write
from keras_alexnet.preprocessing import IMAGENET_MEAN, IMAGENET_STD, load_image

# "Many" images per class for the rule: below it, fine-tuning 2.5M convolution weights overfits
# (the guides' "small dataset"; 1000 per class is ImageNet's own size per class).
MANY_IMAGES_PER_CLASS = 1000
# Images whose channel means sit further than this many ImageNet standard deviations from
# ImageNet's means (on average over channels), or which are mostly grey, count as unlike ImageNet.
UNLIKE_IMAGENET_DISTANCE = 1.0
SAMPLE_IMAGES = 64


@dataclasses.dataclass(frozen=True)
class AutoBudget:
    """How much ``auto`` may spend: ``epochs`` per comparison run (0: the rule) and an optional time limit."""

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


@dataclasses.dataclass
class AutoChoice:
    """The recipe ``auto`` chose, and why."""

    recipe: str
    head: str
    reason: str
    rule: str | None = None  # the rule that decided (zero budget)
    comparison: str | None = None  # the comparison directory (with a budget)
    table: str | None = None  # its Markdown summary

    def save(self, path):
        text = json.dumps(dataclasses.asdict(self), indent=2) + "\n"
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def imagenet_likeness(train_set, sample=SAMPLE_IMAGES, seed=0):
    """(distance, grey fraction) of a sample of the images against ImageNet's colour statistics.

    distance: mean over RGB of |channel mean - ImageNet mean| / ImageNet std; grey
    fraction: the share of images whose three channels are (nearly) equal.
    """
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(train_set.paths), size=min(sample, len(train_set.paths)), replace=False)
    means, grey = [], 0
    for index in chosen:
        pixels = np.asarray(load_image(train_set.paths[index]).resize((64, 64)), np.float32) / 255.0
        means.append(pixels.reshape(-1, 3).mean(axis=0))
        if np.abs(pixels - pixels.mean(axis=2, keepdims=True)).mean() < 0.01:
            grey += 1
    mean = np.mean(means, axis=0)
    distance = float(np.mean(np.abs(mean - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)))
    return distance, grey / len(chosen)


def rule_of_thumb(train_set):
    """The guides' rule: (recipe, head, rule, reason)."""
    counts = train_set.counts()
    fewest = min(counts.values())
    distance, grey = imagenet_likeness(train_set)
    unlike = distance > UNLIKE_IMAGENET_DISTANCE or grey > 0.5
    likeness = f"colour statistics {distance:.2f} ImageNet standard deviations from ImageNet's, {grey:.0%} grey images"
    # train() builds fc6/fc7 fresh (only convolution weights ship): the compact head then
    # matched or beat AlexNet's at a quarter of the time (benchmarks/RECIPES.md).
    head = "compact"
    if fewest < MANY_IMAGES_PER_CLASS or unlike:
        rule = "few images per class" if fewest < MANY_IMAGES_PER_CLASS else "images unlike ImageNet"
        reason = (
            f"rule of thumb ({rule}): the smallest class has {fewest} images (many: {MANY_IMAGES_PER_CLASS}), "
            f"{likeness}; few or unlike images keep the ImageNet convolutions frozen (frozen-features), with the "
            "compact head since fc6/fc7 start untrained"
        )
        return "frozen-features", head, rule, reason
    rule = "many images like ImageNet"
    reason = (
        f"rule of thumb ({rule}): every class has at least {fewest} images, {likeness}; many similar images "
        "fine-tune every layer (fine-tune-all)"
    )
    return "fine-tune-all", head, rule, reason


def choose_recipe(train_set, val_set, options, budget, directory, verbose=1, final_epochs=None):
    """Choose the recipe for ``train(recipe="auto")`` and write ``directory/auto.json``.

    ``budget`` (``AutoBudget`` or what ``AutoBudget.parse`` reads): zero epochs apply the
    rule of thumb; otherwise a comparison of every recipe and head over three seeds,
    ``budget.epochs`` each, in ``directory/auto_comparison``; the winner is the best mean,
    or on a tie the cheaper of those tied. ``final_epochs``: the epochs the chosen recipe will
    train (a two-stage recipe needs more than ``options.freeze_epochs``).
    """
    from keras_alexnet.training.compare import candidates_of, compare

    budget = AutoBudget.parse(budget)
    directory = Path(directory)
    if budget.epochs == 0:
        recipe, head, rule, reason = rule_of_thumb(train_set)
        choice = AutoChoice(recipe, head, reason, rule=rule)
    else:
        candidates = [
            candidate
            for candidate in candidates_of()
            if candidate.recipe != "fine-tune"
            or min(budget.epochs, final_epochs or budget.epochs) > options.freeze_epochs
        ]
        if val_set is None:
            raise ValueError(
                "recipe='auto' with a budget compares recipes on validation data: give --val or --val-split."
            )
        comparison = compare(
            train_set,
            options.replace(recipe="frozen-features", epochs=budget.epochs, val_split=None),
            val=val_set,
            candidates=candidates,
            seeds=3,
            out=directory / "auto_comparison",
            time_limit=None if budget.minutes is None else budget.minutes * 60,
            verbose=verbose,
        )
        winner = comparison.winner()
        how = (
            "the best mean"
            if winner is comparison.best
            else f"tied with the best ({comparison.best.candidate.name}) and cheaper"
        )
        reason = (
            f"comparison of {len(comparison.summary)} candidates over {winner.seeds} seeds, {budget.epochs} epochs each: "
            f"{winner.candidate.name} has {how}: validation accuracy {winner.mean_accuracy:.3f} +- "
            f"{winner.std_accuracy:.3f}, {winner.seconds:.0f} s per run"
        )
        choice = AutoChoice(
            winner.candidate.recipe,
            winner.candidate.head,
            reason,
            comparison=str(directory / "auto_comparison"),
            table=comparison.markdown(),
        )
    choice.save(directory / "auto.json")
    if verbose:
        print(f"recipe auto: {choice.recipe} with the {choice.head} head ({choice.reason})")
    return choice
