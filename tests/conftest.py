"""Shared fixtures. Tests never touch the network; weights are seeded or shipped."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the same numerics on every machine

import importlib.util

import numpy as np
import pytest

TESTS = Path(__file__).parent
PHOTOS = TESTS / "data" / "cats_vs_dogs"
SHARED_NPZ = TESTS.parent.parent / "shared" / "weights" / "alexnet_features_imagenet.npz"


@pytest.fixture(autouse=True)
def _isolated_keras_home(tmp_path, monkeypatch):
    """Never read or write the user's ~/.keras during tests."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture
def ray_here():
    """Ray on this machine for the test, started as compare starts its own (``ray_cluster.connect``), for a test
    that runs several comparisons: ``connect`` uses the Ray this process runs, so they start it once (a start and
    stop costs about 5 s). Not kept between tests: an idle Ray after a comparison keeps 7 % of a core busy."""
    from keras_alexnet._utils.ray_cluster import connect

    with connect() as ray:
        yield ray


@contextlib.contextmanager
def listening():
    """While the block runs, every (pid, process name, address, port) on which this process or one it started
    (Ray's servers and workers, a command's processes) listens for TCP connections, polled every 0.2 s."""
    import threading

    import psutil

    seen, stop = set(), threading.Event()

    def poll():
        me = psutil.Process()
        while not stop.wait(0.2):
            for process in [me, *me.children(recursive=True)]:
                try:
                    for connection in process.net_connections(kind="inet"):
                        if connection.status == psutil.CONN_LISTEN:
                            seen.add((process.pid, process.name(), connection.laddr.ip, connection.laddr.port))
                except psutil.Error:  # ended meanwhile
                    continue

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def loopback(ip):
    """Whether a listening address reaches only this machine (127.0.0.1, ::1, or IPv4's loopback seen by IPv6)."""
    import ipaddress

    address = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


@pytest.fixture(scope="session")
def torch_modules():
    from keras_alexnet.conversion import import_torch

    return import_torch()


@pytest.fixture(scope="session")
def seeded_state():
    """A seeded, randomly initialised torchvision AlexNet state dict (numpy arrays)."""
    from keras_alexnet.conversion import load_state_dict

    state, _ = load_state_dict("random:1234", progress=lambda *_: None)
    return state


@pytest.fixture(scope="session")
def seeded_conversion(tmp_path_factory, seeded_state):
    """torch model, its ONNX export and the Keras model filled from that ONNX."""
    from keras_alexnet.conversion import export_onnx, keras_model_from_onnx, torchvision_alexnet

    torch_model = torchvision_alexnet(seeded_state, features_only=False)
    onnx_path = export_onnx(torch_model, tmp_path_factory.mktemp("onnx") / "alexnet.onnx")
    return torch_model, onnx_path, keras_model_from_onnx(onnx_path)


def photo_paths(split="test", per_class=4):
    """A few real photos, both classes."""
    paths = []
    for cls in ("cats", "dogs"):
        paths += sorted((PHOTOS / split / cls).iterdir())[:per_class]
    return paths


# The tiny network's options for a quick run: the pipeline's every step, in seconds (train(**TINY)).
# No report, and no test-time augmentation measured after training (six more passes): the tests of each
# (test_report.py, test_tta.py) ask for them.
TINY = {"architecture": "tiny", "weights": None, "batch_size": 8, "report": False, "measure_tta": False}
# The same as the CLI's flags, with TensorBoard off too.
TINY_FLAGS = ["--architecture", "tiny", "--weights", "none", "--batch-size", "8", "--no-tensorboard", "--no-report"]
TINY_FLAGS += ["--no-measure-tta"]


# The keras-alexnet command in a process of its own: for what only a process shows (signals, kills,
# exit statuses, a fresh interpreter). In-process, tests call keras_alexnet.cli.main(argv).
CLI = [sys.executable, "-m", "keras_alexnet.cli"]
# The installed command, as a user types it.
KERAS_ALEXNET = str(Path(sys.executable).parent / "keras-alexnet")


def make_shapes(folder, per_class=8, size=72, seed=3):
    """The MATLAB guide's generated shapes (four classes) in ``folder``: the suite's small data set."""
    from keras_alexnet.datasets import generate_shapes

    return generate_shapes(folder, per_class=per_class, size=size, seed=seed)


@pytest.fixture(scope="module")
def shapes_dir(request, tmp_path_factory):
    """Generated shapes shared by a module's tests: ``make_shapes``'s defaults, or the module's ``SHAPES``
    (``{"per_class": ..., "size": ..., "seed": ...}``)."""
    return make_shapes(tmp_path_factory.mktemp("shapes") / "data", **getattr(request.module, "SHAPES", {}))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, shapes_dir):
    """An untrained tiny AlexNet with the shapes' class names, saved as a run would save it."""
    import keras

    from keras_alexnet.architecture import TINY as TINY_TABLE
    from keras_alexnet.layers import attach_class_names
    from keras_alexnet.model import AlexNet

    keras.utils.set_random_seed(0)
    names = sorted(os.listdir(shapes_dir))
    model = attach_class_names(AlexNet(weights=None, classes=len(names), architecture=TINY_TABLE), names)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


def solid_image(path, size=(48, 40), value=90):
    """A one-colour RGB image of ``size`` (height, width) at ``path``, its folders made."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


def split_folders(shapes_dir, tmp_path, train_per_class=3):
    """The shapes copied into a training and a validation folder (``train_per_class`` images a class, the rest)."""
    import shutil

    train_dir, val_dir = tmp_path / "train", tmp_path / "val"
    for name in os.listdir(shapes_dir):
        files = sorted((shapes_dir / name).iterdir())
        for folder, chosen in ((train_dir, files[:train_per_class]), (val_dir, files[train_per_class:])):
            (folder / name).mkdir(parents=True)
            for file in chosen:
                shutil.copy(file, folder / name / file.name)
    return train_dir, val_dir


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def free_ports(count):
    """``count`` TCP ports on 127.0.0.1 that nothing listens on now (for TF_CONFIG's workers)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def relative_error(reference, candidate):
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    return float(np.max(np.abs(reference - candidate)) / np.max(np.abs(reference)))


HAS_TORCH = all(importlib.util.find_spec(name) for name in ("torch", "torchvision", "onnxruntime"))
# Tests that need torch: by fixture, or whole files about the conversion.
TORCH_FIXTURES = {"torch_modules", "seeded_state", "seeded_conversion"}
TORCH_FILES = {"test_conversion.py", "test_onnx_reader.py"}


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(
        reason="needs the `convert` extra (pip install -e '.[convert]'): torch, torchvision, onnxruntime"
    )
    for item in items:
        if TORCH_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in TORCH_FILES:
            item.add_marker(pytest.mark.torch)
        if not HAS_TORCH and item.get_closest_marker("torch"):
            item.add_marker(skip)
    # The long tests first: with pytest-xdist's workers (-n 2) none of them starts last and runs alone.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def StopAfter(epochs):  # noqa: N802 (a Keras callback class, made when Keras is imported)
    """A callback that presses Ctrl-C after ``epochs`` epochs (the run's own callbacks, the backup among them,
    have run by then): an interrupted run, to resume."""
    import keras

    class _StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == epochs:
                raise KeyboardInterrupt

    return _StopAfter()


_UNPICKLE = """
import pickle, sys
loaded = pickle.loads(sys.stdin.buffer.read())
print(loaded.__name__, "keras" in sys.modules, "tensorflow" in sys.modules)
"""


def unpickled_in_a_fresh_process(function):
    """[name, Keras loaded, TensorFlow loaded] after a fresh process unpickles ``function`` as Ray pickles it
    (``ray.cloudpickle``), as a Ray worker does before running it."""
    from ray import cloudpickle

    done = subprocess.run(
        [sys.executable, "-c", _UNPICKLE], input=cloudpickle.dumps(function), capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.decode().split()
