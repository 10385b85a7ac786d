"""One run of a comparison in a process of its own: ``python .../training/compare_worker.py JOB.json``.

Kept free of keras_alexnet and TensorFlow at import, so that TensorFlow's start-up lines
can be hidden before it loads; the work is ``compare.run_job``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path


def _exit_with_parent(parent):
    """End this process when the comparison that started it is gone (it would keep the run's lock)."""

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main(argv=None):
    job = json.loads(Path((argv if argv is not None else sys.argv[1:])[0]).read_text())
    _exit_with_parent(job["parent"])
    if job["tensorflow_logs"]:
        from keras_alexnet.training.compare import run_job
    else:
        # ``import keras_alexnet`` loads TensorFlow at once, and absl prints a few start-up lines
        # before TF_CPP_MIN_LOG_LEVEL is read: standard error points at /dev/null meanwhile.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        sys.stderr.flush()
        saved = os.dup(2)
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                from keras_alexnet.training.compare import run_job
            finally:
                os.dup2(saved, 2)
                os.close(saved)
    return run_job(job)


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder: its modules are the package's, imported as such
    sys.exit(main())
