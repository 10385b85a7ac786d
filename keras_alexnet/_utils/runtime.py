"""Process-wide TensorFlow settings that keras-alexnet applies when imported,
and what the choices that depend on the hardware ask of TensorFlow.

TensorFlow takes CPU tensors from ``malloc`` unless told otherwise. Tensors the
size of fc6's weight gradient (151 MB) are then mapped and unmapped on every
training step and every page is faulted in again; TensorFlow's pooling BFC
allocator (the one it always uses on GPUs) keeps those pages (benchmarks/ANALYSIS.md
has the measured gain). The setting only counts if it is made before TensorFlow allocates its first
tensor, which is why ``import keras_alexnet`` makes it; importing TensorFlow or
Keras earlier is fine, running an op earlier is not.
"""

from __future__ import annotations

import contextlib
import os
import sys

CPU_ALLOCATOR_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"


def prefer_pooled_cpu_allocator():
    """Ask TensorFlow for its BFC allocator on the CPU unless the user chose.

    Set ``TF_CPU_ALLOCATOR_USE_BFC=false`` in the environment to keep malloc.
    Returns the value in effect.
    """
    return os.environ.setdefault(CPU_ALLOCATOR_VARIABLE, "true")


def tensorflow_uses_gpu():
    """True when TensorFlow places work on a GPU (one visible to it, not hidden by the user).

    Decides the CPU-only choices: XLA off and the forward-convolution gradients.
    """
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


@contextlib.contextmanager
def quiet_tensorflow(verbose=False, *, own_process=False):
    """Import TensorFlow with its C++ start-up lines (CUDA probes, oneDNN, CPU flags) hidden.

    TF_CPP_MIN_LOG_LEVEL silences most of them; a few are printed by absl before it
    is read, so standard error is pointed at /dev/null while TensorFlow loads. ``own_process``: the
    process runs one command and nothing else (the one the console script starts, a comparison's
    trial, a Ray Train worker), so Keras is imported too, without its optional extras (``import_keras_alone``).
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    loading = not verbose and "tensorflow" not in sys.modules
    with stderr_to_devnull() if loading else contextlib.nullcontext():
        if own_process:
            import_keras_alone()
        elif loading:
            import tensorflow  # noqa: F401
    yield


# Libraries Keras imports whenever they are installed, for features no command uses: scikit-learn (keras.wrappers),
# matplotlib and OpenCV (keras.visualization), pandas (DataFrames as fit's input). The commands import
# matplotlib themselves where they draw.
KERAS_EXTRAS = ("sklearn", "matplotlib", "cv2", "pandas")


def import_keras_alone():
    """Import Keras (and TensorFlow) with ``KERAS_EXTRAS`` hidden while it loads: 1.5 s of the 4.8 s that
    ``import keras`` takes (benchmarks/startup.py). They import normally afterwards; only Keras's own features
    that need them (``keras.wrappers``, ``keras.visualization``) stay off in the process, which is why only a
    process that runs nothing but a command does this, never ``import keras_alexnet``."""
    if "keras" in sys.modules:
        return
    hidden = [name for name in KERAS_EXTRAS if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))  # `import sklearn` raises ImportError, which Keras expects
    try:
        import keras  # noqa: F401
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


# Set by the CLI's --verbose: show what TensorFlow's native code prints (TFLite's delegate lines too).
VERBOSE = {"native": False}


@contextlib.contextmanager
def environment(**values):
    """The environment variables ``values`` (name=text) set while the block runs, each back as it was after it."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def stderr_to_devnull():
    """Point standard error (the file descriptor: native code's writes too) at /dev/null while the block runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


@contextlib.contextmanager
def quiet_native_output():
    """Hide what native code writes to standard error while the block runs (TFLite's "Created TensorFlow Lite
    XNNPACK delegate" line) and Python's warnings (tf.lite.Interpreter's deprecation), unless the CLI
    was given --verbose. Errors still raise as exceptions."""
    if VERBOSE["native"]:
        yield
        return
    import warnings

    with warnings.catch_warnings(), stderr_to_devnull():
        warnings.simplefilter("ignore")
        yield


def process_alive(pid):
    """Whether a process with this PID runs (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
