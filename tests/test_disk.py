"""A full disk (_utils/disk.py), end to end: at the end of training and while backing up, the run is kept,
the error is one line and the run resumes. Nothing the user made is lost."""

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess

import keras
import pytest
from conftest import CLI

from keras_alexnet.cli import main
from keras_alexnet.layers import class_names_of
from keras_alexnet.model import load_model
from keras_alexnet.training import train

pytestmark = pytest.mark.slow

TINY = ["--architecture", "tiny", "--weights", "none", "--batch-size", "8", "--no-tensorboard", "--quiet"]


SHAPES = {"per_class": 8, "size": 72, "seed": 1}  # conftest.shapes_dir


def _can_mount():
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def small_disk(folder, size):
    """``folder`` on a tmpfs of ``size`` bytes (root), or None where none can be mounted."""
    folder.mkdir(parents=True)
    if (
        not _can_mount()
        or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode
    ):
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def _cli(*args, limit_file_size=None):
    """``keras-alexnet ARGS`` in a fresh process; ``limit_file_size``: a ``ulimit -f`` in bytes."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        preexec_fn=limit if limit_file_size else None,
    )


def _errors(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


class _FillTheDiskAtTheEnd(keras.callbacks.Callback):
    """Leaves ``leave`` bytes free on ``disk`` (or limits file sizes to it) once the last epoch is done."""

    def __init__(self, disk, leave):
        super().__init__()
        self.disk, self.leave, self.limit = disk, leave, None

    def on_train_end(self, logs=None):
        if self.disk is not None:
            (self.disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(self.disk).free - self.leave))
        else:
            self.limit = resource.getrlimit(resource.RLIMIT_FSIZE)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.leave, self.limit[1]))

    def free(self):
        if self.disk is not None:
            (self.disk / "filler").unlink()
        elif self.limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, self.limit)


def test_a_full_disk_at_the_final_save_keeps_the_run_and_resume_writes_the_model(shapes_dir, tmp_path, capsys):
    """Item 1: the backup outlives a failed final save, which names the space; --resume then only saves."""
    from keras_alexnet._utils.disk import DiskFullError

    with small_disk(tmp_path / "disk", 3 << 20) as disk:
        run = (disk or tmp_path) / "run"
        filler = _FillTheDiskAtTheEnd(disk, 100_000)
        try:
            with pytest.raises(DiskFullError, match=r"(no space left in|file-size limit).*model.keras.*--resume"):
                train(
                    shapes_dir,
                    run_dir=run,
                    val_split=0.3,
                    epochs=2,
                    architecture="tiny",
                    weights=None,
                    batch_size=8,
                    tensorboard=False,
                    verbose=0,
                    callbacks=[filler],
                )
        finally:
            filler.free()
        assert not (run / "model.keras").exists()
        assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 2
        assert main(["train", "--data", str(shapes_dir), "--run-dir", str(run), "--resume", "--quiet"]) == 0
        assert (run / "model.keras").exists() and not (run / "backup").exists()
        assert len((run / "log.csv").read_text().splitlines()) == 1 + 2  # no epoch repeated
        names = sorted(p.name for p in shapes_dir.iterdir())
        assert class_names_of(load_model(run / "model.keras")) == names  # the output network, from best.keras
        capsys.readouterr()
        assert main(["predict", "--model", str(run / "model.keras"), "--top", "1", str(shapes_dir / "star")]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first.split(": ", 1)[1].split()[0] in names


def test_a_full_disk_while_backing_up_is_one_line_and_the_previous_backup_resumes(shapes_dir, tmp_path):
    """Item 6: no traceback, no segmentation fault: one line, exit 1, the previous backup intact."""
    train_args = ["train", "--data", shapes_dir, "--val-split", "0.3", "--epochs", "3", *TINY]
    # Epoch 1's files (a 0.34 MB backup with Adam's state, best.keras, the plot) fit in 0.8 MB; a
    # second backup beside the first does not.
    with small_disk(tmp_path / "disk", 800_000) as disk:
        if disk is None:  # no tmpfs: a file-size limit below a backup's size stops the first one
            done = _cli(*train_args, "--run-dir", tmp_path / "run", limit_file_size=200_000)
            assert done.returncode == 1, done.stderr
            assert "Traceback" not in done.stderr and len(_errors(done.stderr)) == 1
            assert "file-size limit" in _errors(done.stderr)[0]
            return
        run = disk / "run"
        done = _cli(*train_args, "--run-dir", run)
        assert done.returncode == 1, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        (error,) = _errors(done.stderr)
        assert f"no space left in {run / 'backup'} for the backup after epoch 2" in error
        assert "MB are free" in error and "backup of epoch 1 is intact" in error and "--resume" in error
        assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 1
        assert not list((run / "backup").glob(".tmp-*"))
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)  # space freed
        assert main(["train", "--data", str(shapes_dir), "--run-dir", str(run), "--resume", "--quiet"]) == 0
        assert (run / "model.keras").exists() and not (run / "backup").exists()
        assert len((run / "log.csv").read_text().splitlines()) == 1 + 3
