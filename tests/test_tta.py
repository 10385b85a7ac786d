"""Test-time augmentation: the blend, the run's measurement, and what predict/evaluate/report say (tta.py)."""

import json

import numpy as np
import pytest
from conftest import TINY, make_shapes

from keras_alexnet.cli import main
from keras_alexnet.deployment import KerasClassifier, TestTimeAugmented
from keras_alexnet.evaluation import evaluate
from keras_alexnet.preprocessing import eval_crop, tta_crops
from keras_alexnet.tta import BETA, Measurement, blend, view_probabilities, warning


def test_the_blend_weighs_the_plain_view_by_beta_and_the_others_by_their_mean(rng):
    views = rng.dirichlet(np.ones(3), size=(4, 6))
    expected = BETA * views[:, 0] + (1 - BETA) * views[:, 1:].mean(axis=1)
    np.testing.assert_allclose(blend(views), expected, atol=1e-12)
    np.testing.assert_allclose(blend(views).sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(blend(views[:, :1]), views[:, 0])  # one view: the plain prediction


@pytest.fixture(scope="module")
def trained(shapes_dir, tmp_path_factory):
    from keras_alexnet.training import train

    run_dir = tmp_path_factory.mktemp("tta") / "run"
    result = train(shapes_dir, run_dir=run_dir, val_split=0.25, epochs=2, verbose=0, **{**TINY, "measure_tta": True})
    return result, run_dir


@pytest.mark.slow
def test_a_run_records_what_test_time_augmentation_did_on_its_validation_images(trained):
    from keras_alexnet.datasets import ImageFolder

    result, run_dir = trained
    recorded = json.loads((run_dir / "options.json").read_text())["result"]["tta"]
    measured = Measurement.from_dict(recorded)
    assert measured == result.tta
    val = ImageFolder.from_dict(json.loads((run_dir / "validation.json").read_text()))
    model = KerasClassifier(str(run_dir / "model.keras"))
    assert measured.images == len(val)
    assert abs(measured.accuracy - evaluate(model, val).accuracy) < 1e-9
    assert abs(measured.tta_accuracy - evaluate(model, val, tta=True).accuracy) < 1e-9
    assert abs(recorded["gain"] - (measured.tta_accuracy - measured.accuracy)) < 1e-9
    # evaluate --tta and TestTimeAugmented blend the same per-view probabilities
    views, _ = view_probabilities(model, val.paths[:3])
    augmented = TestTimeAugmented(model)
    direct = augmented.probabilities(np.stack([augmented.transform(p) for p in val.paths[:3]]))
    np.testing.assert_allclose(direct, blend(views), atol=1e-6)


@pytest.mark.slow
def test_predict_and_evaluate_with_tta_say_when_the_run_measured_a_loss(trained, shapes_dir, tmp_path, capsys):
    _, run_dir = trained
    options = run_dir / "options.json"
    record = json.loads(options.read_text())
    model = str(run_dir / "model.keras")
    image = str(next(p for p in sorted(shapes_dir.rglob("*.png"))))
    # The record is data: a loss written into it is what a real run's loss would say.
    record["result"]["tta"] = Measurement(40, 0.9, 0.85).to_dict()
    options.write_text(json.dumps(record))
    assert "lowered validation accuracy 0.9000 -> 0.8500" in warning(model)
    assert main(["predict", "--model", model, image, "--tta"]) == 0
    assert "lowered validation accuracy 0.9000 -> 0.8500" in capsys.readouterr().err
    assert main(["evaluate", "--model", model, "--data", str(shapes_dir), "--tta"]) == 0
    assert "the plain answers (without --tta) were the better ones" in capsys.readouterr().err
    record["result"]["tta"] = Measurement(40, 0.85, 0.9).to_dict()
    options.write_text(json.dumps(record))
    assert warning(model) is None
    assert main(["predict", "--model", model, image, "--tta"]) == 0
    assert "lowered" not in capsys.readouterr().err
    from keras_alexnet.report import write_report

    page = write_report(run_dir).read_text()
    assert "test-time augmentation raised validation accuracy 0.8500 -&gt; 0.9000" in page


def test_a_damaged_record_is_no_measurement(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"not read")
    (tmp_path / "options.json").write_text("{damaged")
    assert warning(tmp_path / "model.keras") is None


def test_tta_views_start_with_the_eval_crop_and_mirror_it(tmp_path):
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    views = tta_crops(tmp_path / "x.png")
    assert views.shape == (6, 224, 224, 3) and views.dtype == np.uint8
    np.testing.assert_array_equal(views[0], eval_crop(tmp_path / "x.png"))
    np.testing.assert_array_equal(views[1], views[0][:, ::-1])
    assert len({view.tobytes() for view in views}) == 6  # six different views


def test_evaluate_and_predict_with_tta_from_the_command_line(tmp_path, capsys):
    shapes_dir = make_shapes(tmp_path / "shapes", per_class=10, size=64, seed=0)
    run = tmp_path / "run"
    flags = ["--architecture", "tiny", "--weights", "none", "--no-report", "--no-tensorboard", "--quiet"]
    assert (
        main(["train", "--data", str(shapes_dir), "--val-split", "0.3", "--epochs", "1", "--run-dir", str(run), *flags])
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "eval"
    assert (
        main(["evaluate", "--model", str(run / "model.keras"), "--data", str(shapes_dir), "--tta", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "test-time augmentation (6 views, blended): accuracy" in printed and "ms per image" in printed
    assert "calibration (temperature" in printed and "ECE" in printed
    assert "a perfectly calibrated model would show ECE" in printed  # its sampling floor beside it
    assert (out / "reliability.png").stat().st_size > 10_000
    assert main(["predict", "--model", str(run / "model.keras"), "--tta", "--top", "1", str(shapes_dir / "star")]) == 0
    assert capsys.readouterr().out.count("star") >= 10
