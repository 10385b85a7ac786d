"""More than one machine (issue 28), on one machine over loopback: a two-node Ray cluster made with
``ray.cluster_utils.Cluster`` (one CPU per node), the tiny architecture."""

import csv
import json
import threading
import time

import pytest

from keras_alexnet.cli import main
from keras_alexnet.datasets import generate_shapes
from keras_alexnet.experiments import Candidate, Cluster, compare
from keras_alexnet.experiments.engine import ClusterError, check_shared, connect

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster as RayCluster  # noqa: E402

TINY = {"architecture": "tiny", "weights": None, "batch_size": 8, "report": False}
TWO = [Candidate("frozen-features", "compact"), Candidate("later-convs", "compact")]


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    return generate_shapes(tmp_path_factory.mktemp("shapes") / "data", per_class=6, size=64, seed=5)


@pytest.fixture
def two_nodes():
    """A head that runs no trial and two worker nodes of one CPU each; the test's process is the driver."""
    cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 0})
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
    out, epochs = tmp_path / "cmp", 40
    one = [Candidate("fine-tune-all", "compact")]
    done = {}

    def run():
        try:
            done["comparison"] = compare(shapes_dir, candidates=one, seeds=2, out=out, epochs=epochs, verbose=0, **TINY)
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
    assert len(done["comparison"].runs) == 2
    record = json.loads((run_dir / "result.json").read_text())
    assert record["node_id"] != node_id  # finished on the other node
    resumes = json.loads((run_dir / "resumes.json").read_text())
    assert resumes[0]["from_epoch"] >= 2  # resumed from its own backup, not started again
    with open(run_dir / "log.csv", newline="") as handle:
        epochs_logged = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs_logged == list(range(epochs))  # no epoch trained twice, none missing


def test_an_unreachable_address_is_one_line_within_seconds(shapes_dir, tmp_path, capsys):
    started = time.perf_counter()
    argv = ["compare", "--data", str(shapes_dir), "--out", str(tmp_path / "c"), "--address", "127.0.0.1:9"]
    assert main([*argv, "--seeds", "1", "--recipes", "matlab"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--address 127.0.0.1:9: no Ray cluster answers there" in error
    assert "ray start --head" in error and time.perf_counter() - started < 30
    with pytest.raises(SystemExit):
        main([*argv, "--cpus-per-trial", "0"])  # the parser refuses it


def test_trials_larger_than_any_node_and_out_not_shared_are_refused(shapes_dir, tmp_path, monkeypatch):
    with pytest.raises(ClusterError, match="asks for 64 CPUs and 0 GPUs, which no node of the cluster has"):
        compare(
            shapes_dir, candidates=TWO[:1], seeds=1, out=tmp_path / "c", cluster=Cluster(cpus_per_trial=64), **TINY
        )
    with connect() as started:
        check_shared(started, tmp_path / "shared")  # one machine sees its own folder
        # A node whose mount at that path is another disk: it finds an empty folder there.
        monkeypatch.setattr("keras_alexnet.experiments.engine._path_on_nodes", lambda path: tmp_path / "elsewhere")
        with pytest.raises(ClusterError, match="is not shared with node .*: it cannot see the folder"):
            check_shared(started, tmp_path / "shared")
