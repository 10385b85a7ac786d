"""Every command ends on SIGTERM, SIGINT and SIGHUP within 5 seconds, whatever runs (_utils/signals.py): a native
op that never returns, a training run (its lock released, its backup kept), a TF_CONFIG worker that never comes,
an --address that is not a Ray cluster (these two end by themselves, naming what they waited for)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import CLI, TINY_FLAGS, free_ports, solid_image

from keras_alexnet._utils.signals import GRACE_SECONDS
from keras_alexnet.run_directory import RunDirectory

pytestmark = pytest.mark.slow


def _never_ending_onnx(path):
    """An ONNX classifier shaped like keras-alexnet's exports whose Loop runs 2**62 times: ONNX Runtime never
    returns from it."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", T.INT64, []),
            helper.make_tensor_value_info("cond_in", T.BOOL, []),
            helper.make_tensor_value_info("v_in", T.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("cond_out", T.BOOL, []), helper.make_tensor_value_info("v_out", T.FLOAT, [1])],
        [helper.make_tensor("one", T.FLOAT, [1], [1.0])],
    )
    nodes = [
        helper.make_node("Loop", ["M", "cond", "v0"], ["v"], body=body),
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "one_i"], ["n"]),
        helper.make_node("Concat", ["n", "one_i"], ["reps"], axis=0),
        helper.make_node("Tile", ["half", "reps"], ["tiled"]),
        helper.make_node("Mul", ["v", "zero_f"], ["vz"]),
        helper.make_node("Add", ["tiled", "vz"], ["probabilities"]),
    ]
    constants = [
        helper.make_tensor("M", T.INT64, [], [2**62]),
        helper.make_tensor("cond", T.BOOL, [], [True]),
        helper.make_tensor("v0", T.FLOAT, [1], [0.0]),
        helper.make_tensor("zero", T.INT64, [1], [0]),
        helper.make_tensor("one_i", T.INT64, [1], [1]),
        helper.make_tensor("half", T.FLOAT, [1, 2], [0.5, 0.5]),
        helper.make_tensor("zero_f", T.FLOAT, [1], [0.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "never",
        [helper.make_tensor_value_info("images", T.UINT8, ["N", 32, 32, 3])],
        [helper.make_tensor_value_info("probabilities", T.FLOAT, ["N", 2])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _wait_for(condition, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _mapped(process, library):
    """Whether the command's process (the supervisor's child) has loaded ``library``."""
    import psutil

    for child in psutil.Process(process.pid).children():
        try:
            if library in open(f"/proc/{child.pid}/maps").read():
                return True
        except OSError:
            continue
    return False


def _ended_within(process, seconds):
    """(exit status, stderr, seconds it took) after a signal: the process must end within ``seconds``."""
    start = time.monotonic()
    try:
        _, err = process.communicate(timeout=seconds + 10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the command did not end on the signal") from None
    return process.returncode, err, time.monotonic() - start


def _signalled(argv, cwd, ready, what, number, wait=240, within=5, env=None):
    """Run the command (``argv``) in ``cwd``, send ``number`` once ``ready(process)`` holds: (exit status, stderr,
    seconds from the signal to the end). The command must end within ``within`` seconds."""
    process = subprocess.Popen(
        [*CLI, *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        _wait_for(lambda: ready(process), wait, what)
        assert process.poll() is None
        process.send_signal(number)
        return _ended_within(process, within)
    finally:
        process.kill()  # the command's process ends with its supervisor


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["TERM", "INT", "HUP"])
def test_a_signal_ends_predict_inside_a_native_op_that_never_returns(number, tmp_path):
    _never_ending_onnx(tmp_path / "never.onnx")
    solid_image(tmp_path / "x.png")
    ready = []

    def inside_session_run(process):  # ONNX Runtime loaded, then 2 s more: inside session.run
        if not ready and _mapped(process, "onnxruntime"):
            ready.append(time.monotonic())
        return bool(ready) and time.monotonic() - ready[0] > 2

    argv = ["predict", "--model", "never.onnx", "x.png"]
    code, err, seconds = _signalled(argv, tmp_path, inside_session_run, "ONNX Runtime to run", number, wait=120)
    assert code == 130 and seconds < 5, (code, seconds, err)
    assert err.strip().splitlines()[-1] == "interrupted."


def test_sighup_ends_training_with_the_resume_line_the_lock_released_and_the_backup_kept(shapes_dir, tmp_path):
    argv = ["train", "--data", str(shapes_dir), "--val-split", "0.25", "--epochs", "500", "--run-dir", "run"]
    run = tmp_path / "run"
    ready = lambda process: RunDirectory(run).has_backup()  # noqa: E731
    code, err, seconds = _signalled([*argv, *TINY_FLAGS], tmp_path, ready, "the first backup", signal.SIGHUP)
    assert code == 130 and seconds < 5, (code, seconds, err)
    assert "--resume" in err.strip().splitlines()[-1]
    assert not (run / "run.lock").exists()
    assert RunDirectory(run).has_backup()


def test_a_tf_config_worker_that_never_comes_ends_the_command_naming_it(shapes_dir, tmp_path):
    mine, absent = free_ports(2)
    config = {
        "cluster": {"worker": [f"127.0.0.1:{mine}", f"127.0.0.1:{absent}"]},
        "task": {"type": "worker", "index": 0},
    }
    env = {**os.environ, "TF_CONFIG": json.dumps(config), "KERAS_ALEXNET_WORKER_WAIT_SECONDS": "8"}
    start = time.monotonic()
    result = subprocess.run(
        [*CLI, "train", "--data", str(shapes_dir), "--val-split", "0.25", "--epochs", "1", "--run-dir", "run"]
        + TINY_FLAGS,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "the 2 workers TF_CONFIG names" in last and f"127.0.0.1:{absent}" in last and "8 s" in last
    assert time.monotonic() - start < 200
    assert not (tmp_path / "run" / "run.lock").exists()


def test_an_address_that_is_not_a_ray_cluster_ends_compare_naming_it(shapes_dir, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted = []

    def accept():  # a TCP service that is not Ray: it accepts and says nothing
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    env = {**os.environ, "KERAS_ALEXNET_RAY_JOIN_SECONDS": "8"}
    try:
        result = subprocess.run(
            [*CLI, "compare", "--data", str(shapes_dir), "--out", "cmp", "--address", f"127.0.0.1:{port}"]
            + ["--recipes", "frozen-features", "--seeds", "1", "--epochs", "1", "--architecture", "tiny"]
            + ["--weights", "none"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        server.close()
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"the Ray cluster at 127.0.0.1:{port} did not answer within 8 s" in last
    assert "--address" in last


def test_the_command_ends_with_its_supervisor(tmp_path):
    import psutil

    _never_ending_onnx(tmp_path / "never.onnx")
    solid_image(tmp_path / "x.png")
    process = subprocess.Popen([*CLI, "predict", "--model", "never.onnx", "x.png"], cwd=tmp_path)
    try:
        _wait_for(lambda: _mapped(process, "onnxruntime"), 120, "ONNX Runtime to load")
        (command,) = psutil.Process(process.pid).children()
        process.kill()  # SIGKILL: the supervisor cannot pass anything on
        process.wait()
        _wait_for(lambda: not command.is_running() or command.status() == psutil.STATUS_ZOMBIE, 5, "the command")
    finally:
        process.kill()


def test_sigterm_to_compare_prints_the_line_that_continues_it(shapes_dir, tmp_path):
    """The command ends by itself (the supervisor's grace set to a minute, so that its ending cannot pass for the
    command's): ray.init's own SIGTERM handler (``sys.exit(15)``) does not outlive it."""
    argv = ["compare", "--data", str(shapes_dir), "--out", "cmp", "--recipes", "fine-tune-all", "--heads", "compact"]
    argv += ["--seeds", "1", "--epochs", "100000", "--architecture", "tiny", "--weights", "none"]
    ready = lambda process: any((tmp_path / "cmp").glob("runs/*/backup/*.weights.h5"))  # noqa: E731
    env = {**os.environ, "KERAS_ALEXNET_GRACE_SECONDS": "60"}
    code, err, seconds = _signalled(argv, tmp_path, ready, "the first run's backup", signal.SIGTERM, within=20, env=env)
    assert code == 130 and seconds < 20, (code, seconds, err)
    assert "the same command continues where it stopped" in err.strip().splitlines()[-1]
    assert not (tmp_path / "cmp" / "comparison.lock").exists()


def test_a_call_off_the_main_thread_gives_its_result_its_error_and_yields_to_a_signal():
    """``off_the_main_thread`` (Ray Train's ``fit`` sets its SIGINT handler only in the main thread): the call's
    result and error reach the caller, and SIGTERM during the wait is the command's ``KeyboardInterrupt`` at once."""
    from keras_alexnet._utils.signals import off_the_main_thread, signals_as_interrupt

    def refuse():
        raise ValueError("bad data")

    assert off_the_main_thread(lambda: 7) == 7
    with pytest.raises(ValueError, match="bad data"):
        off_the_main_thread(refuse)
    with signals_as_interrupt():
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            off_the_main_thread(lambda: time.sleep(30))
    assert time.monotonic() - start < 2


def test_a_command_that_aborts_while_ending_on_a_signal_still_ends_with_its_line(tmp_path):
    """A native library's abort on the way out (seen once in CI as exit 134 and no line): the supervisor says the
    command's line, releases its locks and exits 130."""
    lock = tmp_path / "run.lock"
    command = (
        "import os, signal, sys, time\n"
        "from keras_alexnet._utils import signals\n"
        "signals.supervised()\n"
        f"open({str(lock)!r}, 'w').write(str(os.getpid()))\n"
        f"signals.holding({str(lock)!r}, True)\n"
        "signal.signal(signal.SIGTERM, lambda *_: os.abort())\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    supervisor = (
        "import sys\n"
        "from keras_alexnet._utils import signals\n"
        f"sys.exit(signals.supervise([sys.executable, '-c', {command!r}], lambda: 'interrupted; continue with: X'))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", supervisor], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        code, err, seconds = _ended_within(process, 5)
    finally:
        process.kill()
    assert code == 130 and seconds < GRACE_SECONDS, (code, seconds, err)
    assert err.strip().splitlines()[-1] == "interrupted; continue with: X"
    assert not lock.exists()
