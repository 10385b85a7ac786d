"""TrainingOptions: one validated object shared by train(), the CLI and the run directory."""

import json

import pytest

from keras_alexnet.cli import build_parser, training_options
from keras_alexnet.training import TrainingOptions


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epochs": 0}, "epochs=0: use a whole number of at least 1"),
        ({"recipe": "fastest"}, "recipe='fastest': use one of frozen-features"),
        ({"optimizer": "lbfgs"}, "optimizer='lbfgs': use one of 'sgdm'"),
        ({"learning_rate": float("inf")}, "learning_rate=inf: use a positive, finite number"),
        ({"learning_rate": float("nan")}, "learning_rate=nan"),
        ({"val_split": 1.5}, "val_split=1.5: hold out a fraction strictly between 0 and 1"),
        ({"augment": "spin"}, "augment='spin': use one of 'none', 'flip', 'resized-crop'"),
        ({"class_weight": {"cats": -1.0}}, r"class_weight=\{'cats': -1.0\}: use 'none', 'auto' or a dict"),
        ({"mixup": float("nan")}, "mixup=nan: use Beta's alpha"),
        ({"lr_schedule": "cosine-ish"}, "lr_schedule='cosine-ish': use one of 'none', 'piecewise', 'one-cycle'"),
        ({"drop_factor": 2.0}, r"drop_factor=2.0: use a number in \(0, 1\]"),
        ({"mixed_precision": "int8"}, "mixed_precision='int8'"),
        ({"xla": "maybe"}, "xla='maybe'"),
        ({"cache_dtype": "int8"}, "cache_dtype='int8'"),
        ({"on_bad_file": "ignore"}, "on_bad_file='ignore'"),
        ({"cache_activations": True, "augment": "flip"}, "augment='none'"),
        ({"architecture": "vgg", "weights": None}, "architecture='vgg': use one of 'alexnet', 'tiny'"),
        ({"architecture": "tiny"}, "weights='imagenet' fit only architecture='alexnet'"),
        ({"save_models": False}, "report=True reads model.keras: use save_models=True, or report=False"),
    ],
)
def test_errors_name_the_field_and_the_allowed_values(change, message):
    with pytest.raises(ValueError, match=message):
        TrainingOptions(**change)


def test_every_field_with_choices_refuses_a_value_outside_them():
    """Issue 36, item 3: a field's choices (its flag's) are its check, generated, not written again in
    __post_init__; a None default allows None."""
    import dataclasses

    from keras_alexnet._utils.flags import facts_of, flag_of

    checked = []
    for field in dataclasses.fields(TrainingOptions):
        flag = flag_of(field)
        if flag is None or flag.choices is None or facts_of(field).check is not None:
            continue
        with pytest.raises(ValueError, match=f"^{field.name}='no such value': use one of "):
            TrainingOptions(**{field.name: "no such value"})
        checked.append(field.name)
    assert {"optimizer", "augment", "lr_schedule", "architecture", "head", "output_network"} <= set(checked)
    assert TrainingOptions(optimizer=None, mixed_precision=None).optimizer is None


def test_options_round_trip_through_json(tmp_path):
    options = TrainingOptions(recipe="matlab", epochs=12, batch_size=10, learning_rate=3e-4, validation_frequency=3)
    options.save(tmp_path / "options.json")
    assert TrainingOptions.load(tmp_path / "options.json") == options
    assert json.loads((tmp_path / "options.json").read_text())["recipe"] == "matlab"


def test_cli_flags_build_the_same_options():
    args = build_parser().parse_args(
        [
            "train",
            "--data",
            "d",
            "--recipe",
            "matlab",
            "--optimizer",
            "sgdm",
            "--batch-size",
            "10",
            "--epochs",
            "12",
            "--lr",
            "1e-4",
            "--validation-frequency",
            "3",
            "--xla",
            "off",
            "--cache-features",
            "--fail-on-bad-file",
        ]
    )
    assert training_options(args) == TrainingOptions(
        recipe="matlab",
        optimizer="sgdm",
        batch_size=10,
        epochs=12,
        learning_rate=1e-4,
        validation_frequency=3,
        xla=False,
        cache_activations=True,
        on_bad_file="raise",
    )
