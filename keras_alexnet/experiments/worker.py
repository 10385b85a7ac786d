"""One run of a comparison in a process of its own: ``python .../experiments/worker.py JOB.json``.

Loads no TensorFlow at import, so that TensorFlow's start-up lines can be hidden before it
loads (``quiet_tensorflow``); the work is ``compare.run_job``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from keras_alexnet._utils.runtime import quiet_tensorflow


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
    # TensorFlow loads with the comparison: its start-up lines are hidden unless the user shows them.
    with quiet_tensorflow(verbose=job["tensorflow_logs"]):
        from keras_alexnet.experiments.compare import run_job
    try:
        return run_job(job)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the comparison says what was kept
        return 130


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder: its modules are the package's, imported as such
    code = main()
    if code == 130:  # stopped mid-pipeline, the teardown can hang (see keras_alexnet.cli.console)
        os._exit(code)
    sys.exit(code)
