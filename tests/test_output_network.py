"""The epoch model.keras keeps and early stopping on its metric (training/output_network.py)."""

from conftest import TINY as TINY_NETWORK
from conftest import split_folders

SHAPES = {"per_class": 4, "size": 64, "seed": 2}  # conftest.shapes_dir
TINY_RUN = {**TINY_NETWORK, "tensorboard": False}


def test_train_until_early_stopping_with_a_huge_epoch_count(shapes_dir, tmp_path):
    from keras_alexnet.training import train

    train_dir, val_dir = split_folders(shapes_dir, tmp_path)
    result = train(
        train_dir,
        val=val_dir,
        run_dir=tmp_path / "run",
        epochs=1_000_000_000,
        patience=1,
        output_network="best-validation-accuracy",  # 4 validation images: it stops improving at once
        verbose=0,
        **TINY_RUN,
    )
    assert 2 <= len(result.history["loss"]) < 100  # stopped by patience, with no epoch order drawn in advance
