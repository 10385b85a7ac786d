"""The recipe a run takes when none is named: a rule of thumb over the data, measured.

``rule_of_thumb`` is what ``train`` runs with no recipe (``TrainingOptions.recipe=None``, the
default) and what ``--recipe auto --auto-budget 0`` picks. Measured over seeds 0-2
(benchmarks/AUTO_RULE.md, benchmarks/QUALITY.md):

- few images per class, or images unlike ImageNet's: fastai's two-stage ``fine-tune`` was the best
  recipe, or tied with it, on the shipped photos (13 steps per epoch), the 60-per-class shapes
  (6 steps) and the digits (10 steps);
- but when its head-only first stage has fewer than ``MIN_HEAD_STEPS`` steps (the 40-per-class
  shapes: 4), the new head is still untrained when the convolutions start to move, and the frozen
  convolutions (``frozen-features``) were far better (0.924 against 0.833); so are ``epochs`` too
  few for a second stage;
- many images per class like ImageNet's fine-tune every layer (the guides' rule; no data set of
  that size can be made offline here to measure it on).
"""

from __future__ import annotations

import logging
import math

from keras_alexnet.datasets.statistics import SAMPLE_IMAGES, colour_statistics, imagenet_distance

log = logging.getLogger("keras_alexnet.training")

# "Many" images per class for the rule: below it, fine-tuning 2.5M convolution weights overfits
# (the guides' "small dataset"; 1000 per class is ImageNet's own size per class).
MANY_IMAGES_PER_CLASS = 1000
# Images whose channel means sit further than this many ImageNet standard deviations from
# ImageNet's means (on average over channels), or which are mostly grey, count as unlike ImageNet.
UNLIKE_IMAGENET_DISTANCE = 1.0
# Fewer steps than this in fine-tune's head-only stage leave the new head untrained when the
# convolutions start to move (between the 4 and 6 steps measured; see the module's docstring).
MIN_HEAD_STEPS = 5


def imagenet_likeness(train_set, sample=SAMPLE_IMAGES, seed=0):
    """(distance, grey fraction) of a sample of the images against ImageNet's colour statistics.

    distance: mean over RGB of |channel mean - ImageNet mean| / ImageNet std; grey
    fraction: the share of images whose three channels are (nearly) equal.
    """
    statistics = colour_statistics(train_set.paths, sample, seed)
    return imagenet_distance(statistics), statistics["grey_fraction"]


def rule_of_thumb(train_set, epochs=None, freeze_epochs=1, batch_size=32):
    """(recipe, head, rule, reason) for ``train_set``: see the module's docstring."""
    counts = train_set.counts()
    fewest = min(counts.values())
    distance, grey = imagenet_likeness(train_set)
    unlike = distance > UNLIKE_IMAGENET_DISTANCE or grey > 0.5
    if fewest < MANY_IMAGES_PER_CLASS or unlike:
        rule = "few images per class" if fewest < MANY_IMAGES_PER_CLASS else "images unlike ImageNet"
        facts = (
            f"smallest class {fewest} images (many: {MANY_IMAGES_PER_CLASS})"
            if fewest < MANY_IMAGES_PER_CLASS
            else f"colours {distance:.2f} ImageNet standard deviations from ImageNet's, {grey:.0%} grey"
        )
        if epochs is not None and epochs <= freeze_epochs:
            reason = (
                f"rule of thumb, {rule} ({facts}): {epochs} epoch(s) leave fine-tune no second stage, so the "
                "convolutions stay frozen, with the compact head (the fastest)"
            )
            return "frozen-features", "compact", rule, reason
        head_steps = freeze_epochs * math.ceil(len(train_set) / batch_size)
        if head_steps < MIN_HEAD_STEPS:
            reason = (
                f"rule of thumb, {rule} ({facts}): {len(train_set)} training images give fine-tune's head-only "
                f"stage {head_steps} step(s), under {MIN_HEAD_STEPS}, so the convolutions stay frozen "
                "(benchmarks/QUALITY.md)"
            )
            return "frozen-features", "alexnet", rule, reason
        reason = (
            f"rule of thumb, {rule} ({facts}): fastai's fine-tune with AlexNet's head, the best or tied with it "
            "on every data set measured (benchmarks/QUALITY.md, AUTO_RULE.md)"
        )
        return "fine-tune", "alexnet", rule, reason
    rule = "many images like ImageNet"
    reason = (
        f"rule of thumb, {rule} (smallest class {fewest} images; colours {distance:.2f} ImageNet standard "
        "deviations from ImageNet's): every layer fine-tuned (fine-tune-all)"
    )
    return "fine-tune-all", "compact", rule, reason


def with_named_recipe(options, train_set, verbose=0):
    """``options`` as they are when they name a recipe; with ``recipe=None`` (the default), the rule's recipe
    (the head stays the options'), said in one line. Returns (options, the rule's reason or None)."""
    if options.recipe is not None:
        return options, None
    recipe, _, _, reason = rule_of_thumb(train_set, options.epochs, options.freeze_epochs, options.batch_size)
    if verbose:
        print(f"recipe: {recipe} ({reason}; name one with --recipe)")
    log.info("recipe %s: %s", recipe, reason)
    return options.replace(recipe=recipe), reason
