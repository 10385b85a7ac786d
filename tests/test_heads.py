"""The compact head (fastai's) and discriminative factors (fastai's slice(lr/100, lr))."""

import keras
import numpy as np
import pytest

from keras_alexnet import TINY, AlexNet, apply_recipe, replace_head, unfreeze, with_lr_factors
from keras_alexnet.transfer import discriminative_factors, layer_table


def test_the_compact_head_is_fastais_and_small():
    features = AlexNet(weights=None, include_top=False, input_shape=(96, 96, 3))
    model = replace_head(features, 5, head="compact")
    names = [layer.name for layer in model.layers]
    after = names[names.index("pool5") + 1 :]
    assert after == [
        "head_avg_pool",
        "head_max_pool",
        "head_concat_pool",
        "head_bn1",
        "head_drop1",
        "head_fc",
        "head_bn2",
        "head_drop2",
        "fc8",
    ]
    assert model.get_layer("head_fc").kernel.shape == (512, 512)  # avg + max of 256 channels
    head_params = sum(model.get_layer(name).count_params() for name in after)
    assert head_params < 300_000 and model.output.shape[-1] == 5
    assert model.get_layer("head_drop1").rate == 0.25 and model.get_layer("head_drop2").rate == 0.5


def test_unfreezing_keeps_batch_norm_statistics_out_of_training():
    model = apply_recipe(
        AlexNet(weights=None, include_top=False, input_shape=(96, 96, 3), architecture=TINY),
        "frozen-features",
        3,
        head="compact",
    )
    unfreeze(model)
    trainable = {v.path for v in model.trainable_variables}
    assert "head_bn1/gamma" in trainable and "head_bn1/moving_mean" not in trainable
    assert "head_bn2/moving_variance" not in trainable


@pytest.mark.slow
def test_compact_head_trains_on_cached_activations_like_uncached(tmp_path):
    from keras_alexnet.datasets import generate_shapes
    from keras_alexnet.training import split_frozen_prefix, train

    shapes = generate_shapes(tmp_path / "shapes", per_class=8, size=72, seed=0)
    runs = {}
    for cached in (False, True):
        result = train(
            shapes,
            recipe="frozen-features",
            head="compact",
            architecture="tiny",
            weights=None,
            epochs=2,
            batch_size=8,
            val_split=0.3,
            seed=3,
            cache_activations=cached,
            run_dir=tmp_path / str(cached),
            verbose=0,
        )
        assert result.cached_activations == cached
        runs[cached] = result.history
    np.testing.assert_allclose(runs[True]["loss"], runs[False]["loss"], rtol=1e-3, atol=1e-4)
    model = apply_recipe(
        AlexNet(weights=None, include_top=False, architecture=TINY), "frozen-features", 2, head="compact"
    )
    prefix, rest = split_frozen_prefix(model)
    assert prefix.output is model.get_layer("pool5").output  # cut before the head's two branches


def test_discriminative_factors_are_a_geometric_spread():
    model = apply_recipe(AlexNet(weights=None, include_top=False, input_shape=(96, 96, 3)), "fine-tune-all", 3)
    factors = discriminative_factors(model, ratio=100)
    convs = [factors[f"conv{i}"] for i in range(1, 6)]
    assert convs[0] == pytest.approx(0.01) and factors["fc6"] == factors["fc8"] == 1.0
    ratios = np.array(convs[1:] + [factors["fc6"]]) / np.array(convs)
    np.testing.assert_allclose(ratios, 100 ** (1 / 5))
    optimizer = with_lr_factors(keras.optimizers.Adam(1e-3), factors, model)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    rows = {row.name: row for row in layer_table(model)}
    assert rows["conv1"].weight_lr_factor == pytest.approx(0.01) and rows["fc7"].weight_lr_factor == 1.0
    with pytest.raises(ValueError, match="ratio=0.5"):
        discriminative_factors(model, ratio=0.5)
