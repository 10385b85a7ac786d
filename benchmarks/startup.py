"""A command's start: Keras imported without the extras no command uses, against Keras's own import.

    python benchmarks/startup.py [--rounds 5]

Keras imports scikit-learn, matplotlib, OpenCV and pandas whenever they are installed (for
``keras.wrappers``, ``keras.visualization`` and DataFrames as ``fit``'s input); the process a
``keras-alexnet`` command runs in hides them while Keras loads (``runtime.import_keras_alone``). In
fresh processes, alternated, each row the median over ``--rounds``:

- ``import keras`` against ``import_keras_alone()``;
- ``keras-alexnet predict`` (a tiny model, 8 generated images): ``cli.main(argv)`` as a library
  caller runs it (Keras's own import) against ``cli.main(argv, own_process=True)``, what the console
  script's command process runs.

Prints seconds, the ratio of the medians and the CPU; ``RESULTS.md`` keeps the table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import cpu_flags, cpu_name  # noqa: E402  (the same machine description as run.py)

PLAIN_IMPORT = "import keras"
ALONE_IMPORT = "from keras_alexnet._utils.runtime import import_keras_alone; import_keras_alone()"
COMMAND = "import sys; from keras_alexnet.cli import main; sys.exit(main(sys.argv[1:], own_process={}))"


def seconds(code, *args):
    """Wall seconds of ``python -c code args`` in a fresh process (which must succeed)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def prepare(folder):
    """A tiny saved model and a folder of 8 images: what ``predict`` reads."""
    from keras_alexnet.datasets import generate_shapes

    data = generate_shapes(folder / "data", per_class=2, size=64, seed=0)
    argv = ["train", "--data", str(data), "--epochs", "1", "--run-dir", str(folder / "run"), "--no-report"]
    argv += [
        "--architecture",
        "tiny",
        "--weights",
        "none",
        "--batch-size",
        "4",
        "--no-tensorboard",
        "--val-split",
        "0.5",
    ]
    subprocess.run([sys.executable, "-m", "keras_alexnet.cli", *argv], check=True, capture_output=True, timeout=600)
    return ["predict", "--model", str(folder / "run" / "model.keras"), str(data)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        predict = prepare(Path(scratch))
        rows = {
            "import": ((PLAIN_IMPORT,), (ALONE_IMPORT,)),
            "keras-alexnet predict": ((COMMAND.format(False), *predict), (COMMAND.format(True), *predict)),
        }
        times = {label: ([], []) for label in rows}
        for _ in range(args.rounds):  # alternated, so that both see the same machine
            for label, (before, after) in rows.items():
                times[label][0].append(seconds(*before))
                times[label][1].append(seconds(*after))
    print(f"CPU: {cpu_name()} (flags: {cpu_flags()}); {args.rounds} rounds, medians")
    print("| | Keras's own import (s) | without the extras (s) | ratio |")
    print("|---|---|---|---|")
    for label, (before, after) in times.items():
        plain, alone = statistics.median(before), statistics.median(after)
        print(f"| {label} | {plain:.2f} | {alone:.2f} | {plain / alone:.2f}x |")


if __name__ == "__main__":
    main()
