"""The benchmark command runs (its numbers are not tested: speed lives in benchmarks/)."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "run.py"


@pytest.mark.slow
@pytest.mark.torch
def test_benchmark_command_runs_in_quick_mode():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--precision-rows"], capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for label in (
        "inference",
        "train:frozen-features",
        "train:fine-tune-all",
        "train:later-convs",
        "bfloat16",
        "input pipeline",
        "activation cache",
        "conversion",
    ):
        assert label in run.stdout, label
