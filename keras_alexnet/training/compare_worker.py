"""One run of a comparison in a process of its own: ``python -m keras_alexnet.training.compare_worker JOB.json``.

Kept free of TensorFlow at import, so that TensorFlow's start-up lines can be hidden
before it loads; the work is ``compare.run_job``.
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
    from keras_alexnet._utils.runtime import quiet_tensorflow

    with quiet_tensorflow(job["tensorflow_logs"]):
        from keras_alexnet.training.compare import run_job
    return run_job(job)


if __name__ == "__main__":
    sys.exit(main())
