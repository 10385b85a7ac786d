"""ONNX out, and every exported file checked where it will run: predict and evaluate read
model.keras, a SavedModel, TFLite and ONNX alike (issue 21, items 1 and 3)."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import CLI, PHOTOS, photo_paths

from keras_alexnet import TINY, AlexNet
from keras_alexnet.cli import main
from keras_alexnet.deployment import MissingRuntime, load_classifier
from keras_alexnet.export import ONNX_TOLERANCE, export_onnx, export_savedmodel, export_tflite
from keras_alexnet.layers import attach_class_names, temperature_of, with_temperature
from keras_alexnet.model import load_model
from keras_alexnet.preprocessing import eval_crop
from keras_alexnet.transfer import replace_head


def _named(head):
    keras.utils.set_random_seed(3)
    base = AlexNet(weights=None, include_top=False, architecture=TINY)
    return attach_class_names(replace_head(base, 2, head=head), ["cats", "dogs"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny two-class model, calibrated as train leaves it (a Temperature layer), and its three exports."""
    folder = tmp_path_factory.mktemp("exports")
    model = with_temperature(_named("alexnet"), 1.7)
    model.save(folder / "model.keras")
    export_savedmodel(model, folder / "savedmodel")
    export_tflite(model, folder / "model.tflite")
    export_onnx(model, folder / "model.onnx")
    return folder


def _crops(paths):
    return np.stack([eval_crop(path) for path in paths])


@pytest.mark.parametrize("head", ["alexnet", "compact"])
def test_onnx_matches_keras_in_a_fresh_process_with_the_class_names(head, tmp_path):
    model = _named(head)
    out = tmp_path / "model.onnx"
    check = export_onnx(model, out)
    assert check.max_abs_diff <= ONNX_TOLERANCE
    images = _crops(photo_paths(per_class=4))  # 8 real photos
    from keras_alexnet.preprocessing import preprocess_input

    expected = model.predict(preprocess_input(images), verbose=0)
    np.save(tmp_path / "images.npy", images)
    code = (
        "import json, numpy as np, onnxruntime as ort; "
        f"s = ort.InferenceSession(r'{out}', providers=['CPUExecutionProvider']); "
        f"x = np.load(r'{tmp_path / 'images.npy'}'); "
        "print(json.dumps({'names': json.loads(s.get_modelmeta().custom_metadata_map['class_names']), "
        "'one': s.run(None, {'images': x[:1]})[0].tolist(), 'eight': s.run(None, {'images': x})[0].tolist()}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["names"] == ["cats", "dogs"]
    for batch in (np.asarray(got["one"]), np.asarray(got["eight"])):
        assert np.all(np.isfinite(batch))
        assert np.max(np.abs(batch - expected[: len(batch)])) <= 1e-5
    with pytest.raises(ValueError, match="exists; nothing was changed"):
        export_onnx(model, out)
    assert main(["export", "--model", str(tmp_path / "m.keras"), "--format", "onnx", "--out", str(out)]) == 2


def test_every_format_predicts_and_evaluates_alike(exported, capsys):
    image = photo_paths(per_class=1)[0]
    answers, accuracies = {}, {}
    for name in ("model.keras", "savedmodel", "model.tflite", "model.onnx"):
        assert main(["predict", "--model", str(exported / name), str(image), "--top", "2"]) == 0
        line = capsys.readouterr().out.strip()
        classes = line.split(": ", 1)[1].split(", ")
        answers[name] = [(c.split()[0], float(c.split()[1])) for c in classes]
        assert main(["evaluate", "--model", str(exported / name), "--data", str(PHOTOS / "test")]) == 0
        accuracies[name] = capsys.readouterr().out.splitlines()[0]
    reference = answers["model.keras"]
    assert {name for name, _ in reference} == {"cats", "dogs"}
    for name, answer in answers.items():
        assert [n for n, _ in answer] == [n for n, _ in reference], name
        # The SavedModel resizes inside its graph (TensorFlow's antialiased bilinear, not PIL's).
        assert np.allclose(
            [p for _, p in answer], [p for _, p in reference], atol=1e-2 if name == "savedmodel" else 1e-3
        )
    assert accuracies["model.tflite"] == accuracies["model.onnx"] == accuracies["model.keras"], accuracies
    # Every file carries the temperature: the same calibrated probabilities as model.keras's (above).

    assert temperature_of(load_model(exported / "model.keras")) == pytest.approx(1.7)


def test_tta_of_a_savedmodel_names_the_model_keras_to_use(exported, capsys):
    """A SavedModel resizes and crops inside its graph: test-time augmentation's crops cannot reach it."""
    argv = ["evaluate", "--model", str(exported / "savedmodel"), "--data", str(PHOTOS / "test"), "--tta"]
    assert main(argv) == 2
    assert "--tta needs a model that takes image crops" in capsys.readouterr().err
    assert main(["predict", "--model", str(exported / "model.onnx"), "--tta", str(photo_paths(per_class=1)[0])]) == 0


def test_files_of_other_models_and_a_missing_runtime_are_named(exported, tmp_path, monkeypatch, capsys):
    image = str(photo_paths(per_class=1)[0])
    plain = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    plain(np.zeros((1, 8), np.float32))
    plain.export(tmp_path / "other.onnx", format="onnx", verbose=False)
    assert main(["predict", "--model", str(tmp_path / "other.onnx"), image]) == 2
    assert "not an ONNX model that `keras-alexnet export` wrote" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["evaluate", "--model", str(tmp_path / "notes.txt"), "--data", str(PHOTOS / "test")]) == 2
    assert "not a model file keras-alexnet reads" in capsys.readouterr().err
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x01garbage")
    assert main(["predict", "--model", str(tmp_path / "broken.onnx"), image]) == 2
    assert "not an ONNX model ONNX Runtime can load" in capsys.readouterr().err
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(plain)  # float input: not an export of ours
    (tmp_path / "other.tflite").write_bytes(converter.convert())
    assert main(["predict", "--model", str(tmp_path / "other.tflite"), image]) == 2
    assert "not a TFLite model that `keras-alexnet export` wrote" in capsys.readouterr().err
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec((None, 3), tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "other_savedmodel"), signatures={"serving_default": module.f})
    assert main(["evaluate", "--model", str(tmp_path / "other_savedmodel"), "--data", str(PHOTOS / "test")]) == 2
    assert "not a keras-alexnet export, or one made before 0.8" in capsys.readouterr().err
    # Another input size: the file says its size, and the images are cropped to it.
    small = tmp_path / "160.onnx"
    export_onnx(_named("compact"), small, image_size=160)
    classifier = load_classifier(small)
    assert classifier.size == 160 and classifier.transform(image).shape == (160, 160, 3)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    with pytest.raises(MissingRuntime, match="pip install onnxruntime"):
        load_classifier(exported / "model.onnx")
    assert main(["predict", "--model", str(exported / "model.onnx"), image]) == 2
    assert "keras-alexnet[onnx]" in capsys.readouterr().err


@pytest.mark.slow
def test_the_round_trip_torchvision_onnx_keras_onnx_gives_torchvisions_logits(seeded_conversion, torch_modules):
    """torchvision -> ONNX -> Keras (`convert`) -> ONNX (`export`) -> ONNX Runtime = torchvision, to 1e-5."""
    torch = torch_modules[0]
    torch_model, _, keras_model = seeded_conversion
    from keras_alexnet.deployment import ONNXClassifier
    from keras_alexnet.preprocessing import IMAGENET_MEAN, IMAGENET_STD

    images = _crops(photo_paths(per_class=4))
    normalised = (images / 255.0 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(normalised.transpose(0, 3, 1, 2).astype(np.float32))).numpy()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "alexnet.onnx"
        export_onnx(keras_model, out)
        got = ONNXClassifier(out).probabilities(images)
    assert got.shape == (8, 1000) and np.all(np.isfinite(got))
    assert np.max(np.abs(got - expected)) <= 1e-5 * max(1.0, float(np.max(np.abs(expected))))


def test_int8_is_calibrated_gated_on_accuracy_and_refused_without_labelled_images(exported, tmp_path, capsys):
    """Issue 21, item 2: full-integer TFLite, uint8 in, checked on labelled photos before it is written."""
    from keras_alexnet.datasets import ImageFolder
    from keras_alexnet.export import ExportCheckError, calibration_crops

    model = load_model(exported / "model.keras")
    labelled = ImageFolder.read(PHOTOS / "test", class_names=["cats", "dogs"])
    out = tmp_path / "int8.tflite"
    check = export_tflite(
        model, out, quantize="int8", labelled=labelled, representative=calibration_crops(labelled, 40)
    )
    assert check.gate.images == len(labelled) and check.gate.drop <= 0.02
    assert 0 <= check.gate.exported_accuracy <= 1 and np.isfinite(check.gate.float_accuracy)
    assert out.stat().st_size < 0.5 * (exported / "model.tflite").stat().st_size
    classifier = load_classifier(out)
    assert (
        classifier.class_names == ["cats", "dogs"]
        and classifier.transform(photo_paths(per_class=1)[0]).dtype == np.uint8
    )
    with pytest.raises(ExportCheckError, match="accuracy on .* labelled images.*nothing was written"):
        export_tflite(model, tmp_path / "refused.tflite", quantize="dynamic", labelled=labelled, max_accuracy_drop=-1)
    assert not (tmp_path / "refused.tflite").exists()
    with pytest.raises(ValueError, match="give --data"):
        export_tflite(model, tmp_path / "no_data.tflite", quantize="int8")
    argv = ["export", "--model", str(exported / "model.keras"), "--format", "tflite", "--quantize", "int8"]
    assert main([*argv, "--out", str(tmp_path / "cli.tflite")]) == 2  # no run directory beside it, no --data
    assert "give --data" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "cli.tflite"), "--data", str(PHOTOS / "test")]) == 0
    printed = capsys.readouterr().out
    assert "tflite int8 written to" in printed and "accuracy on 200 labelled images: float32" in printed


def test_every_format_says_the_temperature_it_carries_and_tflite_prints_nothing_of_its_own(exported, capsys):
    """Issue 27, item 16: evaluate on an export reports the file's temperature; TFLite's interpreter lines
    (its deprecation warning, XNNPACK's delegate) are not shown without --verbose."""
    for name in ("model.keras", "savedmodel", "model.tflite", "model.onnx"):
        assert load_classifier(exported / name).temperature == pytest.approx(1.7), name
    assert main(["evaluate", "--model", str(exported / "model.onnx"), "--data", str(PHOTOS / "test")]) == 0
    assert "calibration (temperature 1.700)" in capsys.readouterr().out
    image = str(photo_paths(per_class=1)[0])
    command = [*CLI, "predict", "--model", str(exported / "model.tflite"), image]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.strip() == "1 image(s) predicted", done.stderr
    loud = subprocess.run([*command[:3], "--verbose", *command[3:]], capture_output=True, text=True, timeout=300)
    assert "XNNPACK" in loud.stderr


def test_the_savedmodel_serves_encoded_images_and_holds_its_variables_once(exported, tmp_path):
    """Issue 30, item 4: TF Serving's REST clients send {"b64": JPEG bytes}; serving_default decodes them
    in the graph (in a fresh process here, as a server would), and the variables are saved once."""
    from keras_alexnet.preprocessing import eval_transform

    model = load_model(exported / "model.keras")
    weights = sum(np.asarray(v).nbytes for v in model.weights)
    saved = sum(p.stat().st_size for p in (exported / "savedmodel" / "variables").iterdir())
    assert saved <= 1.1 * weights, (saved, weights)  # was 2x: Keras's ExportArchive saved each twice
    photos = photo_paths(per_class=3)
    expected = model.predict(np.stack([eval_transform(path) for path in photos]), verbose=0)
    code = (
        "import base64, json, sys, tensorflow as tf; "
        f"m = tf.saved_model.load(r'{exported / 'savedmodel'}'); "
        "payload = json.loads(sys.stdin.read()); "
        "data = tf.constant([base64.b64decode(i['b64']) for i in payload['instances']]); "
        "out = m.signatures['serving_default'](image_bytes=data); "
        "print(json.dumps({'p': out['probabilities'].numpy().tolist(), "
        "'names': [n.decode() for n in out['class_name'].numpy()]}))"
    )
    import base64

    request = json.dumps({"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in photos]})
    done = subprocess.run([sys.executable, "-c", code], input=request, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    # TensorFlow's JPEG decoder and antialiased resize differ from PIL's by a few grey levels.
    assert np.max(np.abs(np.asarray(got["p"]) - expected)) < 2e-2
    assert got["names"] == [["cats", "dogs"][i] for i in np.argmax(got["p"], axis=1)]


def test_a_tflite_without_probabilities_is_named(tmp_path):
    import tensorflow as tf

    from keras_alexnet.deployment import load_classifier

    module = tf.Module()
    module.scores = tf.function(
        lambda images: {"scores": tf.reduce_mean(tf.cast(images, tf.float32), axis=(1, 2))},
        input_signature=[tf.TensorSpec((1, 32, 32, 3), tf.uint8, name="images")],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.scores})
    (tmp_path / "other.tflite").write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert())
    with pytest.raises(ValueError, match="answers \\['scores'\\], not 'probabilities'"):
        load_classifier(tmp_path / "other.tflite")
