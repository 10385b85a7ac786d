"""The command line as a user meets it: fast help, examples, no TensorFlow noise, shared choices."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI, KERAS_ALEXNET, TINY_FLAGS, free_ports
from PIL import Image

from keras_alexnet.cli import EXAMPLES, build_parser, main

SHAPES = {"per_class": 4, "size": 64, "seed": 2}  # conftest.shapes_dir


def test_help_needs_no_tensorflow():
    code = (
        "import sys; sys.argv = ['keras-alexnet', '--help']\n"
        "from keras_alexnet.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'tensorflow not loaded')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("tensorflow not loaded") and "usage: keras-alexnet" in done.stdout


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_every_subcommand_has_a_description_and_an_example(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = capsys.readouterr().out
    assert f"example: {EXAMPLES[command]}" in text and EXAMPLES[command].split()[1] == command
    description = text.split("\n\n")[1]
    assert description.strip() and description.strip()[0].isupper()


@pytest.mark.skipif(not Path(KERAS_ALEXNET).exists(), reason="the console script is installed by `pip install -e .`")
@pytest.mark.slow  # several processes or full-size mixed precision: in the full tier
def test_no_tensorflow_start_up_lines_unless_verbose():
    quiet = subprocess.run([KERAS_ALEXNET, "layers", "--recipe", "matlab"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "fc8" in quiet.stdout
    assert quiet.stderr == "", quiet.stderr
    loud = subprocess.run(
        [KERAS_ALEXNET, "--verbose", "layers"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert loud.returncode == 0 and loud.stderr  # TensorFlow's own lines, shown on request


def test_bad_file_hint_names_the_flag(tmp_path, capsys):
    from keras_alexnet.cli import main

    data = tmp_path / "data"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        (data / name / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["train", "--data", str(data), "--fail-on-bad-file", "--run-dir", str(tmp_path / "r")]) == 2
    assert "leave out --fail-on-bad-file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "d", "--seed", "-5"], "'-5' is not a seed: give a whole number from 0 to 4294967295"),
        (["compare", "--data", "d", "--time-limit", "-5"], "'-5' is not a positive number"),
        (["lr-find", "--data", "d", "--steps", "0"], "'0' is not a whole number of at least 1"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_version_is_written_once(capsys):
    """``keras-alexnet --version``; the installed package's version is ``keras_alexnet.__version__`` (pyproject
    reads it from there: issue 29, item 1)."""
    from importlib.metadata import version

    import keras_alexnet

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"keras-alexnet {keras_alexnet.__version__}"
    assert version("keras-alexnet") == keras_alexnet.__version__
    project = (Path(keras_alexnet.__file__).parents[1] / "pyproject.toml").read_text()
    assert 'version = "' not in project.split("[tool.")[0] and 'dynamic = ["version"]' in project  # [project]


def test_every_option_default_lives_on_its_field_only():
    """The flags made from the options dataclasses carry no default of their own (argparse.SUPPRESS: the
    namespace holds what was typed), their help shows the field's, and no hand-written flag repeats one."""
    import argparse
    import dataclasses

    from keras_alexnet import options as schemas

    def schema(*classes):
        fields = {f.name: f for cls in classes for f in dataclasses.fields(cls) if f.metadata.get("flag")}
        return fields, {f.metadata["flag"].name or "--" + n.replace("_", "-"): n for n, f in fields.items()}

    training = (schemas.TrainingOptions, schemas.SweepOptions)
    own = {
        "demo": (schemas.DemoOptions,),
        "compare": (*training, schemas.CompareOptions),
        "predict": (*training, schemas.PredictOptions),
        "report": (*training, schemas.ReportOptions),
        "export": (*training, schemas.ExportOptions),
    }
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    # layers --recipe is another option: the recipe whose layer table to show (none: the bare network).
    other = {("layers", "--recipe")}
    seen = set()
    for command, sub in subcommands.choices.items():
        classes = own.get(command, training)
        fields, flags = schema(*classes)
        for action in sub._actions:
            written = set(action.option_strings) & set(flags)
            if any((command, flag) in other for flag in written):
                continue
            for flag in written:
                assert action.dest == flags[flag], f"{command} {flag} is written by hand"
            if action.dest in fields:
                assert action.default is argparse.SUPPRESS, f"{command} {action.option_strings} has its own default"
                default = fields[action.dest].default
                if action.nargs != 0 and default is not None:
                    assert f"(default: {default})" in (action.help or ""), (command, action.option_strings)
                seen.add(id(fields[action.dest]))
    for cls in {cls for classes in (training, *own.values()) for cls in classes}:
        for name, field in schema(cls)[0].items():
            assert id(field) in seen, f"{cls.__name__}.{name} has no flag on any command"


def test_typed_flags_are_what_the_namespace_holds():
    args = build_parser().parse_args(["train", "--data", "d", "--epochs", "5", "--no-report"])
    from keras_alexnet._utils.flags import typed_options
    from keras_alexnet.options import TrainingOptions

    assert typed_options(args, TrainingOptions) == {"epochs": 5, "report": False}


@pytest.mark.slow
def test_the_demo_writes_every_file_it_names(tmp_path):
    """README's first command, small: the files it prints exist (the report comes from keras_alexnet.train)."""
    from keras_alexnet.demo import run_demo

    lines = []
    accuracy = run_demo(out=tmp_path / "demo", per_class=6, epochs=1, print_fn=lines.append)
    assert 0.0 <= accuracy <= 1.0
    named = [line.split(": ", 1)[1].split(" (")[0] for line in lines if ": " in line and "demo_output" not in line]
    paths = [Path(text) for text in named if text.startswith(str(tmp_path))]
    assert {path.name for path in paths} >= {"report.html", "progress.png", "confusion_matrix.png", "savedmodel"}
    assert all(path.exists() for path in paths), [path for path in paths if not path.exists()]


@pytest.mark.parametrize(
    "argv, function, expected",
    [
        (["compare", "--data", "D", "--out", "O"], "keras_alexnet.experiments.compare", "finished runs are kept in O"),
        (["lr-find", "--data", "D"], "keras_alexnet.training.lr_find.lr_find_on_folder", "nothing was written"),
        (
            ["export", "--model", "M", "--format", "tflite", "--out", "x.tflite"],
            "keras_alexnet.model.load_model",
            "nothing was written",
        ),
    ],
    ids=["compare", "lr-find", "export"],
)
def test_ctrl_c_is_one_line_and_exit_130(argv, function, expected, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(function, interrupted)
    assert main(argv) == 130
    error = capsys.readouterr().err.strip()
    assert error.startswith("interrupted") and expected in error and "\n" not in error


def test_a_signal_inside_a_native_call_is_the_interrupt_line_not_a_traceback(monkeypatch, capsys):
    """A signal that lands while numpy's ``__array__`` runs inside a Keras metric reaches the command as CPython's
    SystemError, the KeyboardInterrupt its context (seen once in a fresh clone's suite: SIGTERM to train printed
    a traceback). It ends as Ctrl-C does: one line, exit 130."""

    def interrupted_inside_numpy(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as cause:
            error = SystemError("<built-in method __array__ of numpy.ndarray> returned a result with an exception set")
            error.__cause__ = error.__context__ = cause  # as CPython's _PyErr_FormatFromCause sets them
        try:
            raise error
        except SystemError as wrapped:  # Keras's traceback filter: `raise e.with_traceback(tb) from None`
            raise wrapped from None

    monkeypatch.setattr("keras_alexnet.training.lr_find.lr_find_on_folder", interrupted_inside_numpy)
    assert main(["lr-find", "--data", "D"]) == 130
    error = capsys.readouterr().err.strip()
    assert error.startswith("interrupted") and "nothing was written" in error and "\n" not in error
    monkeypatch.setattr("keras_alexnet.training.lr_find.lr_find_on_folder", lambda *a, **k: [][0])
    with pytest.raises(IndexError):  # any other failure is still itself
        main(["lr-find", "--data", "D"])


def _train_until_backup(argv, run, epochs, act, **popen):
    """``keras-alexnet ARGV`` (a train) in a process of its own: once its backup holds epoch ``epochs`` or later,
    ``act(process)``; then (exit status, stderr), which has no traceback."""
    process = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    metadata = run / "backup" / "training_metadata.json"
    try:
        for _ in range(3000):  # up to 5 minutes on a loaded machine
            if metadata.exists() and json.loads(metadata.read_text())["epoch"] >= epochs:
                break
            assert process.poll() is None, process.communicate()
            subprocess.run(["sleep", "0.1"])
        act(process)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert "Traceback" not in err
    return process.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_in_train_names_the_epoch_and_the_command_that_continues(shapes_dir, tmp_path, sent):
    """SIGTERM (kill, systemd, schedulers; issue 27, item 14) ends a run as Ctrl-C does."""
    run = tmp_path / "run"
    argv = ["train", "--data", str(shapes_dir), "--run-dir", str(run), "--epochs", "500", *TINY_FLAGS, "--quiet"]
    returncode, err = _train_until_backup(
        argv,
        run,
        2,
        lambda process: process.send_signal(sent),
        # As from a terminal: pytest-xdist's workers ignore SIGINT, and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert returncode == 130, err[-2000:]
    metadata = run / "backup" / "training_metadata.json"
    (line,) = [line for line in err.splitlines() if line.startswith("interrupted")]
    epochs = json.loads(metadata.read_text())["epoch"]
    assert line.startswith(f"interrupted after epoch {epochs}; continue with: keras-alexnet train ")
    assert line.endswith(" --resume") and f"--run-dir {run}" in line
    assert not (run / "run.lock").exists()


def test_an_out_that_is_a_file_is_refused_before_any_work(model_file, shapes_dir, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    image = str(next(shapes_dir.rglob("*.png")))
    for argv in (
        ["evaluate", "--model", str(tmp_path / "no_model.keras"), "--data", str(shapes_dir), "--out", str(taken)],
        ["explain", "--model", str(model_file), image, "--out", str(taken)],
    ):
        assert main(argv) == 2
        assert f"--out {taken} is a file" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "no_model.keras"), image, "--out", str(taken)]) == 2
    assert f"--out {taken} exists" in capsys.readouterr().err
    assert taken.read_text() == "mine"


def test_predict_warns_when_the_images_are_far_from_the_training_images(shapes_dir, tmp_path, capsys):
    run = tmp_path / "run"
    grey = tmp_path / "grey"
    for name in os.listdir(shapes_dir):
        for index, file in enumerate(sorted((shapes_dir / name).iterdir())):
            (grey / name).mkdir(parents=True, exist_ok=True)
            Image.open(file).convert("L").convert("RGB").save(grey / name / f"{index}.png")
    argv = ["train", "--data", str(grey), "--run-dir", str(run), "--epochs", "1", "--quiet"]
    assert main(argv + TINY_FLAGS) == 0
    colour = tmp_path / "colour"
    colour.mkdir()
    for index in range(4):
        Image.fromarray(np.asarray([[[220, 30, 40]]], np.uint8).repeat(40, 0).repeat(48, 1)).save(
            colour / f"{index}.png"
        )
    capsys.readouterr()
    assert main(["predict", "--model", str(run / "model.keras"), str(colour)]) == 0
    assert "far from those" in capsys.readouterr().err
    assert main(["predict", "--model", str(run / "model.keras"), str(grey / "star")]) == 0
    assert "far from those" not in capsys.readouterr().err


@pytest.mark.slow
def test_the_data_folder_vanishing_mid_run_is_one_line_and_resumable(shapes_dir, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(shapes_dir, data)
    argv = ["train", "--data", str(data), "--run-dir", str(run), "--epochs", "500", "--recipe", "fine-tune-all"]
    returncode, err = _train_until_backup(
        [*argv, *TINY_FLAGS, "--quiet"], run, 0, lambda _: data.rename(tmp_path / "moved")
    )
    assert returncode == 1, err[-2000:]
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "an image disappeared while it was being read" in line and "--resume" in line
    assert not (run / "run.lock").exists()


def test_the_reference_page_shows_every_commands_help():
    """docs/cli.md is the parser's --help of every command (made by tools/cli_reference.py): the site shows every
    flag, its meaning and its default, and a flag added without remaking the page fails here."""
    from keras_alexnet.cli.reference import markdown

    page = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    assert page == markdown(), "docs/cli.md is stale: run `python tools/cli_reference.py`"
    for module_name in ("train", "lr-find", "compare", "export"):
        assert f"\n## {module_name}\n" in page
    assert "--label-smoothing" in page and "--workers" in page and "(default: " in page


def test_a_tensorflow_error_prints_its_cause_not_the_bare_graph_execution_line():
    import tensorflow as tf

    from keras_alexnet.cli import _pipeline_failure

    message = (
        "Graph execution error:\n\nDetected at node Conv2D defined at (most recent call last):\n"
        '  File "train.py", line 3, in <module>\n\nOOM when allocating tensor with shape[100000,64,55,55] and type '
        "float on /job:localhost/replica:0/task:0/device:CPU:0 by allocator cpu\n\t [[{{node Conv2D}}]] [Op:x]"
    )
    line = _pipeline_failure(tf.errors.ResourceExhaustedError(None, None, message))
    assert "OOM when allocating tensor with shape[100000,64,55,55]" in line and "--batch-size" in line
    other = "Graph execution error:\n\nindices[0] = 5 is not in [0, 4)\n\t [[{{node GatherV2}}]]"
    assert "indices[0] = 5 is not in [0, 4)" in _pipeline_failure(tf.errors.InvalidArgumentError(None, None, other))


# The command as a person types it: the installed console script, in a process of its own, run from a working
# directory with relative paths (Ray's trials and workers start in another directory; a path resolved only
# there breaks). Each test is one user's session, end to end.


def _typed(cwd, *argv, timeout=600, env=None):
    result = subprocess.run([KERAS_ALEXNET, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"keras-alexnet {' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture
def photos(shapes_dir, tmp_path):
    """A user's folder: ./photos (one sub-folder per class) and ./phone (loose images), in the working directory."""
    shutil.copytree(shapes_dir, tmp_path / "photos")
    (tmp_path / "phone").mkdir()
    for file in sorted(shapes_dir.rglob("*.png"))[:3]:
        shutil.copy(file, tmp_path / "phone" / file.name)
    return tmp_path


@pytest.mark.slow
def test_every_single_process_command_takes_relative_paths(photos):
    tiny = ["--architecture", "tiny", "--weights", "none", "--batch-size", "8"]
    _typed(photos, "train", "--data", "photos", "--val-split", "0.25", "--epochs", "1", "--run-dir", "runs/a", *tiny)
    assert (photos / "runs/a/model.keras").exists() and (photos / "runs/a/report.html").exists()
    _typed(photos, "predict", "--model", "runs/a/model.keras", "phone", "--out", "out/predictions.csv")
    _typed(photos, "evaluate", "--model", "runs/a/model.keras", "--data", "photos", "--out", "out/eval")
    _typed(photos, "export", "--model", "runs/a/model.keras", "--format", "savedmodel", "--out", "serving/a")
    _typed(photos, "predict", "--model", "serving/a", "phone")
    _typed(photos, "explain", "--model", "runs/a/model.keras", "phone", "--out", "out/explained")
    assert len(list((photos / "out/explained").glob("*.png"))) == 3
    _typed(photos, "report", "--run-dir", "runs/a")
    _typed(photos, "lr-find", "--data", "photos", "--plot", "out/lr.png", "--steps", "8", *tiny)
    assert (photos / "out/lr.png").exists()


@pytest.mark.slow
def test_compare_takes_relative_paths_on_rays_trials(photos):
    """Ray Tune's trials start in another directory: --data, --out and --weights as typed still reach them (the
    comparison `--recipe auto` runs is this one)."""
    from keras_alexnet import TINY, AlexNet

    (photos / "saved").mkdir()
    AlexNet(weights=None, architecture=TINY, include_top=False).save_weights(photos / "saved/start.weights.h5")
    tiny = ["--architecture", "tiny", "--weights", "saved/start.weights.h5", "--batch-size", "8"]
    _typed(
        photos,
        "compare",
        *("--data", "photos", "--out", "cmp", "--recipes", "frozen-features", "--heads", "compact", "--seeds", "1"),
        *("--epochs", "1", *tiny),
    )
    assert "frozen-features" in (photos / "cmp/summary.md").read_text()


def _wait_for_port(port, process, seconds=90):
    import socket
    import time

    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(3)  # the GCS answers before the head's raylet has registered
                return
        time.sleep(0.5)
    raise AssertionError(f"ray start --head did not listen on port {port} within {seconds} s")


@pytest.mark.slow
def test_train_on_two_workers_of_a_cluster_takes_relative_paths(photos, tmp_path_factory):
    """`train --workers 2 --address` on a cluster started with `ray start --head` (from another directory, on
    loopback): the relative --data and --run-dir reach the workers; Ctrl-C after the first epoch ends the
    command by itself (the supervisor's grace set to a minute; Ray Train's own SIGINT handler would abort the run
    and return), and the line it prints,
    typed, finishes the run as one process's. (A client without the cluster's token: test_ray_cluster's token
    test.)"""
    import shlex
    import time

    port = free_ports(1)[0]
    ray = str(Path(sys.executable).parent / "ray")
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2"]
        + ["--include-dashboard=false", "--disable-usage-stats"],
        cwd=tmp_path_factory.mktemp("elsewhere"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the head and every process it starts, ended together below
    )
    try:
        _wait_for_port(port, head)
        # The report as typed is the single-process test's; here the paths that reach the workers.
        tiny = ["--architecture", "tiny", "--weights", "none", "--batch-size", "8", "--no-report", "--no-tensorboard"]
        flags = ["--val-split", "0.25", "--epochs", "6", "--workers", "2", "--run-dir", "runs/w"]
        argv = ["train", "--data", "photos", *flags, *tiny, "--address", f"127.0.0.1:{port}"]
        sent = []

        def ctrl_c(process):  # as a terminal sends it: to the command's whole process group
            sent.append(time.monotonic())
            os.killpg(process.pid, signal.SIGINT)

        code, err = _train_until_backup(
            argv,
            photos / "runs/w",
            0,
            ctrl_c,
            cwd=photos,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            env={**os.environ, "KERAS_ALEXNET_GRACE_SECONDS": "60"},
        )
        seconds = time.monotonic() - sent[0]
        assert code == 130 and seconds < 20, (code, seconds, err[-2000:])  # not the supervisor's ending
        line = err.strip().splitlines()[-1]
        assert line.startswith("interrupted after epoch ") and line.endswith(" --resume"), line
        assert not (photos / "runs/w/run.lock").exists()
        printed = _typed(photos, *shlex.split(line.split("continue with: keras-alexnet ")[1]))
        # One train for every engine: the workers' run ends with one process's lines (issue 36, item 4).
        for line in ("validation accuracy: ", "balanced accuracy: ", "model.keras: epoch ", "progress plot: "):
            assert line in printed, printed[-2000:]
    finally:
        # This head's processes only (`ray stop` would end every Ray here); Ray's own shutdown on SIGTERM waits
        # about 30 s for its servers, which hold nothing this test needs.
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=60)
    assert (photos / "runs/w/model.keras").exists() and not (photos / "runs/w/backup").exists()
    assert json.loads((photos / "runs/w/options.json").read_text())["result"]["workers"] == 2


def test_output_piped_into_a_reader_that_stops_ends_quietly(model_file, shapes_dir):
    """`keras-alexnet predict ... | head` ends with the shell's status for a closed pipe, not a traceback."""
    process = subprocess.Popen(
        [KERAS_ALEXNET, "predict", "--model", str(model_file), str(shapes_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # before the command prints its first line (TensorFlow takes seconds to start)
    err = process.stderr.read()
    assert process.wait(timeout=300) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err[-2000:]
