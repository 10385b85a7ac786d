"""The run report (HTML, checked in headless Chromium), TensorBoard logs, and the explain/report commands."""

import html
import json
import shutil

import numpy as np
import pytest
from conftest import TINY as TINY_NETWORK
from conftest import make_shapes

from keras_alexnet import train
from keras_alexnet.cli import main
from keras_alexnet.datasets import generate_shapes
from keras_alexnet.report import ReportError, report_run, write_report
from keras_alexnet.training import train as train_only

TINY = {**TINY_NETWORK, "val_split": 0.3, "verbose": 0, "epochs": 2, "report": True, "measure_tta": True}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    shapes = generate_shapes(root / "shapes", per_class=10, size=72, seed=4)
    result = train(
        shapes, run_dir=root / "run", recipe="fine-tune", cycle_momentum=True, tensorboard_images=True, **TINY
    )
    return result, shapes


def test_the_report_is_written_above_training_by_keras_alexnet_train(shapes_dir, tmp_path, capsys):
    """``training.train`` only trains (the report reads finished runs from above it); ``keras_alexnet.train``
    and ``report_run`` write ``report.html`` when the options ask, and say where."""
    result = train_only(shapes_dir, run_dir=tmp_path / "run", recipe="frozen-features", **{**TINY, "epochs": 1})
    assert result.options.report and not (result.run_dir / "report.html").exists()
    assert report_run(result.run_dir, result.options) == result.run_dir / "report.html"
    assert f"report: {result.run_dir / 'report.html'}" in capsys.readouterr().out
    assert report_run(result.run_dir, result.options.replace(report=False)) is None


@pytest.mark.slow
def test_a_run_without_validation_images_chosen_by_auto_reports_what_it_can(shapes_dir, tmp_path):
    """No validation set: the page says how to get the scores and leaves out what needs labels; a recipe
    chosen by auto (the rule, budget 0) is shown with its reason."""
    run = tmp_path / "run"
    train(shapes_dir, run_dir=run, recipe="auto", auto_budget=0, **{**TINY, "val_split": None, "epochs": 1})
    page = (run / "report.html").read_text()
    assert "No labelled images (the run had no validation set): give --data DIR" in page
    assert "Per class" not in page and "Top losses" not in page and "Accuracy <b>" not in page
    choice = json.loads((run / "auto.json").read_text())
    chosen = page[page.index("<h2>Recipe chosen by auto</h2>") :]
    assert chosen.index("Recipe chosen by auto") < chosen.index("Layers and learning-rate factors")
    said = f"<b>{choice['recipe']}</b> with the {choice['head']} head: {html.escape(choice['reason'])}"
    assert said in chosen


def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip(
            "no headless browser: install Debian's chromium and chromium-driver (apt-get install chromium "
            "chromium-driver; .ci/run does) to test the HTML report in a real browser"
        )
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)


@pytest.mark.slow
def test_train_writes_a_report_that_opens_in_a_browser_with_every_image(trained_run, tmp_path):
    result, _ = trained_run
    page = result.run_dir / "report.html"
    text = page.read_text()
    for heading in (
        "Per class",
        "Confidence: calibration and the unknown threshold",
        "Most confused",
        "Top losses",
        "Feature map",
        "Layers and learning-rate factors",
        "conv1 filters",
        "Options (",
    ):
        assert heading in text, heading
    assert "http://" not in text and "https://" not in text and "<script" not in text  # self-contained
    driver = _chromium()
    try:
        driver.get(page.resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
        )
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        # The first screen (900 pixels): the run's name, the scores, calibration, the epoch kept, the
        # curves' top; the options are collapsed at the end.
        first_screen = driver.execute_script(
            "const top = s => document.querySelector(s).getBoundingClientRect().top;"
            "return [top('h1'), top('.headline'), top('p.calibration'), top('p.epoch'), top('img'),"
            " top('details'), document.querySelector('details').open, document.querySelector('h1').textContent]"
        )
        screenshot = tmp_path / "report.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    assert errors == []
    *tops, details_top, details_open, title = first_screen
    assert all(0 <= y < 900 for y in tops), first_screen
    assert details_top > 900 and details_open is False and title == "run"
    assert [alt for alt, *_ in images] == [
        "training progress: accuracy, loss and learning rate",
        "confusion matrix",
        "reliability diagram",
        "accuracy and coverage against the confidence threshold",
        "top losses with Grad-CAM",
        "feature map",
        "conv1 filters",
    ]
    assert all(complete and width > 0 and height > 0 for _, complete, width, height in images), images
    assert screenshot.stat().st_size > 20_000


@pytest.mark.slow
def test_the_layer_table_shows_the_last_stages_factors(trained_run):
    result, _ = trained_run
    text = (result.run_dir / "report.html").read_text()
    row = text[text.index("<td>conv1</td>") : text.index("</tr>", text.index("<td>conv1</td>"))]
    assert '<td class="n">0.01</td>' in row  # fine-tune's stage 2: conv1 at 1/100 of the head
    # The report reads what the run recorded (the optimizer it trained with), not a rebuilt one.
    recorded = json.loads((result.run_dir / "options.json").read_text())["result"]["layers"]
    conv1 = next(layer for layer in recorded if layer["name"] == "conv1")
    assert conv1["trainable"] and abs(conv1["weight_lr_factor"] - 0.01) < 1e-12


@pytest.mark.slow
def test_tensorboard_logs_hold_the_scalars_the_rate_per_step_and_grad_cam_images(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, _ = trained_run
    logs = result.run_dir / "tensorboard"

    def tags(folder, kind="tensors"):
        accumulator = EventAccumulator(str(logs / folder), size_guidance={"tensors": 0, "images": 0})
        accumulator.Reload()
        return accumulator, accumulator.Tags()[kind]

    train_events, train_tags = tags("train")
    assert {"epoch_loss", "epoch_accuracy"} <= set(train_tags)
    assert len(train_events.Tensors("epoch_loss")) == 2  # one per epoch, across both stages
    _, val_tags = tags("validation")
    assert {"epoch_loss", "epoch_accuracy", "epoch_balanced_accuracy", "epoch_macro_f1"} <= set(val_tags)
    steps, step_tags = tags("steps")
    import tensorflow as tf

    def values(tag):
        return [float(tf.make_ndarray(event.tensor_proto)) for event in steps.Tensors(tag)]

    history = json.loads((result.run_dir / "history.json").read_text())
    np.testing.assert_allclose(values("learning_rate"), history["learning_rate"], rtol=1e-6)
    momenta = values("momentum")  # cycle_momentum: beta_1 in each stage 0.95 -> 0.85 -> 0.95
    assert len(momenta) == len(history["learning_rate"]) and momenta[0] == pytest.approx(0.95)
    assert min(momenta) < 0.9
    images, image_tags = tags("images")
    assert "grad_cam" in image_tags and len(images.Tensors("grad_cam")) == 2


@pytest.mark.slow
def test_report_command_and_its_errors(trained_run, tmp_path, capsys):
    result, shapes = trained_run
    out = tmp_path / "elsewhere.html"
    write_report(result.run_dir, data=shapes, path=out)
    assert f"images ({shapes})" in out.read_text()  # scored on the folder given
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="model.keras is missing"):
        write_report(tmp_path / "empty")
    assert main(["report", "--run-dir", str(tmp_path / "empty")]) == 2
    assert "model.keras is missing" in capsys.readouterr().err


def test_explain_command_writes_pictures_and_names_bad_input(trained_run, tmp_path, capsys):
    result, shapes = trained_run
    images = sorted(shapes.rglob("*.png"))[:2]
    (tmp_path / "broken.jpg").write_text("not an image")
    out = tmp_path / "out"
    for method in ("gradcam", "occlusion", "activations"):
        argv = ["explain", "--model", str(result.model_path), *map(str, images), str(tmp_path / "broken.jpg")]
        assert main([*argv, "--method", method, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "broken.jpg" in printed.err and "skipped" in printed.out
    assert len(list(out.glob("*.gradcam.png"))) == 2 and len(list(out.glob("*.occlusion.png"))) == 2
    assert main(["explain", "--model", str(result.model_path), str(images[0]), "--layer", "fc6"]) == 2
    assert "not a convolution" in capsys.readouterr().err
    assert main(["explain", "--model", str(tmp_path / "nope.keras"), str(images[0])]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_leads_with_the_answer(tmp_path):
    shapes_dir = make_shapes(tmp_path / "shapes", per_class=10, size=64, seed=0)
    import shutil

    from keras_alexnet.report import write_report

    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    for path in sorted((data / "star").iterdir())[:6]:  # 4 stars beside 10 of each other shape
        path.unlink()
    result = train_only(
        data,
        val_split=0.3,
        epochs=2,
        batch_size=8,
        run_dir=tmp_path / "my-shapes",
        verbose=0,
        class_weight={"star": 2.0},
        tensorboard=False,
        **{key: value for key, value in TINY_NETWORK.items() if key != "batch_size"},
    )
    page = write_report(result.run_dir).read_text()
    assert "<h1>my-shapes</h1>" in page and "Training run" not in page
    first = page.index("Accuracy <b>")
    assert (
        first
        < page.index("Calibration (temperature")
        < page.index("model.keras is epoch")
        < page.index("Per class")
        < page.index("<details><summary>Options")
    )
    assert "reliability diagram" in page and "accuracy and coverage" in page
    assert "Imbalanced training set: circle has 7 images, star 3 (2.3:1)" in page  # a 70% split of 10 and 4
    assert "the run weighed the classes, which acts only until the head fits every training image" in page
    options = page[page.index("<details>") :]
    assert "class_weight</td><td>{&quot;star&quot;: 2.0}</td><td>changed" in options
    assert "seed</td><td>0</td><td>default" in options
