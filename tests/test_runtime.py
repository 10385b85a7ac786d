"""Importing the package asks TensorFlow for its pooling CPU allocator, unless the user chose; a command's own
process imports Keras without the optional libraries no command uses."""

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


_COMMAND_PROCESS = """
import os, sys
from keras_alexnet._utils.runtime import KERAS_EXTRAS
from keras_alexnet._utils.signals import CONTROL
os.environ[CONTROL] = str(os.open(os.devnull, os.O_WRONLY))  # as the supervisor starts the command's process
sys.argv = ["keras-alexnet", "layers", "--architecture", "tiny"]
from keras_alexnet.cli import console
assert console() == 0
print(sorted(name for name in KERAS_EXTRAS if name in sys.modules), "keras" in sys.modules)
import matplotlib.pyplot, pandas, sklearn.decomposition  # what a command needs later still imports
from keras_alexnet._utils.plotting import pyplot
pyplot()
print(sorted(name for name in KERAS_EXTRAS if name in sys.modules if name != "cv2"))
"""

_LIBRARY = """
import sys
import keras_alexnet.model
print("sklearn" in sys.modules, "pandas" in sys.modules)
"""


def test_a_commands_process_imports_keras_without_its_extras_and_a_library_user_keeps_them():
    """The command's process (what the supervisor starts) loads no scikit-learn, matplotlib, OpenCV or pandas
    while Keras imports (1.4 s of a 5.4 s `predict`: benchmarks/startup.py); they still import when a command draws.
    ``import keras_alexnet`` in a user's program changes nothing of Keras's (keras.wrappers keep scikit-learn)."""
    done = subprocess.run([sys.executable, "-c", _COMMAND_PROCESS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "total params" in done.stdout and done.stdout.strip().splitlines()[-2:] == [
        "[] True",
        "['matplotlib', 'pandas', 'sklearn']",
    ], done.stdout[-500:]
    library = subprocess.run([sys.executable, "-c", _LIBRARY], capture_output=True, text=True, timeout=300)
    assert library.returncode == 0, library.stderr[-2000:]
    assert library.stdout.strip().splitlines()[-1] == "True True"
