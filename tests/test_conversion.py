"""The conversion tool end to end: CLI, outputs, atomic writes, onnx2tf check, bad sources."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI

from keras_alexnet import AlexNet
from keras_alexnet.cli import main
from keras_alexnet.conversion import convert, default_output, load_state_dict
from keras_alexnet.weights import keras_cache_dir

TOOL = Path(__file__).parent.parent / "tools" / "convert_torchvision_alexnet.py"


@pytest.mark.slow
def test_cli_converts_seeded_weights_with_parity_report(tmp_path, capsys):
    out = tmp_path / "seeded.weights.h5"
    assert main(["convert", "--source", "random:7", "--out", str(out), "--keep-onnx", str(tmp_path / "a.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "Keras vs PyTorch" in printed and "ONNX Runtime vs PyTorch" in printed
    rel = [float(line.split("max rel")[1]) for line in printed.splitlines() if "max rel" in line]
    assert len(rel) == 2 and max(rel) < 1e-5
    model = AlexNet(weights=out, classifier_activation=None)
    from_onnx = AlexNet(weights=tmp_path / "a.onnx", classifier_activation=None)
    x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(x), from_onnx(x))
    assert not list(tmp_path.glob(".tmp-*")), "temporary files must not be left behind"


def test_default_output_is_the_keras_cache(tmp_path):
    assert default_output("torchvision", False) == keras_cache_dir() / "alexnet_imagenet.weights.h5"
    assert default_output("/x/alexnet-owt-7be5be79.pth", False).name == "alexnet_imagenet.weights.h5"
    assert default_output("/x/my_model.pth", False).name == "my_model.weights.h5"
    assert str(keras_cache_dir()).startswith(str(tmp_path))  # honours KERAS_HOME


@pytest.mark.slow
def test_pth_state_dict_source(tmp_path, torch_modules, seeded_state):
    torch, _ = torch_modules
    pth = tmp_path / "tuned.pth"
    torch.save({k: torch.from_numpy(v) for k, v in seeded_state.items()}, pth)
    result = convert(pth, progress=lambda _: None)
    assert result.weights_path == keras_cache_dir() / "tuned.weights.h5"
    assert result.classes == 1000 and not result.features_only
    kernel = AlexNet(weights=result.weights_path).get_layer("conv1").get_weights()[0]
    np.testing.assert_array_equal(kernel, seeded_state["features.0.weight"].transpose(2, 3, 1, 0))


def test_a_file_named_like_torchvisions_must_have_its_hash(tmp_path, torch_modules, seeded_state):
    torch, _ = torch_modules
    fake = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({k: torch.from_numpy(v) for k, v in seeded_state.items()}, fake)
    with pytest.raises(ValueError, match="damaged or not torchvision's"):
        load_state_dict(fake)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.pth", None, "does not exist"),
        ("weights.txt", b"x", "suffix '.txt'"),
        ("pickle.pth", b"not a zip or pickle", "weights_only=True"),
        ("bad.npz", b"garbage", "not a readable .npz"),
    ],
)
def test_bad_sources_get_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_state_dict(path)


def test_state_dict_that_is_not_alexnet(tmp_path):
    path = tmp_path / "resnet.npz"
    np.savez(path, **{"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})
    with pytest.raises(ValueError, match="missing"):
        load_state_dict(path)


@pytest.mark.slow
def test_tool_script_with_onnx2tf_check(tmp_path, seeded_state):
    """The tools/ script on a features-only .npz, checked against onnx2tf too."""
    npz = tmp_path / "features.npz"
    np.savez(npz, **{k: v for k, v in seeded_state.items() if k.startswith("features.")})
    out = tmp_path / "features.weights.h5"
    run = subprocess.run(
        [sys.executable, str(TOOL), "--source", str(npz), "--out", str(out), "--check-onnx2tf"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {
        line.split(" vs ")[0].strip(): float(line.split("max rel")[1])
        for line in run.stdout.splitlines()
        if "max rel" in line
    }
    assert set(rows) == {"ONNX Runtime", "Keras", "onnx2tf"}
    assert max(rows.values()) < 1e-5
    kernel = AlexNet(weights=out, include_top=False).get_layer("conv3").get_weights()[0]
    np.testing.assert_array_equal(kernel, seeded_state["features.6.weight"].transpose(2, 3, 1, 0))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda torch, state: torch.zeros(3), "holds a Tensor, not a state dict"),
        (lambda torch, state: [torch.zeros(3)], "holds a list, not a state dict"),
        (
            lambda torch, state: {"state_dict": {k: torch.from_numpy(v) for k, v in state.items()}},
            "training checkpoint",
        ),
        (
            lambda torch, state: {
                **{k: torch.from_numpy(v) for k, v in state.items()},
                "features.6.weight": torch.zeros(384, 192, 5, 5),
            },
            r"'features.6.weight' \(conv3\) has shape \(384, 192, 5, 5\), torchvision AlexNet's is \(384, 192, 3, 3\)",
        ),
    ],
    ids=["tensor", "list", "checkpoint", "wrong-shape"],
)
def test_pth_that_is_not_an_alexnet_state_dict_is_named(tmp_path, torch_modules, seeded_state, make, message):
    torch, _ = torch_modules
    path = tmp_path / "odd.pth"
    torch.save(make(torch, seeded_state), path)
    with pytest.raises(ValueError, match=message):
        load_state_dict(path, progress=lambda _: None)


def test_bad_random_seed_and_output_name_are_refused_before_any_work(tmp_path, capsys):
    assert main(["convert", "--source", "random:abc", "--out", str(tmp_path / "x.weights.h5")]) == 2
    assert "must be a whole number, e.g. random:0" in capsys.readouterr().err
    assert main(["convert", "--source", "random:1", "--out", str(tmp_path / "mine.h5")]) == 2
    assert f"{tmp_path / 'mine.h5'}' must end in .weights.h5" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_failed_parity_check_writes_nothing(tmp_path, capsys):
    cache_target = keras_cache_dir() / "random-3.weights.h5"
    assert main(["convert", "--source", "random:3", "--max-rel", "0"]) == 1  # no conversion is bit-exact
    assert "parity check failed" in capsys.readouterr().err
    assert not cache_target.exists()
    assert not keras_cache_dir().exists() or list(keras_cache_dir().iterdir()) == []


@pytest.mark.torch
@pytest.mark.slow  # several processes or full-size mixed precision: in the full tier
def test_a_killed_conversion_leaves_no_temporary_files(tmp_path):
    import os
    import signal
    import time

    work, out_dir = tmp_path / "tmp", tmp_path / "out"
    work.mkdir()
    out_dir.mkdir()
    env = {**os.environ, "TMPDIR": str(work), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [
        *CLI,
        "convert",
        "--source",
        "random:5",
        "--out",
        str(out_dir / "x.weights.h5"),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list(work.glob("keras-alexnet-*/alexnet.onnx*")):
        assert process.poll() is None, "the conversion ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) != 0
    assert list(work.glob("keras-alexnet-*")) == [] and list(out_dir.iterdir()) == []


def test_convert_into_a_folder_it_cannot_write_stops_before_any_work(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("KERAS_HOME", str(blocker / "keras"))  # a folder cannot be made under a file
    assert main(["convert", "--source", str(tmp_path / "missing.pth")]) == 2
    error = capsys.readouterr().err
    assert "cannot write the converted weights into" in error and "KERAS_HOME" in error and "--out" in error
    if os.geteuid() == 0 and shutil.which("mount"):  # and a read-only disk, which permissions alone do not tell
        read_only = tmp_path / "ro"
        read_only.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)]).returncode == 0:
            try:
                assert main(["convert", "--source", "x.pth", "--out", str(read_only / "w.weights.h5")]) == 2
                assert "Read-only file system" in capsys.readouterr().err
            finally:
                subprocess.run(["umount", str(read_only)], check=True)
