"""One decoder: every format PIL reads trains, evaluates and predicts as it looks, or is skipped by name."""

import numpy as np
import pytest
from PIL import Image

from keras_alexnet.datasets import ImageFolder
from keras_alexnet.preprocessing import decode_rgb

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (48, 60, 3), dtype=np.uint8)


def _write(folder, name, make):
    path = folder / name
    make(path)
    return path


def _with_orientation(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation: 6 = the camera was turned 90 degrees clockwise
    return exif


CASES = {
    # name: (writer, the RGB a viewer shows)
    "tiff_named_jpg.jpg": (lambda p: Image.fromarray(PIXELS).save(p, format="TIFF"), PIXELS),
    "plain.tiff": (lambda p: Image.fromarray(PIXELS).save(p), PIXELS),
    "lossless.webp": (lambda p: Image.fromarray(PIXELS).save(p, lossless=True), PIXELS),
    "one_bit.bmp": (
        lambda p: Image.fromarray(PIXELS[..., 0] > 127).convert("1").save(p),
        np.repeat(((PIXELS[..., 0] > 127) * 255).astype(np.uint8)[..., None], 3, axis=2),
    ),
    "palette.bmp": (
        lambda p: Image.fromarray(PIXELS).quantize(16).save(p),
        np.asarray(Image.fromarray(PIXELS).quantize(16).convert("RGB")),
    ),
    "grey16.png": (
        lambda p: Image.fromarray(PIXELS[..., 0].astype(np.uint16) * 257).save(p),
        np.repeat(PIXELS[..., :1], 3, axis=2),
    ),
    # A phone photo taken upright is stored sideways with an orientation tag: it decodes upright.
    "phone_rotated.png": (
        lambda p: Image.fromarray(PIXELS).save(p, exif=_with_orientation(6)),
        np.rot90(PIXELS, k=-1),
    ),
    "cmyk.tiff": (
        lambda p: Image.fromarray(PIXELS).convert("CMYK").save(p),
        np.asarray(Image.fromarray(PIXELS).convert("CMYK").convert("RGB")),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_format_decodes_to_the_pixels_it_shows(tmp_path, name):
    writer, shown = CASES[name]
    path = _write(tmp_path, name, writer)
    np.testing.assert_array_equal(decode_rgb(path), shown)


def test_a_folder_of_odd_formats_trains_through_the_same_decoder(tmp_path):
    """What passes the folder check is what the pipeline decodes: no crash mid-epoch, same pixels."""
    import tensorflow as tf

    from keras_alexnet.datasets.pipeline import decode

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for name, (writer, _) in CASES.items():
            _write(tmp_path / label, name, writer)
        (tmp_path / label / "broken.png").write_bytes(b"\x89PNG not really")
    folder = ImageFolder.read(tmp_path)
    assert len(folder) == 2 * len(CASES)
    assert [reason for path, reason in folder.skipped if path.endswith("broken.png")] and len(folder.skipped) == 2
    for path in folder.paths:
        image, _ = decode(tf.constant(path), 0)
        np.testing.assert_array_equal(image.numpy(), CASES[path.rsplit("/", 1)[1]][1], err_msg=path)
    batches = list(folder.dataset(batch_size=4, training=True))  # a whole epoch runs
    assert sum(int(y.shape[0]) for _, y in batches) == len(folder)
    assert all(np.all(np.isfinite(x.numpy())) for x, _ in batches)


def test_a_rotated_phone_jpeg_is_upright_in_training_prediction_and_explanation(tmp_path):
    """EXIF orientation (issue 20, item 1): the pixels the pipeline, predict and explain see are the upright ones."""
    import tensorflow as tf

    from keras_alexnet.datasets.pipeline import decode
    from keras_alexnet.preprocessing import eval_transform

    Image.fromarray(PIXELS).save(tmp_path / "plain.jpg", quality=95)
    Image.fromarray(PIXELS).save(tmp_path / "tagged.jpg", quality=95, exif=_with_orientation(8))
    upright = np.rot90(decode_rgb(tmp_path / "plain.jpg"), k=1)  # 8: turned 90 degrees counter-clockwise
    np.testing.assert_array_equal(decode_rgb(tmp_path / "tagged.jpg"), upright)
    image, _ = decode(tf.constant(str(tmp_path / "tagged.jpg")), 0)
    np.testing.assert_array_equal(image.numpy(), upright)
    np.testing.assert_allclose(eval_transform(tmp_path / "tagged.jpg"), eval_transform(Image.fromarray(upright)))
