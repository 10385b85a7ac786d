"""Learning-rate factors, freezing and class weights hold under tf.distribute (two logical CPU devices)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_ports

SCRIPT = Path(__file__).parent / "distributed_check.py"


@pytest.mark.slow  # several processes or full-size mixed precision: in the full tier
def test_mirrored_strategy_trains_like_one_device():
    # Graph mode: XLA with MirroredStrategy over logical CPU devices hits TensorFlow's
    # "tf.Variable on a different device" limitation; jit_compile is tested on one device.
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["a_unchanged"]  # factor 0 under distribution
    assert result["moved"] > 1e-3  # the rest trained
    # Gradients are averaged over replicas: same updates as one device, up to float32 summation order.
    assert result["max_diff"] < 1e-5


@pytest.mark.slow  # several processes or full-size mixed precision: in the full tier
def test_two_worker_processes_on_loopback():
    """MultiWorkerMirroredStrategy, two processes on 127.0.0.1, factors and class weights intact."""
    script = Path(__file__).parent / "multiworker_check.py"
    ports = ",".join(map(str, free_ports(2)))
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), ports, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=300) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["workers"] == 2 and result["a_unchanged"]
        assert result["max_diff"] < 1e-5
        assert result["weights_matter"] > 1e-3  # the class weights changed the training
