"""The benchmark command runs and prints what a reader relies on: a finite ratio for every row measured
against PyTorch (the numbers themselves are not tested: speed lives in benchmarks/)."""

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_temperature_size_tables_score_the_rule_against_the_free_fit(tmp_path):
    """benchmarks/temperature_size.py's analysis (no training): an underconfident model's probabilities, the
    free fit and the rule scored on held-out images, one row per size, the section replacing its old self
    below what CONFIDENCE.md already holds."""
    sys.path.insert(0, str(SCRIPT.parent.parent))
    from benchmarks.temperature_size import SECTION, SIZES, measure, section, write_section

    rng = np.random.default_rng(0)

    def images(count):
        logits = rng.normal(scale=3.0, size=(count, 4))
        labels = np.array([rng.choice(4, p=p) for p in _softmax(logits * 2.0)])  # the truth is sharper
        return _softmax(logits), labels

    pool, pool_labels = images(200)
    held, held_labels = images(1000)
    arrays = {"pool": pool, "pool_labels": pool_labels, "held_out": held, "held_out_labels": held_labels}
    rows = measure(arrays, seed=0)
    assert sorted(rows) == list(SIZES) and len(rows[6]) == 40 and len(rows[200]) == 1
    for size in (100, 200):  # enough images: both sharpen, and both beat T = 1 on held-out NLL
        for row in rows[size]:
            assert row["fitted"] < 0.8 and row["rule"] < 0.8
            assert row["rule_scores"][0] < row["plain_scores"][0] and row["fitted_scores"][0] < row["plain_scores"][0]
    assert np.median([abs(np.log(row["rule"])) for row in rows[6]]) < np.median(
        [abs(np.log(row["fitted"])) for row in rows[6]]
    )  # few images: the rule stays nearer 1
    per_seed = {0: {"rows": rows, "held_out_accuracy": 0.5, "held_out_count": 1000}}
    text = section({"synthetic": per_seed}, [0], quick=True, minutes=0.0)
    assert text.count("\n| ") == 1 + len(SIZES) and "### synthetic (1000 held-out images)" in text
    out = tmp_path / "CONFIDENCE.md"
    out.write_text("# Honest confidence\n\nearlier sections\n\n" + SECTION + "\nold numbers\n")
    write_section(out, text)
    written = out.read_text()
    assert written.startswith("# Honest confidence\n\nearlier sections\n\n") and "old numbers" not in written
    assert written.count(SECTION) == 1


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
