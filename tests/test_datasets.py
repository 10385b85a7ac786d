"""Datasets: folders with bad files, stratified split, formats, Fashion-MNIST IDX, shapes."""

import gzip
import hashlib
import logging
import shutil

import numpy as np
import pytest
from conftest import PHOTOS
from PIL import Image

from keras_alexnet.datasets import SHAPE_CLASSES, DatasetError, ImageFolder, fashion_mnist, generate_shapes, read_idx


def make_folder(root, classes=("a", "b"), per_class=3):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)).save(root / name / f"{i}.jpg")
    return root


def test_corrupt_and_non_image_files_are_reported_and_skipped(tmp_path, caplog):
    root = make_folder(tmp_path / "d")
    (root / "a" / "truncated.jpg").write_bytes((root / "a" / "0.jpg").read_bytes()[:200])
    (root / "b" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="keras_alexnet.datasets"):
        folder = ImageFolder.read(root)
    assert len(folder) == 6 and {p.split("/")[-1] for p, _ in folder.skipped} == {"truncated.jpg", "notes.txt"}
    assert "truncated.jpg" in caplog.text
    batches = list(folder.dataset(batch_size=4))  # a whole epoch, no crash
    assert sum(b[0].shape[0] for b in batches) == 6
    with pytest.raises(DatasetError, match="truncated.jpg"):
        ImageFolder.read(root, on_bad_file="raise")


def test_empty_class_single_class_and_missing_folder(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty has no readable images"):
        ImageFolder.read(root)
    single = make_folder(tmp_path / "s", classes=("only",))
    with pytest.raises(DatasetError, match="at least 2"):
        ImageFolder.read(single)
    with pytest.raises(DatasetError, match="is not a folder"):
        ImageFolder.read(tmp_path / "nowhere")


def test_all_formats_and_modes_become_rgb_batches(tmp_path):
    root = tmp_path / "f"
    (root / "x").mkdir(parents=True)
    (root / "y").mkdir()
    Image.new("L", (30, 40), 128).save(root / "x" / "gray.png")
    Image.new("P", (30, 40), 3).save(root / "x" / "palette.gif")
    Image.new("RGBA", (30, 40), (1, 2, 3, 4)).save(root / "y" / "alpha.png")
    Image.new("RGB", (30, 40), (200, 10, 10)).save(root / "y" / "plain.bmp")
    folder = ImageFolder.read(root)
    assert len(folder) == 4 and not folder.skipped
    images, labels = next(iter(folder.dataset(batch_size=4)))
    assert images.shape == (4, 224, 224, 3) and sorted(labels.numpy().tolist()) == [0, 0, 1, 1]


def test_stratified_seeded_split_like_split_each_label():
    folder = ImageFolder.read(PHOTOS / "train")
    first, second = folder.split(0.7, seed=3)
    assert first.counts() == {"cats": 140, "dogs": 140} and second.counts() == {"cats": 60, "dogs": 60}
    assert not set(first.paths) & set(second.paths)
    again, _ = folder.split(0.7, seed=3)
    other, _ = folder.split(0.7, seed=4)
    assert again.paths == first.paths and other.paths != first.paths


def test_training_pipeline_reshuffles_every_epoch(tmp_path):
    folder = ImageFolder.read(make_folder(tmp_path / "d", per_class=6))
    ds = folder.dataset(batch_size=12, training=True, seed=0)
    epoch1, epoch2 = (next(iter(ds))[1].numpy().tolist() for _ in range(2))
    assert sorted(epoch1) == sorted(epoch2) and epoch1 != epoch2


def test_augmentations_produce_crops(tmp_path):
    folder = ImageFolder.read(make_folder(tmp_path / "d"))
    for augment in ("flip", "resized-crop"):
        images, _ = next(iter(folder.dataset(batch_size=6, training=True, augment=augment)))
        assert images.shape == (6, 224, 224, 3)
    with pytest.raises(ValueError, match="augment='spin'"):
        folder.dataset(training=True, augment="spin")


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (10, 28, 28)), rng.integers(0, 10, 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    batch, got = next(iter(fashion_mnist("test", folder=tmp_path, batch_size=10)))
    assert batch.shape == (10, 224, 224, 3)
    np.testing.assert_array_equal(got.numpy(), labels)
    channels = batch.numpy()[0] * np.array([0.229, 0.224, 0.225]) + np.array([0.485, 0.456, 0.406])
    np.testing.assert_allclose(channels[..., 0], channels[..., 1], atol=1e-5)  # grey -> equal RGB
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        fashion_mnist("train", folder=tmp_path)
    (tmp_path / "bad-idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DatasetError, match="bad magic"):
        read_idx(tmp_path / "bad-idx")


def _digest(root):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*.png")))).hexdigest()


def test_shapes_generator_is_deterministic(tmp_path):
    a = generate_shapes(tmp_path / "a", per_class=5, size=64, seed=7)
    b = generate_shapes(tmp_path / "b", per_class=5, size=64, seed=7)
    c = generate_shapes(tmp_path / "c", per_class=5, size=64, seed=8)
    assert _digest(a) == _digest(b) != _digest(c)
    folder = ImageFolder.read(a)
    assert folder.class_names == sorted(SHAPE_CLASSES) and set(folder.counts().values()) == {5}
    shutil.rmtree(c)


def test_pipelines_run_without_the_autotuner(tmp_path):
    # tf.data's autotuner can hold the end of each Keras epoch for up to a minute
    # (see keras_alexnet.datasets.without_autotune); every pipeline here turns it off.
    folder = ImageFolder.read(make_folder(tmp_path / "d", per_class=3))
    for ds in (folder.dataset(4), folder.dataset(4, training=True, augment="resized-crop")):
        assert ds.options().autotune.enabled is False
        assert next(iter(ds))[0].shape == (4, 224, 224, 3)


@pytest.mark.parametrize("val_split", [0.99, 0.01])
def test_extreme_splits_keep_every_class_on_both_sides(tmp_path, val_split):
    from keras_alexnet.datasets import ImageFolder

    root = tmp_path / "set"
    for name, count in (("a", 3), ("b", 5)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (20, 20), (i * 20, 0, 0)).save(root / name / f"{i}.png")
    train_part, val_part = ImageFolder.read(root).split(1 - val_split)
    assert min(train_part.counts().values()) >= 1
    assert min(val_part.counts().values()) >= 1 and len(train_part) + len(val_part) == 8


def test_a_class_too_small_to_split_is_named(tmp_path):
    from keras_alexnet.datasets import DatasetError, ImageFolder

    root = tmp_path / "set"
    for name, count in (("big", 4), ("lonely", 1)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (20, 20)).save(root / name / f"{i}.png")
    with pytest.raises(DatasetError, match="'lonely': 1.*fewer than 2 images"):
        ImageFolder.read(root).split(0.7)


def test_evaluate_names_class_folders_the_model_does_not_know(tmp_path):
    import keras

    from keras_alexnet import TINY, AlexNet
    from keras_alexnet.evaluation import evaluate
    from keras_alexnet.layers import attach_class_names

    root = tmp_path / "test"
    for name in ("cat", "dog", "zebra"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (80, 80)).save(root / name / "0.png")
    model = attach_class_names(AlexNet(weights=None, classes=2, architecture=TINY), ["cat", "dog"])
    assert isinstance(model, keras.Model)
    result = evaluate(model, root)
    assert result.ignored_folders == ["zebra"] and int(result.confusion.sum()) == 2
    assert "ignored folders of classes the model does not know: zebra" in result.report()
