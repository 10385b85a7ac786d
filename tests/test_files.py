"""The user's image files (datasets/files.py): one decoder for every format PIL reads (trains, evaluates and
predicts as it looks, or is skipped by name), links, odd names, decompression bombs, extreme shapes."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from conftest import TINY_FLAGS, solid_image
from PIL import Image

from keras_alexnet.cli import main
from keras_alexnet.datasets import ImageFolder
from keras_alexnet.preprocessing import decode_rgb

SHAPES = {"per_class": 4, "size": 64, "seed": 2}  # conftest.shapes_dir

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


def test_broken_and_looping_links_are_named_and_macosx_is_not_a_class(shapes_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    (data / "star" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (data / "star" / "loop_a.png").symlink_to(data / "star" / "loop_b.png")
    (data / "star" / "loop_b.png").symlink_to(data / "star" / "loop_a.png")
    solid_image(data / "__MACOSX" / "star" / "._star_0000.png")
    folder = ImageFolder.read(data)
    assert folder.class_names == ["circle", "rectangle", "star", "triangle"]
    reasons = {os.path.basename(path): reason for path, reason in folder.skipped}
    assert "broken symbolic link" in reasons["gone.png"] and "nowhere.png" in reasons["gone.png"]
    assert "loops" in reasons["loop_a.png"] and "loops" in reasons["loop_b.png"]
    assert len(folder) == 16


def test_an_image_over_the_decompression_bomb_limit_is_skipped_by_name_everywhere(
    model_file, shapes_dir, tmp_path, monkeypatch, capsys
):
    images = tmp_path / "images"
    solid_image(images / "small.png", size=(20, 20))
    solid_image(images / "huge.png", size=(300, 400))
    # huge.png is over twice the limit, which PIL refuses; the 256-pixel resize of the others is not.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    assert main(["predict", "--model", str(model_file), str(images)]) == 0
    printed = capsys.readouterr()
    assert "small.png: " in printed.out
    assert "skipped" in printed.err and "huge.png" in printed.err and "decompression-bomb limit" in printed.err
    assert main(["explain", "--model", str(model_file), str(images), "--out", str(tmp_path / "explained")]) == 0
    assert "decompression-bomb" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "explained").iterdir()] == ["small.gradcam.png"]
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    solid_image(data / "star" / "huge.png", size=(300, 400))
    folder = ImageFolder.read(data)
    assert [(os.path.basename(p), "decompression-bomb" in r) for p, r in folder.skipped] == [("huge.png", True)]


def test_a_file_name_that_is_not_utf8_trains_evaluates_and_predicts(shapes_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    odd = os.path.join(os.fsencode(data / "star"), b"caf\xe9.png")
    shutil.copy(next((data / "star").iterdir()), odd)
    (data / "circle" / "broken.png").write_bytes(b"not an image")
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--run-dir", str(run), "--epochs", "1", "--val-split", "0.3", "--quiet"]
    assert main(argv + TINY_FLAGS) == 0, capsys.readouterr().err
    record = json.loads((run / "options.json").read_text())["result"]
    assert record["skipped_count"] == 1 and record["skipped"][0].endswith("broken.png")  # recorded with --val-split
    assert main(["evaluate", "--model", str(run / "model.keras"), "--data", str(data)]) == 0
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(run / "model.keras"), str(data), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "caf\\xe9.png: " in printed.out
    rows = list(csv.DictReader(open(out, newline="", encoding="utf-8")))
    assert len(rows) == 18 and any(row["path"].endswith("caf\\xe9.png") for row in rows)


def test_links_to_a_parent_or_another_class_are_skipped_and_a_file_counts_once(shapes_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    (data / "star" / "up").symlink_to("..")
    (data / "circle" / "stars").symlink_to(data / "star")
    (data / "circle" / "again.png").symlink_to(next((data / "circle").glob("*.png")))
    (data / "circle" / "a_star.png").symlink_to(next((data / "star").glob("*.png")))
    folder = ImageFolder.read(data)
    assert len(folder) == 16 and folder.counts() == {name: 4 for name in folder.class_names}
    reasons = {os.path.basename(path): reason for path, reason in folder.skipped}
    assert "holds" in reasons["up"] and "another class folder" in reasons["stars"]
    assert "reached twice" in reasons["again.png"] and "reached twice" in reasons["a_star.png"]


def test_reading_many_classes_resolves_each_folder_a_bounded_number_of_times(tmp_path, monkeypatch):
    """Each class's walk resolved every other class folder: 300 classes made 90,000 lookups (1,000 classes took
    12 s to read); now in proportion to the classes, and the link checks above still see the other classes."""
    data = tmp_path / "data"
    for index in range(200):
        solid_image(data / f"class_{index:03d}" / "a.png", size=(8, 8))
    resolved = []
    original = os.path.realpath
    monkeypatch.setattr(os.path, "realpath", lambda path, **kw: resolved.append(path) or original(path, **kw))
    folder = ImageFolder.read(data)
    assert len(folder) == 200 and len(folder.class_names) == 200
    assert len(resolved) < 10 * 200, len(resolved)  # 200 x 199 before


def test_an_extreme_aspect_ratio_is_named_and_skipped_before_it_is_resized(model_file, shapes_dir, tmp_path, capsys):
    from keras_alexnet.preprocessing import ImageTooLarge, load_image

    thin = tmp_path / "images" / "thin.png"
    thin.parent.mkdir()
    Image.new("RGB", (1, 100_000)).save(thin)
    assert thin.stat().st_size < 2000
    with pytest.raises(ImageTooLarge, match="1 x 100000 pixels: resized to a shorter side of 256 it would be"):
        load_image(thin)
    solid_image(tmp_path / "images" / "fine.png")
    assert main(["predict", "--model", str(model_file), str(thin.parent)]) == 0
    printed = capsys.readouterr()
    assert "fine.png: " in printed.out and "skipped" in printed.err and "thin.png" in printed.err
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    shutil.copy(thin, data / "star" / "thin.png")
    assert [os.path.basename(p) for p, _ in ImageFolder.read(data).skipped] == ["thin.png"]


def test_nothing_left_if_a_refusal_removes_only_what_the_block_created(tmp_path):
    from keras_alexnet._utils.files import nothing_left_if

    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("the user's")
    target = tmp_path / "kept" / "new" / "deeper"
    with pytest.raises(ValueError), nothing_left_if(ValueError, target, files=[tmp_path / "kept" / "mine.txt"]):
        target.mkdir(parents=True)
        (tmp_path / "kept" / "mine.txt").write_text("changed")
        raise ValueError("refused")
    assert not (tmp_path / "kept" / "new").exists()
    assert (tmp_path / "kept" / "mine.txt").exists()  # it existed before: never removed
    with pytest.raises(OSError), nothing_left_if(ValueError, target):  # another error: left as it is
        target.mkdir(parents=True)
        raise OSError("not a refusal")
    assert target.exists()
