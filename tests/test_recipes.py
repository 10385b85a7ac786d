"""Recipes and heads are one table each: an entry added there is seen by every command."""

import json
import os
from pathlib import Path

import pytest

from keras_alexnet import recipes
from keras_alexnet.cli import build_parser, main
from keras_alexnet.datasets import generate_shapes
from keras_alexnet.experiments import candidates_of, compare
from keras_alexnet.experiments.auto import auto_candidates
from keras_alexnet.recipes import Head, Recipe, Stage, register_head, register_recipe
from keras_alexnet.training import TrainingOptions

TESTS = Path(__file__).resolve().parent


def linear_head(model, features, classes, activation, architecture):
    """A throwaway head: global average pooling and the output layer (named fc8, as recipes expect)."""
    import keras

    from keras_alexnet.model import output_layer

    pooled = keras.layers.GlobalAveragePooling2D(name="linear_pool")(features)
    return output_layer(classes, pooled.shape[-1], activation, architecture)(pooled)


THROWAWAY_RECIPE = Recipe(
    "conv5-and-head",
    "A throwaway recipe: conv1..conv4 frozen, conv5 at a tenth of the head's rate.",
    stages=(Stage(frozen=("features[0:10]",), factors={"conv5": 0.1}),),
    optimizer="adam",
    learning_rate=1e-3,
)
THROWAWAY_HEAD = Head("linear", "A throwaway head: average pooling and fc8.", linear_head)


@pytest.fixture
def throwaway():
    register_recipe(THROWAWAY_RECIPE)
    register_head(THROWAWAY_HEAD)
    yield
    recipes.unregister(THROWAWAY_RECIPE.name)
    recipes.unregister(THROWAWAY_HEAD.name)


def _help(command):
    parser = build_parser()
    sub = next(action for action in parser._actions if hasattr(action, "choices") and action.choices)
    return sub.choices[command].format_help()


@pytest.mark.slow
def test_a_registered_recipe_and_head_are_seen_everywhere(throwaway, tmp_path, capsys, monkeypatch):
    # train --help, lr-find, compare and layers offer them
    assert "conv5-and-head" in _help("train") and "linear" in _help("train")
    assert "conv5-and-head" in _help("compare") and "linear" in _help("compare")
    assert "conv5-and-head" in _help("layers") and "linear" in _help("layers")
    # the layer table applies the recipe with the head
    assert main(["layers", "--recipe", "conv5-and-head", "--head", "linear", "--architecture", "tiny"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert "linear_pool" in rows and rows["conv4"][5] == "no" and rows["conv5"][5:7] == ["yes", "0.1"]
    # the options accept them, and derive the recipe's facts
    options = TrainingOptions(recipe="conv5-and-head", head="linear")
    assert not options.two_stage and THROWAWAY_RECIPE.cacheable
    # compare's and auto's candidates include them
    assert any(c.recipe == "conv5-and-head" and c.head == "linear" for c in candidates_of())
    assert any(c.recipe == "conv5-and-head" for c in auto_candidates(2, 3, 1))
    # compare trains it in a process of its own, which gets the entries through its job
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    data = generate_shapes(tmp_path / "shapes", per_class=6, size=64, seed=1)
    comparison = compare(
        data,
        candidates=[candidates_of(["conv5-and-head"], ["linear"])[0]],
        seeds=1,
        epochs=1,
        batch_size=8,
        architecture="tiny",
        weights=None,
        out=tmp_path / "cmp",
        verbose=0,
    )
    assert comparison.best.candidate.name == "conv5-and-head / linear"
    record = json.loads(next((tmp_path / "cmp" / "runs").glob("*/result.json")).read_text())
    assert record["recipe"] == "conv5-and-head" and 0 <= record["val_accuracy"] <= 1


def test_a_two_stage_recipe_needs_more_epochs_than_the_frozen_ones_to_be_an_auto_candidate():
    two_stage = {c.recipe for c in auto_candidates(2, 3, 1)}
    assert "fine-tune" in two_stage
    assert "fine-tune" not in {c.recipe for c in auto_candidates(1, 3, 1)}  # a 1-epoch budget: no second stage


def test_bad_entries_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="one or two Stage"):
        Recipe("three", "x", stages=(Stage(), Stage(), Stage()))
    with pytest.raises(ValueError, match="'freeze_epochs', 'rest'"):
        Recipe("two", "x", stages=(Stage(), Stage()))
    with pytest.raises(ValueError, match="not 'auto'"):
        Recipe("auto", "x")
    with pytest.raises(ValueError, match="exists"):
        register_recipe(Recipe("matlab", "another matlab"))
    with pytest.raises(ValueError, match="built in"):
        recipes.unregister("matlab")
    with pytest.raises(ValueError, match="importable module"):
        _ = Head("local", "x", lambda *args: None).builder_path


def test_a_recipe_round_trips_through_its_dict():
    for recipe in recipes.RECIPES.values():
        assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
