"""Seeing what the network sees: Grad-CAM (against pytorch-grad-cam), occlusion, activations, filters."""

import keras
import numpy as np
import pytest
from conftest import photo_paths, solid_image

from keras_alexnet import AlexNet
from keras_alexnet.architecture import TINY
from keras_alexnet.cli import main
from keras_alexnet.explain import (
    GradCamExplainer,
    LayerNameError,
    activation_grid,
    activations,
    filter_grid,
    grad_cam,
    occlusion_sensitivity,
    output_names,
)
from keras_alexnet.preprocessing import eval_transform
from keras_alexnet.transfer import apply_recipe


@pytest.mark.slow
def test_grad_cam_equals_pytorch_grad_cam_on_the_same_weights(seeded_conversion, torch_modules):
    torch, _ = torch_modules
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch_model, _, keras_model = seeded_conversion
    for module in torch_model.modules():  # pytorch-grad-cam's hooks need out-of-place ReLUs
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    x = np.stack([eval_transform(path) for path in photo_paths(per_class=2)])
    for layer, torch_layer in (("conv5", torch_model.features[11]), ("conv3", torch_model.features[7])):
        ours = grad_cam(keras_model, x, layer=layer)
        with torch.no_grad():
            predicted = torch_model(torch.from_numpy(x.transpose(0, 3, 1, 2))).argmax(1).tolist()
        np.testing.assert_array_equal(ours.classes, predicted)
        with GradCAM(model=torch_model, target_layers=[torch_layer]) as reference_cam:
            reference = reference_cam(
                input_tensor=torch.from_numpy(x.transpose(0, 3, 1, 2)),
                targets=[ClassifierOutputTarget(c) for c in predicted],
            )
        assert ours.maps.shape == reference.shape == (4, 224, 224)
        # Same weights and input: the maps agree to float32 round-off and OpenCV's bilinear resize.
        np.testing.assert_allclose(ours.maps, reference, atol=2e-3, err_msg=layer)
        assert np.isfinite(ours.maps).all() and ours.maps.max() == pytest.approx(1.0, abs=1e-3)
    named = grad_cam(keras_model, x, target=3)
    assert (named.classes == 3).all()


def _stripe_model():
    """A toy classifier whose class 1 score is the mean of the image's top-left quarter."""
    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="conv", activation="relu")(inputs)
    pooled = keras.layers.Flatten()(keras.layers.AveragePooling2D(4)(conv))  # 8 x 8 regions
    out = keras.layers.Dense(2, name="scores", activation="softmax")(pooled)
    model = keras.Model(inputs, out)
    model.get_layer("conv").set_weights([np.ones((1, 1, 3, 1), np.float32) / 3])
    kernel = np.zeros((64, 2), np.float32)
    region = np.zeros((8, 8), bool)
    region[:4, :4] = True
    kernel[region.ravel(), 1] = 1.0
    kernel[~region.ravel(), 0] = 0.01
    model.get_layer("scores").set_weights([kernel, np.zeros(2, np.float32)])
    return model


def _colour_model():
    """Class 0 is "red present", class 1 "blue present": a 1x1 colour detector, global pooling, scores."""
    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(2, 1, name="detect", activation="relu")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    out = keras.layers.Dense(2, name="scores", activation="softmax")(pooled)
    model = keras.Model(inputs, out)
    detector = np.zeros((1, 1, 3, 2), np.float32)
    detector[0, 0, 0, 0] = detector[0, 0, 2, 1] = 1.0  # channel 0 sees red, channel 1 blue
    model.get_layer("detect").set_weights([detector, np.zeros(2, np.float32)])
    model.get_layer("scores").set_weights([np.eye(2, dtype=np.float32) * 5, np.zeros(2, np.float32)])
    return model


def test_grad_cam_of_a_toy_model_points_at_its_discriminative_region():
    model = _colour_model()
    image = np.zeros((1, 32, 32, 3), np.float32)
    image[0, 2:12, 2:12, 0] = 1.0  # a red square top left
    image[0, 20:30, 18:30, 2] = 1.0  # a blue square bottom right
    red, blue = grad_cam(model, image, layer="detect", target=0), grad_cam(model, image, layer="detect", target=1)
    assert red.maps[0][3:11, 3:11].min() > 0.9 and red.maps[0][21:29, 19:29].max() < 0.1
    assert blue.maps[0][21:29, 19:29].min() > 0.9 and blue.maps[0][3:11, 3:11].max() < 0.1


def test_occlusion_map_shape_and_monotonicity():
    model = _stripe_model()
    image = np.ones((32, 32, 3), np.float32)
    result = occlusion_sensitivity(model, image, target=1, patch=8, stride=4, mask_value=0.0)
    assert result.map.shape == (32, 32) and result.target == 1
    inside, outside = result.map[:16, :16], result.map[20:, 20:]
    assert inside.min() > 0 and abs(outside).max() < 1e-3
    # The more of the region a pixel's patches cover, the larger the drop: the corner region's
    # centre (covered by patches wholly inside) beats its edge (patches half outside).
    assert result.map[6, 6] > result.map[14, 14] > result.map[18, 18]
    with pytest.raises(ValueError, match="larger than the image"):
        occlusion_sensitivity(model, image, patch=40)


def test_activation_and_filter_grids():
    model = AlexNet(weights="imagenet", include_top=False)
    grid = filter_grid(model)
    assert grid.shape == (8 * 12 - 1, 8 * 12 - 1, 3)  # 64 filters of 11 x 11: 8 x 8 with 1-pixel gaps
    assert 0 <= grid.min() and grid.max() <= 1
    x = eval_transform(photo_paths(per_class=1)[0])[None]
    maps = activations(model, x, "conv2")
    assert maps.shape == (1, 27, 27, 192)
    tiles = activation_grid(maps[0])
    assert tiles.shape == (12 * 28 - 1, 16 * 28 - 1)  # 192 channels: 12 x 16
    with pytest.raises(ValueError, match="spatial maps"):
        activation_grid(np.zeros((1, 10)))


def test_bad_layer_names_list_the_valid_ones():
    model = apply_recipe(AlexNet(weights=None, include_top=False, architecture=TINY), "frozen-features", 2)
    with pytest.raises(LayerNameError, match=r"'conv9' is not in the model.*conv1.*conv5"):
        GradCamExplainer(model, "conv9")
    with pytest.raises(LayerNameError, match=r"'pool5' is a MaxPooling2D, not a convolution"):
        GradCamExplainer(model, "pool5")
    with pytest.raises(ValueError, match="class 'zebra' is not one of"):
        grad_cam(model, np.zeros((1, 224, 224, 3), np.float32), target="zebra")


def test_explain_gives_images_that_share_a_name_distinct_pictures(model_file, tmp_path, capsys):
    first, second = solid_image(tmp_path / "cats" / "001.png"), solid_image(tmp_path / "dogs" / "001.png", value=200)
    assert output_names([first, second], "gradcam") == ["cats_001.gradcam.png", "dogs_001.gradcam.png"]
    assert output_names([tmp_path / "a.png", tmp_path / "b.png"], "occlusion") == ["a.occlusion.png", "b.occlusion.png"]
    out = tmp_path / "out"
    assert (
        main(["explain", "--model", str(model_file), str(tmp_path / "cats"), str(tmp_path / "dogs"), "--out", str(out)])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["cats_001.gradcam.png", "dogs_001.gradcam.png"]
    assert "2 picture(s)" in capsys.readouterr().out


def test_an_image_with_a_name_too_long_for_an_output_name_gets_a_short_distinct_one(model_file, tmp_path):
    long_a, long_b = "a" * 240 + "1.png", "a" * 240 + "2.png"
    names = output_names([tmp_path / long_a, tmp_path / long_b], "occlusion")
    assert len(set(names)) == 2 and all(len(name.encode()) <= 255 for name in names)
    solid_image(tmp_path / "images" / long_a)
    out = tmp_path / "out"
    assert main(["explain", "--model", str(model_file), str(tmp_path / "images"), "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == [output_names([tmp_path / long_a], "gradcam")[0]]
