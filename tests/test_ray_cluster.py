"""More than one machine (issue 28), on one machine over loopback: a two-node Ray cluster made with
``ray.cluster_utils.Cluster`` (one CPU per node), the tiny architecture."""

import csv
import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI, KERAS_ALEXNET, StopAfter, free_ports, listening, loopback
from conftest import TINY as TINY_NETWORK

from keras_alexnet._utils.ray_cluster import ClusterError, check_shared, connect
from keras_alexnet.cli import main
from keras_alexnet.experiments import Candidate, Cluster, compare

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster as RayCluster  # noqa: E402

TINY = TINY_NETWORK
TWO = [Candidate("frozen-features", "compact"), Candidate("later-convs", "compact")]
# A removed node is declared dead within about a second (Ray's default waits for several missed health checks).
FAST_DEATH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300, "health_check_failure_threshold": 3}


SHAPES = {"per_class": 6, "size": 64, "seed": 5}  # conftest.shapes_dir


@pytest.fixture
def two_nodes():
    """A head that runs no trial and two worker nodes of one CPU each; the test's process is the driver."""
    cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": FAST_DEATH})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()


def _runs(out):
    with open(out / "runs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_comparison_on_two_nodes_equals_the_one_machine_comparison(shapes_dir, tmp_path, two_nodes):
    on_cluster = compare(shapes_dir, candidates=TWO, seeds=1, out=tmp_path / "cluster", epochs=2, verbose=0, **TINY)
    rows = _runs(tmp_path / "cluster")
    assert len({row["node_id"] for row in rows}) == 2  # one trial on each node, at the same time
    ray.shutdown()  # the same comparison with Ray on this machine alone (started by compare itself)
    alone = compare(shapes_dir, candidates=TWO, seeds=1, out=tmp_path / "alone", epochs=2, verbose=0, **TINY)
    for first, second in zip(on_cluster.runs, alone.runs):
        assert (first.recipe, first.seed) == (second.recipe, second.seed)
        # One CPU a trial in both: the same arithmetic, so the same numbers (to float32's rounding).
        assert first.val_loss == pytest.approx(second.val_loss, abs=1e-6)
        assert first.val_accuracy == second.val_accuracy


@pytest.mark.slow
def test_a_node_lost_mid_run_reruns_the_trial_elsewhere_from_its_backup(shapes_dir, tmp_path, two_nodes):
    cluster, workers = two_nodes
    out, epochs = tmp_path / "cmp", 10
    one = [Candidate("fine-tune-all", "compact")]
    done = {}

    def run():
        try:
            done["comparison"] = compare(shapes_dir, candidates=one, seeds=1, out=out, epochs=epochs, verbose=0, **TINY)
        except BaseException as error:  # re-raised below, in the test's thread
            done["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    lost = None
    deadline = time.time() + 240
    while lost is None and time.time() < deadline and thread.is_alive():
        for run_dir in sorted((out / "runs").glob("*")) if (out / "runs").exists() else []:
            metadata, trial = run_dir / "backup" / "training_metadata.json", run_dir / "trial.json"
            if metadata.exists() and trial.exists() and json.loads(metadata.read_text())["epoch"] >= 2:
                lost = run_dir, json.loads(trial.read_text())["node_id"]
                break
        time.sleep(0.1)
    assert lost is not None, done
    run_dir, node_id = lost
    cluster.remove_node(next(node for node in workers if node.node_id == node_id))
    thread.join(timeout=600)
    assert not thread.is_alive() and "error" not in done, done.get("error")
    assert len(done["comparison"].runs) == 1
    record = json.loads((run_dir / "result.json").read_text())
    assert record["node_id"] != node_id  # finished on the other node
    resumes = json.loads((run_dir / "resumes.json").read_text())
    assert resumes[0]["from_epoch"] >= 2  # resumed from its own backup, not started again
    with open(run_dir / "log.csv", newline="") as handle:
        epochs_logged = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs_logged == list(range(epochs))  # no epoch trained twice, none missing


def test_an_unreachable_address_is_one_line_within_seconds(shapes_dir, tmp_path, capsys, monkeypatch):
    started = time.perf_counter()
    argv = ["compare", "--data", str(shapes_dir), "--out", str(tmp_path / "c"), "--address", "127.0.0.1:9"]
    assert main([*argv, "--seeds", "1", "--recipes", "matlab"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--address 127.0.0.1:9: no Ray cluster answers there" in error
    assert "ray start --head" in error and time.perf_counter() - started < 30
    assert not (tmp_path / "c").exists()  # a refused command creates nothing (no comparison.json, no folder)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    assert main(["compare", "--data", str(shapes_dir), "--out", str(tmp_path / "c"), "--seeds", "1"]) == 2
    assert "RAY_ADDRESS=127.0.0.1:9: no Ray cluster answers there" in capsys.readouterr().err
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(SystemExit):
        main([*argv, "--cpus-per-trial", "0"])  # the parser refuses it


def test_trials_larger_than_any_node_and_out_not_shared_are_refused(shapes_dir, tmp_path, monkeypatch, ray_here):
    with pytest.raises(ClusterError, match="asks for 64 CPUs and 0 GPUs, which no node of the cluster has"):
        compare(shapes_dir, candidates=TWO[:1], seeds=1, out=tmp_path / "c", cluster=Cluster(cpus_per_trial=64), **TINY)
    with connect() as started:
        check_shared(started, tmp_path / "shared")  # one machine sees its own folder
        # A node whose mount at that path is another disk: it finds an empty folder there.
        monkeypatch.setattr("keras_alexnet._utils.ray_cluster._path_on_nodes", lambda path: tmp_path / "elsewhere")
        with pytest.raises(ClusterError, match="is not shared with node .*: it cannot see the folder"):
            check_shared(started, tmp_path / "shared")


LINEAR = {"head": "linear", "recipe": "fine-tune", "calibrate": False, "output_network": "last"}


@pytest.fixture
def linear_head(monkeypatch):
    """A head without dropout or batch norm, registered here and importable by the workers' processes."""
    from keras_alexnet.recipes import Head, register_head, unregister

    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(tests)
    register_head(Head("linear", "average-pooled pool5, then the classes", "tiny_model:linear_head"))
    yield
    unregister("linear")


def _weights(path):
    from keras_alexnet.model import load_model

    model = load_model(path)
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


@pytest.mark.slow
def test_train_on_two_workers_equals_one_process_on_the_same_global_batch(shapes_dir, tmp_path, linear_head):
    """Issue 36: one runner. The workers drive the callbacks one process's fit does (the output network's
    checkpoint, --patience, the two stages' one-cycle schedules, the activation cache of the frozen stage) and
    finish with the same steps (the kept epoch, the temperature, the record), so both write the same log.csv
    columns, record keys and model.keras.
    (The regularizers and piecewise schedule on workers: the next test.)"""
    from keras_alexnet.training import train
    from keras_alexnet.training.on_workers import train_on_workers

    options = {**TINY, **LINEAR, "epochs": 4, "val_split": 0.3, "output_network": "best-validation-loss"}
    # The first stage (frozen convolutions) on cached activations, as one process caches it; the second on images.
    options.update(recipe="fine-tune", patience=1, calibrate=True, cache_activations=True)
    alone = train(shapes_dir, run_dir=tmp_path / "one", verbose=0, **options)
    with listening() as sockets:
        record = train_on_workers(shapes_dir, workers=2, run_dir=tmp_path / "two", verbose=0, **options)
    # Ray listens on loopback only; beyond it, only each worker's TensorFlow gRPC server, which binds every
    # interface (TensorFlow has no setting for it; the run prints so).
    names = {name for _, name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, names
    beyond = {(pid, name, ip) for pid, name, ip, _ in sockets if not loopback(ip)}
    assert len({pid for pid, _, _ in beyond}) <= 2 and all(ip in ("0.0.0.0", "::") for *_, ip in beyond), beyond
    assert all(name.startswith("ray::") for _, name, _ in beyond), beyond
    recorded = json.loads((tmp_path / "one" / "options.json").read_text())["result"]
    assert record.workers == 2 and set(record.to_dict()) - {"workers"} == set(recorded)
    assert (record.output_epoch, record.epochs_done) == (recorded["output_epoch"], recorded["epochs_done"])
    assert record.calibration["images"] == alone.calibration.images > 0  # the same temperature rule (issue 38)
    assert record.temperature == pytest.approx(alone.temperature, rel=1e-3)
    one, two = _weights(tmp_path / "one" / "model.keras"), _weights(tmp_path / "two" / "model.keras")
    assert one.keys() == two.keys()
    for name in one:  # the same updates, up to float32's summation order across the two workers
        for first, second in zip(one[name], two[name]):
            assert np.max(np.abs(first - second)) < 1e-5, name
    logged = list(csv.DictReader(open(tmp_path / "two" / "log.csv")))
    single = list(csv.DictReader(open(tmp_path / "one" / "log.csv")))
    assert list(logged[0]) == list(single[0]) and len(logged) == len(single) == record.epochs_done
    for mine, theirs in zip(logged, single):  # each worker scores a share of the validation images
        for column in ("val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1", "balanced_accuracy"):
            assert float(mine[column]) == pytest.approx(float(theirs[column]), abs=1e-5), column
    rates = [json.loads((tmp_path / run / "history.json").read_text())["learning_rate"] for run in ("one", "two")]
    np.testing.assert_allclose(rates[1], rates[0], rtol=1e-6)  # the schedule, step by step
    assert not (tmp_path / "two" / "backup").exists() and not (tmp_path / "two" / "best.keras").exists()


@pytest.mark.slow
def test_a_run_stopped_on_one_process_continues_on_workers_as_if_never_stopped(shapes_dir, tmp_path, linear_head):
    """Issue 36: a run continues on the other way of training, with what 0.8.0 refused on workers (the
    piecewise schedule, mixup and CutMix, the moving average, class weights). Stopped after epoch 2 of 4 on
    one process, resumed with --workers 2: the model, log, schedule and record equal one process's
    uninterrupted run (to 1e-5: float32's summation order across the workers)."""
    from keras_alexnet.training import train
    from keras_alexnet.training.on_workers import train_on_workers

    options = {**TINY, **LINEAR, "recipe": "fine-tune-all", "epochs": 4, "val_split": 0.3, "calibrate": True}
    options.update(output_network="best-validation-loss", lr_schedule="piecewise", drop_period=1, drop_factor=0.5)
    options.update(mixup=0.4, cutmix=1.0, ema=0.9, class_weight="auto")
    alone = train(shapes_dir, run_dir=tmp_path / "whole", verbose=0, **options)
    with pytest.raises(KeyboardInterrupt):
        train(shapes_dir, run_dir=tmp_path / "run", verbose=0, callbacks=[StopAfter(2)], **options)
    record = train_on_workers(shapes_dir, workers=2, run_dir=tmp_path / "run", resume=True, verbose=0)
    recorded = json.loads((tmp_path / "whole" / "options.json").read_text())["result"]
    assert record.workers == 2 and set(record.to_dict()) - {"workers"} == set(recorded)
    assert (record.output_epoch, record.epochs_done) == (recorded["output_epoch"], 4)
    assert record.temperature == pytest.approx(alone.temperature, rel=1e-3)
    whole, resumed = _weights(tmp_path / "whole" / "model.keras"), _weights(tmp_path / "run" / "model.keras")
    assert whole.keys() == resumed.keys()
    for name in whole:
        for first, second in zip(whole[name], resumed[name]):
            assert np.max(np.abs(first - second)) < 1e-5, name
    rows = [list(csv.DictReader(open(tmp_path / run / "log.csv"))) for run in ("whole", "run")]
    assert [row["epoch"] for row in rows[1]] == ["0", "1", "2", "3"] and list(rows[0][0]) == list(rows[1][0])
    for mine, theirs in zip(rows[1], rows[0]):  # each worker scores a share of the validation images
        for column in ("val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1", "balanced_accuracy"):
            assert float(mine[column]) == pytest.approx(float(theirs[column]), abs=1e-5), column
    rates = [json.loads((tmp_path / run / "history.json").read_text())["learning_rate"] for run in ("whole", "run")]
    np.testing.assert_allclose(rates[1], rates[0], rtol=1e-6)  # the schedule, step by step
    assert not (tmp_path / "run" / "backup").exists() and not (tmp_path / "run" / "ray_train").exists()


@pytest.mark.slow
def test_a_lost_worker_restarts_the_group_from_the_last_backup(shapes_dir, tmp_path):
    """``--recipe auto --workers 2``: the rule picks fine-tune (two stages on the workers); a worker's node
    is lost mid-run and Ray Train restarts the group from the last backup."""
    from keras_alexnet.experiments.auto import resolve_auto
    from keras_alexnet.training.on_workers import train_on_workers

    def resolve(options, train_set, val_set, run):
        return resolve_auto(options, train_set, val_set, run.path)

    cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": FAST_DEATH})
    workers = [cluster.add_node(num_cpus=1) for _ in range(3)]  # two for the group, one to restart it on
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    run, epochs, done = tmp_path / "run", 8, {}

    def train_it():
        try:
            done["record"] = train_on_workers(
                shapes_dir,
                workers=2,
                run_dir=run,
                verbose=0,
                epochs=epochs,
                val_split=0.3,
                recipe="auto",
                auto_budget=0,
                freeze_epochs=3,  # the rule's 5 head-only steps or more: fine-tune, two stages
                resolve=resolve,
                **TINY,
            )
        except BaseException as error:
            done["error"] = error

    thread = threading.Thread(target=train_it)
    try:
        thread.start()
        metadata, where = run / "backup" / "training_metadata.json", run / "ray_train" / "worker-1.json"
        deadline = time.time() + 300
        while time.time() < deadline and thread.is_alive():
            if metadata.exists() and where.exists() and json.loads(metadata.read_text())["epoch"] >= 2:
                break
            time.sleep(0.1)
        kept = []  # one backup on the workers' run directory, as on one process (each replaces the last)
        for _ in range(20):
            kept = list((run / "backup").glob("*.weights.h5"))
            if len(kept) == 1:
                break
            time.sleep(0.1)
        assert len(kept) == 1, kept
        node_id = json.loads(where.read_text())["node_id"]
        cluster.remove_node(next(node for node in workers if node.node_id == node_id))
        thread.join(timeout=600)
        assert not thread.is_alive() and "error" not in done, done.get("error")
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert done["record"].epochs_done == epochs
    assert json.loads((run / "auto.json").read_text())["recipe"] == "fine-tune"  # the rule's pick: two stages
    assert json.loads((run / "options.json").read_text())["recipe"] == "fine-tune"
    with open(run / "log.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(epochs))  # none twice
    assert (run / "model.keras").exists() and not (run / "backup").exists()


@pytest.mark.slow
def test_train_honours_a_tf_config_set_by_the_users_launcher(shapes_dir, tmp_path):
    ports = free_ports(2)
    run = tmp_path / "run"
    argv = ["train", "--data", str(shapes_dir), "--run-dir", str(run), "--epochs", "2", "--val-split", "0.3"]
    argv += ["--architecture", "tiny", "--weights", "none", "--batch-size", "8", "--recipe", "fine-tune-all"]
    argv += ["--no-tensorboard", "--output-network", "last"]
    processes = []
    for index in range(2):
        config = {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
        env = {**os.environ, "TF_CONFIG": json.dumps(config)}
        processes.append(
            subprocess.Popen(
                [*CLI, *argv],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-2000:]
    # The chief writes the model and the report (above training), the other worker is quiet.
    assert "model: " in outputs[0][0] and "report: " in outputs[0][0] and outputs[1][0].strip() == ""
    assert "Per class" in (run / "report.html").read_text()
    assert [row["epoch"] for row in csv.DictReader(open(run / "log.csv"))] == ["0", "1"]
    assert json.loads((run / "options.json").read_text())["result"]["workers"]


def test_workers_flags_are_checked_by_the_parser_and_before_any_work(shapes_dir, tmp_path, capsys):
    for bad in ("0", "-2"):
        with pytest.raises(SystemExit):
            main(["train", "--data", str(shapes_dir), "--workers", bad])
        assert "--workers: " in capsys.readouterr().err
    run = tmp_path / "r"
    argv = ["train", "--data", str(shapes_dir), "--run-dir", str(run), "--workers", "2", "--val-split", "0.3"]
    # Every option runs on workers (0.9); the refusal a field may still declare names the flag and its reason.
    import dataclasses

    from keras_alexnet._utils.flags import option
    from keras_alexnet.training.multi_worker import check_supported

    Local = dataclasses.make_dataclass(
        "Local", [("gather", bool, option(False, "gather on one host", value=True, workers="it needs one host"))]
    )
    check_supported(Local())  # the default: nothing asked of the workers
    with pytest.raises(ValueError, match=r"does not run --gather \(it needs one host\): train on one worker"):
        check_supported(Local(gather=True))
    assert main([*argv, "--cpus-per-worker", "64", "--architecture", "tiny", "--weights", "none"]) == 2
    error = capsys.readouterr().err
    assert (
        error.count("\n") == 1 and "each worker asks for 64 CPUs and 0 GPUs, which no node of the cluster has" in error
    )
    assert not run.exists()  # a refused command creates nothing, not even an empty folder


@pytest.mark.slow
def test_several_devices_of_one_machine_train_like_one(tmp_path):
    """``train(devices=...)``: MirroredStrategy over two logical CPU devices, in a process of its own (the
    devices are set before TensorFlow starts), equals one device with later-convs' freezing and factors."""
    script = Path(__file__).parent / "devices_check.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["max_diff"] < 1e-5 and result["conv5_moved"] > 0


def test_more_devices_than_the_machine_has_are_named(shapes_dir, tmp_path, capsys):
    argv = ["train", "--data", str(shapes_dir), "--run-dir", str(tmp_path / "r"), "--devices", "2"]
    assert main([*argv, "--architecture", "tiny", "--weights", "none", "--val-split", "0.3"]) == 2
    assert "--devices 2: this machine shows TensorFlow 0 GPU(s)" in capsys.readouterr().err


def test_a_shared_activation_cache_is_computed_once_by_trials_that_start_together(tmp_path):
    """Two trials that need the same frozen activations: one computes them, the other waits and loads them;
    a lock left by a process that is gone is taken over."""
    from keras_alexnet.training.activation_cache import (
        CachedActivations,
        claim_shared_activations,
        save_shared_activations,
    )

    key = ("pool5", ("a.png", "b.png"), "imagenet", "alexnet", "float32")
    found, lock = claim_shared_activations(tmp_path, key)
    assert found is None and lock.exists()
    waited = {}

    def second():
        waited["cache"], waited["lock"] = claim_shared_activations(tmp_path, key, poll=0.05)

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # waiting for the first, not computing
    save_shared_activations(
        tmp_path, key, CachedActivations(np.ones((2, 3), np.float32), np.array([0, 1]), on_disk=False)
    )
    lock.unlink()
    thread.join(timeout=10)
    assert waited["lock"] is None and np.array_equal(waited["cache"].labels, [0, 1])
    other = ("pool5", ("c.png",), "imagenet", "alexnet", "float32")
    _, lock = claim_shared_activations(tmp_path, other)
    lock.write_text(f"{socket.gethostname()} 999999999")  # a process that no longer runs
    found, taken = claim_shared_activations(tmp_path, other, poll=0.05)
    assert found is None and taken == lock


# A process that joins the cluster at argv[1] and prints how the join ended and how long it took.
JOIN = """import sys, time
from keras_alexnet._utils.ray_cluster import connect
started = time.monotonic()
try:
    with connect(sys.argv[1]):
        ended = "joined"
except Exception as error:
    ended = type(error).__name__
print(ended, time.monotonic() - started)
"""


@pytest.mark.slow
def test_a_ray_started_here_refuses_a_client_without_its_token_even_with_authentication_off(shapes_dir, tmp_path):
    """The command's own Ray listens on loopback only (nothing answers at the machine's network address) and
    requires the token, whatever RAY_AUTH_MODE the user set: another user of the machine joining through loopback
    without it (`keras-alexnet train --workers 2 --address`, as typed, with authentication off) is refused within
    seconds, is told why and what to set, and leaves nothing behind. The Ray in a process of its own: Ray's settings
    are the process's."""
    client = [KERAS_ALEXNET, "train", "--data", str(shapes_dir), "--workers", "2", "--run-dir", str(tmp_path / "x")]
    client += ["--architecture", "tiny", "--weights", "none", "--no-report", "--no-tensorboard"]
    script = f"""
import json, os, signal, socket, subprocess, sys
import psutil
from keras_alexnet._utils.ray_cluster import connect
JOIN = {JOIN!r}
addresses = [e.address for es in psutil.net_if_addrs().values() for e in es
             if e.family == socket.AF_INET and not e.address.startswith("127.")]
numbers = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
before = [signal.getsignal(number) for number in numbers]
with connect(None) as ray:
    kept = [signal.getsignal(number) for number in numbers] == before
    port = ray.get_runtime_context().gcs_address.rsplit(":", 1)[1]
    host = "127.0.0.1"
    outside = [socket.socket().connect_ex((address, int(port))) for address in addresses]
    env = {{k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}}
    env["RAY_AUTH_MODE"] = "disabled"
    done = subprocess.run({client!r} + ["--address", f"{{host}}:{{port}}"], env=env, capture_output=True, text=True,
                          timeout=180)
    # The join alone, timed without the command's start (TensorFlow's import takes 5-15 s on a busy machine).
    join = subprocess.run([sys.executable, "-c", JOIN, f"{{host}}:{{port}}"], env=env, capture_output=True, text=True,
                          timeout=180)
print(json.dumps({{"code": done.returncode, "stderr": done.stderr, "join": join.stdout.strip().splitlines()[-1:],
                  "outside": outside, "kept": kept}}))
"""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # the user turned authentication off
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 2 and "requires token authentication" in result["stderr"], result["stderr"][-2000:]
    assert "RAY_AUTH_MODE=token" in result["stderr"] and not (tmp_path / "x").exists()
    # Said at once: Ray's own join retries a refused token for 20 s (RELIABILITY 155).
    refused, seconds = result["join"][0].split()
    assert refused == "ClusterError" and float(seconds) < 10, result["join"]
    assert all(code == errno.ECONNREFUSED for code in result["outside"]), result["outside"]  # loopback only
    # ray.init sets SIGTERM to its own sys.exit (`compare` ended with exit 15 and no line): connect() puts the
    # process's handlers back.
    assert result["kept"]
