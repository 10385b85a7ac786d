"""Importing the package asks TensorFlow for its pooling CPU allocator, unless the user chose."""

import os
import subprocess
import sys

PROBE = "import keras_alexnet, os; print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'])"


def _probe(**env):
    base = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_import_turns_the_pooled_allocator_on():
    assert _probe() == "true"


def test_the_users_choice_wins():
    assert _probe(TF_CPU_ALLOCATOR_USE_BFC="false") == "false"
