"""Training end to end: CLI train -> evaluate -> predict -> export, resume after SIGKILL,
activation cache equal to uncached training, and accuracy on real photos."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest
from conftest import CLI, PHOTOS
from conftest import TINY as TINY_NETWORK

from keras_alexnet import AlexNet
from keras_alexnet.architecture import TINY as TINY_TABLE
from keras_alexnet.cli import main
from keras_alexnet.training import train

# The pipeline tests train the tiny table: the same graph, names and recipes in milliseconds.
TINY = {k: v for k, v in TINY_NETWORK.items() if k != "batch_size"}  # the report has its own tests
TINY_FLAGS = ["--architecture", "tiny", "--weights", "none", "--no-report"]


SHAPES = {"per_class": 10, "size": 96, "seed": 0}  # conftest.shapes_dir


@pytest.mark.slow
def test_cli_train_evaluate_predict_export_reload(shapes_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(shapes_dir),
                "--val-split",
                "0.3",
                "--recipe",
                "fine-tune-all",
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--run-dir",
                str(run),
                "--validation-frequency",
                "2",
                "--quiet",
                *TINY_FLAGS,
            ]
        )
        == 0
    )
    for name in ("model.keras", "log.csv", "progress.png", "history.json", "options.json"):
        assert (run / name).exists(), name
    assert not (run / "best.keras").exists()  # model.keras is the output network (best validation loss)
    assert not (run / "backup").exists()  # removed after a finished run
    options = json.loads((run / "options.json").read_text())  # the run says how it was made
    assert options["recipe"] == "fine-tune-all" and options["epochs"] == 2 and options["validation_frequency"] == 2
    history = json.loads((run / "history.json").read_text())
    assert history["epochs_done"] == 2 and history["val_iteration"][:2] == [2, 4]  # every 2 iterations

    assert (
        main(
            [
                "evaluate",
                "--model",
                str(run / "model.keras"),
                "--data",
                str(shapes_dir),
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    report = capsys.readouterr().out
    assert (
        "confusion matrix" in report and "precision" in report and (tmp_path / "eval" / "confusion_matrix.png").exists()
    )

    image = next((shapes_dir / "star").iterdir())
    assert main(["predict", "--model", str(run / "model.keras"), "--top", "2", str(image)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(image)) and any(name in line for name in ("star", "circle", "triangle", "rectangle"))

    for fmt, out in (("savedmodel", tmp_path / "sm"), ("tflite", tmp_path / "m.tflite")):
        assert main(["export", "--model", str(run / "model.keras"), "--format", fmt, "--out", str(out)]) == 0
        assert "max |difference| to Keras" in capsys.readouterr().out
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    pixels = np.asarray(keras.utils.load_img(image))[None]
    outputs = loaded.signatures["serving_images"](images=tf.constant(pixels))
    model = keras.models.load_model(run / "model.keras")
    from keras_alexnet.preprocessing import imagenet_eval_layers

    expected = model.predict(imagenet_eval_layers()(pixels), verbose=0)
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-4)
    # serving_default takes the file's bytes, as TF Serving's REST clients send them (a PNG: lossless).
    from_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant([open(image, "rb").read()]))
    np.testing.assert_allclose(from_bytes["probabilities"].numpy(), expected, atol=1e-4)
    assert (
        outputs["class_name"].numpy()[0].decode()
        == sorted(["circle", "rectangle", "star", "triangle"])[int(expected.argmax())]
    )


def test_bad_data_gives_clear_cli_errors(tmp_path, capsys):
    (tmp_path / "one" / "cls").mkdir(parents=True)
    assert main(["train", "--data", str(tmp_path / "one"), "--run-dir", str(tmp_path / "r")]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r")]) == 2
    assert (
        main(["train", "--data", str(tmp_path / "missing"), "--val-split", "1.5", "--run-dir", str(tmp_path / "r")])
        == 2
    )
    assert "val_split=1.5: hold out a fraction strictly between 0 and 1" in capsys.readouterr().err


@pytest.mark.parametrize("option", [{"epochs": 0}, {"batch_size": 0}, {"backup_every": 2.5}, {"patience": 0}])
def test_train_refuses_counts_below_one_before_reading_data(tmp_path, option):
    ((name, value),) = option.items()
    with pytest.raises(ValueError, match=f"{name}={value!r}: use a whole number of at least 1"):
        train(tmp_path / "missing", run_dir=tmp_path / "run", **option)


def test_a_model_file_that_is_not_a_keras_archive_is_named(tmp_path, capsys):
    junk = tmp_path / "model.keras"
    junk.write_text("not a model")
    for command in (
        ["evaluate", "--model", str(junk), "--data", str(tmp_path)],
        ["predict", "--model", str(junk), "x.jpg"],
    ):
        assert main(command) == 2  # the library's load_model names the file; the CLI reports it
        assert f"{junk} is not a .keras model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value", [("--backup-every", "0"), ("--epochs", "-1"), ("--batch-size", "two"), ("--patience", "0")]
)
def test_counts_below_one_are_refused_before_any_work(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--data", str(tmp_path), flag, value])
    assert stopped.value.code == 2
    assert f"argument {flag}: {value!r} is not a whole number of at least 1" in capsys.readouterr().err


def _epochs_in_log(path):
    with open(path) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.mark.slow  # several processes or full-size mixed precision: in the full tier
def test_resume_after_sigkill(shapes_dir, tmp_path):
    run = tmp_path / "run"
    args = CLI + [
        "train",
        "--data",
        str(shapes_dir),
        "--val-split",
        "0.3",
        "--epochs",
        "5",
        "--batch-size",
        "4",
        "--recipe",
        "frozen-features",
        "--run-dir",
        str(run),
        "--quiet",
        *TINY_FLAGS,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        state = run / "history.json"
        if state.exists() and json.loads(state.read_text())["epochs_done"] >= 2:
            break
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = json.loads((run / "history.json").read_text())["epochs_done"]
    assert 2 <= done < 5 and (run / "backup").exists()
    resumed = subprocess.run(args + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _epochs_in_log(run / "log.csv") == [0, 1, 2, 3, 4]  # each epoch once: nothing lost, nothing twice
    assert json.loads((run / "history.json").read_text())["epochs_done"] == 5
    assert keras.models.load_model(run / "model.keras").get_layer("class_names").class_names == [
        "circle",
        "rectangle",
        "star",
        "triangle",
    ]


@pytest.mark.slow
def test_activation_cache_gives_the_uncached_loss_curve(shapes_dir, tmp_path):
    runs = {}
    for where in ("uncached", "memory", "disk"):
        losses = []  # a user's callback sees the epochs of the cached run too
        log = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs, losses=losses: losses.append(logs["loss"])
        )
        limit = {"cache_memory_limit": 0} if where == "disk" else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(
                shapes_dir,
                val_split=0.3,
                recipe="frozen-features",
                epochs=3,
                batch_size=8,
                seed=5,
                run_dir=tmp_path / where,
                cache_activations=where != "uncached",
                callbacks=[log],
                verbose=0,
                **limit,
                **TINY,
            )
        # A disk cache once had no known length: Keras warned "Your input ran out of data" at each validation.
        assert not [w for w in caught if "ran out of data" in str(w.message)], where
        assert result.cached_activations == (where != "uncached")
        assert losses == result.history["loss"]
        runs[where] = result.history
    for where in ("memory", "disk"):
        for key in ("loss", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(runs[where][key], runs["uncached"][key], rtol=1e-3, atol=1e-4, err_msg=key)


def test_activation_cache_refuses_augmentation(shapes_dir, tmp_path):
    with pytest.raises(ValueError, match="augment='none'"):
        train(shapes_dir, val_split=0.3, epochs=1, augment="flip", cache_activations=True, run_dir=tmp_path, verbose=0)


@pytest.mark.slow
def test_frozen_features_recipe_reaches_about_90_percent_over_seeds_on_real_photos(tmp_path, capsys):
    """With the shipped ImageNet conv weights (PyTorch gets 0.95 with the same recipe); seed 0 through
    the command line, seeds 1 and 2 through the Python API.

    One seed misleads on 200 test photos: seeds 0-2 give 0.870, 0.920, 0.910
    (benchmarks/RECIPES.md). So the mean over those seeds is held to 0.89 and each run to 0.85.
    """
    argv = ["train", "--data", str(PHOTOS / "train"), "--val", str(PHOTOS / "test"), "--recipe", "frozen-features"]
    # --cache-activations: the same loss curve as uncached (test_activation_cache_...), faster.
    argv += ["--epochs", "3", "--seed", "0", "--run-dir", str(tmp_path / "0"), "--cache-activations"]
    # One backup (the last epoch's) instead of three: each is 664 MB with Adam's state over fc6-fc8.
    # The claim is the accuracy: no report, TensorBoard or test-time augmentation (6 more passes of the
    # validation photos through AlexNet) are measured here.
    assert main([*argv, "--no-report", "--no-tensorboard", "--no-measure-tta", "--backup-every", "3", "--quiet"]) == 0
    accuracies = [float(capsys.readouterr().out.split("validation accuracy:")[1].split()[0])]
    shared = {}  # the frozen convolutions' activations, computed once for the two seeds
    accuracies += [
        train(
            PHOTOS / "train",
            val=PHOTOS / "test",
            recipe="frozen-features",
            epochs=3,
            seed=seed,
            run_dir=tmp_path / str(seed),
            cache_activations=True,
            shared_activations=shared,
            verbose=0,
            report=False,
            tensorboard=False,
            measure_tta=False,
            save_models=False,  # model.keras (228 MB) is the command line run's to check
            backup_every=4,  # none: a run of 3 epochs never resumes here
        ).val_accuracy
        for seed in (1, 2)
    ]
    assert np.mean(accuracies) >= 0.89 and min(accuracies) >= 0.85, accuracies


@pytest.mark.slow
def test_seeded_cpu_runs_repeat_exactly(shapes_dir, tmp_path):
    runs = [
        train(
            shapes_dir,
            val_split=0.3,
            recipe=recipe,
            epochs=2,
            batch_size=8,
            seed=3,
            xla=xla,
            run_dir=tmp_path / f"{recipe}{i}",
            verbose=0,
            **TINY,
        ).history
        for recipe, xla in (("frozen-features", True), ("fine-tune-all", False))
        for i in range(2)
    ]
    assert runs[0] == runs[1] and runs[2] == runs[3]


@pytest.mark.slow
def test_mixed_precision_trains_with_a_float32_head(shapes_dir, tmp_path):
    import keras_alexnet

    try:
        result = keras_alexnet.train(  # with the report, which keras_alexnet.train writes
            shapes_dir,
            val_split=0.3,
            recipe="frozen-features",
            epochs=1,
            batch_size=8,
            mixed_precision="bfloat16",
            run_dir=tmp_path,
            verbose=0,
            **{**TINY, "report": True},  # the report's Grad-CAM of a mixed-precision model (RELIABILITY 57)
        )
        assert (tmp_path / "report.html").exists()
        assert result.model.get_layer("conv1").compute_dtype == "bfloat16"
        assert result.model.get_layer("fc8").compute_dtype == "float32"
        assert np.isfinite(result.history["loss"][0])
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow  # several processes or full-size mixed precision: in the full tier
def test_saved_model_loads_in_a_fresh_process(shapes_dir, tmp_path):
    """A user's new process: `import keras_alexnet` must register the factored optimizer and layers."""
    result = train(
        shapes_dir,
        val_split=0.3,
        recipe="fine-tune-all",
        epochs=1,
        batch_size=8,
        run_dir=tmp_path,
        verbose=0,
        save_optimizer=True,  # asked for: the final model keeps its optimizer
        **TINY,
    )
    code = (
        f"import keras, keras_alexnet; m = keras.models.load_model(r'{result.model_path}'); "
        "print(type(m.optimizer).__name__, m.optimizer.lr_factors['conv1/kernel'], keras_alexnet.class_names_of(m))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[:2] == ["FactoredAdam", "0.1"] and "circle" in run.stdout


@pytest.mark.slow
def test_a_diverging_run_stops_saves_nothing_and_says_so(shapes_dir, tmp_path, capsys):
    from keras_alexnet.training.callbacks import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="Lower the learning rate"):
        train(
            shapes_dir,
            val_split=0.3,
            recipe="matlab",
            learning_rate=1e9,
            epochs=3,
            batch_size=4,
            run_dir=tmp_path / "py",
            verbose=0,
            **TINY,
        )
    assert not (tmp_path / "py" / "model.keras").exists() and not (tmp_path / "py" / "best.keras").exists()
    code = main(
        [
            "train",
            "--data",
            str(shapes_dir),
            "--val-split",
            "0.3",
            "--recipe",
            "matlab",
            "--lr",
            "1e9",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--run-dir",
            str(tmp_path / "cli"),
            "--quiet",
            *TINY_FLAGS,
        ]
    )
    assert code == 1 and "training diverged" in capsys.readouterr().err
    assert (
        main(["train", "--data", str(shapes_dir), "--lr", "inf", "--run-dir", str(tmp_path / "inf"), *TINY_FLAGS]) == 2
    )
    assert "learning_rate=inf" in capsys.readouterr().err


def test_a_model_with_nan_weights_is_refused_by_evaluate_and_predict(shapes_dir, tmp_path, capsys):
    model = AlexNet(weights=None, classes=4, architecture=TINY_TABLE, input_shape=(96, 96, 3))
    kernel, bias = model.get_layer("fc8").get_weights()
    model.get_layer("fc8").set_weights([kernel, np.full_like(bias, np.nan)])
    model.save(tmp_path / "nan.keras")
    image = str(next((shapes_dir / "star").iterdir()))
    for command in (
        ["evaluate", "--model", str(tmp_path / "nan.keras"), "--data", str(shapes_dir)],
        ["predict", "--model", str(tmp_path / "nan.keras"), image],
    ):
        assert main(command) == 2
        assert "non-finite weights" in capsys.readouterr().err


@pytest.mark.slow
def test_the_final_model_holds_no_optimizer_state_unless_asked(shapes_dir, tmp_path):
    import zipfile

    sizes = {}
    for keep in (False, True):
        result = train(
            shapes_dir,
            val_split=0.3,
            recipe="fine-tune-all",
            epochs=1,
            batch_size=8,
            run_dir=tmp_path / str(keep),
            verbose=0,
            save_optimizer=keep,
            **TINY,
        )
        loaded = keras.models.load_model(result.model_path)
        assert (getattr(loaded, "optimizer", None) is not None) == keep
        with zipfile.ZipFile(result.model_path) as archive:
            sizes[keep] = archive.getinfo("model.weights.h5").file_size
        np.testing.assert_array_equal(
            loaded.get_layer("fc8").kernel.numpy(), result.model.get_layer("fc8").kernel.numpy()
        )
    assert sizes[True] > 2.5 * sizes[False]  # Adam's two moments per weight
