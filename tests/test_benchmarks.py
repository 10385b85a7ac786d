"""The benchmark command runs and prints what a reader relies on: a finite ratio for every row measured
against PyTorch (the numbers themselves are not tested: speed lives in benchmarks/)."""

import math
import re
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
    compared = [line for line in run.stdout.splitlines() if " img/s " in line and "torch" in line]
    assert len(compared) >= 4, run.stdout[-2000:]  # inference and the three recipes' training, at least
    for line in compared:
        found = re.search(r"ratio\s+(\S+)$", line.strip())
        assert found, f"no ratio in {line!r}"
        ratio = float(found.group(1))
        assert math.isfinite(ratio) and ratio > 0, line
