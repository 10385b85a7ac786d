"""The ``keras-alexnet`` command line: flags in, calls of the Python API out.

A small ``main`` and one module per subcommand (``cli/train.py`` ...): each has ``add(command)``,
which builds its parser (the option flags made from ``keras_alexnet.options``' fields, shared
groups from ``cli/common.py``), and ``run(args)``, which maps the flags onto a library call. The parser needs neither
TensorFlow nor Keras (``--help`` and bad flags answer at once; recipe and head names
come from the plain tables in ``keras_alexnet.recipes``); each subcommand imports what
it uses, with TensorFlow's start-up lines hidden unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import sys

from keras_alexnet import __version__
from keras_alexnet._utils import errors
from keras_alexnet._utils.disk import DiskFullError, is_disk_full
from keras_alexnet._utils.runtime import VERBOSE, quiet_tensorflow
from keras_alexnet._utils.signals import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, signals_as_interrupt, supervise, supervised
from keras_alexnet._utils.text import printable
from keras_alexnet.cli import (
    compare,
    convert,
    demo,
    evaluate,
    explain,
    export,
    layers,
    lr_find,
    predict,
    report,
    train,
)
from keras_alexnet.cli.common import training_options
from keras_alexnet.run_directory import RunDirectory

__all__ = ["COMMANDS", "EXAMPLES", "build_parser", "console", "main", "training_options"]

# The subcommands, in the order of --help: each module's ``add(command)`` builds its parser.
SUBCOMMANDS = (convert, train, lr_find, compare, explain, report, evaluate, predict, export, layers, demo)
COMMANDS = tuple(module.add for module in SUBCOMMANDS)
EXAMPLES = {module.NAME: module.EXAMPLE for module in SUBCOMMANDS}


def build_parser():
    """The ``keras-alexnet`` parser: one sub-parser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="keras-alexnet",
        description="torchvision's AlexNet in Keras: convert, train, evaluate, predict, export.",
        epilog="example: " + EXAMPLES["train"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and log lines")
    parser.add_argument("--version", action="version", version=f"keras-alexnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, summary, run):
        p = commands.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog="example: " + EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(run=run)
        return p

    for add in COMMANDS:
        add(command)
    return parser


def _interrupted(args, argv):
    """One line after Ctrl-C: what was kept, and the command that continues (exit status 130)."""
    if args.command == "train":
        run = RunDirectory(args.run_dir)
        if not run.has_backup():
            return "interrupted before the first backup: nothing to resume; start the run again."
        epochs, _ = run.check_resumable()
        again = [arg for arg in argv if arg not in ("--overwrite", "--resume")]
        return f"interrupted after epoch {epochs}; continue with: keras-alexnet {shlex.join(again)} --resume"
    if args.command == "compare":
        return f"interrupted; the finished runs are kept in {args.out}: the same command continues where it stopped."
    if args.command in ("export", "lr-find", "convert"):
        return "interrupted; nothing was written (files are written whole or not at all)."
    return "interrupted."


def _what_is_kept(args, argv):
    """What a failed command leaves, and the command that continues it (train), in words."""
    if args.command == "train":
        run = RunDirectory(args.run_dir)
        if run.has_backup():
            epochs, _ = run.check_resumable()
            again = [arg for arg in argv if arg not in ("--overwrite", "--resume")]
            return f"the backup of epoch {epochs} is kept; once fixed, continue with: keras-alexnet {shlex.join(again)} --resume"
        return "no epoch was backed up; once fixed, start the run again."
    return "files are written whole or not at all: nothing half-written was left."


def op_error_cause(message):
    """The line of a TensorFlow op error's message that says what went wrong: a Python error raised inside
    it, else the line before the first ``[[node ...]]`` (``OOM when allocating tensor with shape[...]``,
    ``indices[0] = 5 is not in [0, 4)``), never the bare ``Graph execution error:`` that heads it."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    inner = [line for line in lines if "Error:" in line and not line.startswith("[[")]
    if inner:
        return inner[-1]
    for index, line in enumerate(lines):
        if line.startswith("[[") and index > 0:
            return lines[index - 1]
    plain = [line for line in lines if not line.lower().startswith("graph execution error")]
    return plain[-1] if plain else (lines[0] if lines else "no message")


def _pipeline_failure(error):
    """One line for a TensorFlow op error, with its cause (where an image read failed: which)."""
    text = op_error_cause(error.message) or type(error).__name__
    if "does not exist" in text or "No such file" in text:
        return f"an image disappeared while it was being read ({text}): was the data folder moved or deleted?"
    if text.startswith("OOM when allocating"):
        return f"TensorFlow ran out of memory: {text}. Use a smaller --batch-size (or a smaller model)"
    return f"TensorFlow stopped: {type(error).__name__}: {text}"


def _say_interrupted(args, argv):
    with contextlib.suppress(OSError, ValueError):  # SIGHUP: the terminal may be gone
        print(f"\n{_interrupted(args, argv)}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _interrupt_inside(error):
    """Whether ``error`` is a signal's ``KeyboardInterrupt`` in disguise: raised while a native call that returns to
    Python ran (numpy's ``__array__`` inside a Keras metric), it reaches the caller as CPython's ``SystemError``
    "returned a result with an exception set", the interrupt as its cause (Keras's traceback filter keeps it as
    the context only)."""
    return any(isinstance(link, KeyboardInterrupt) for link in errors.chain(error))


def main(argv=None, *, own_process=False):
    """Entry point of the ``keras-alexnet`` console script (``own_process``: this process runs only the command,
    as the console script's does: ``runtime.quiet_tensorflow``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        # A file name that is not UTF-8 prints with its odd bytes escaped instead of ending the command.
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    args.argv = argv
    VERBOSE["native"] = bool(args.verbose)
    with quiet_tensorflow(args.verbose, own_process=own_process):
        from keras_alexnet.deployment import MissingRuntime
        from keras_alexnet.export import ExportCheckError
        from keras_alexnet.training.callbacks import TrainingDiverged

    try:
        with signals_as_interrupt():
            return args.run(args)
    except ExportCheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingDiverged as error:
        print(f"error: {error} (keras-alexnet train --lr ...)", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, MissingRuntime) as error:  # bad input: the message says what to do
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _say_interrupted(args, argv)
    except OSError as error:
        if is_disk_full(error):
            text = (
                str(error) if isinstance(error, DiskFullError) else f"the disk is full ({error}): free space and retry."
            )
        elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            text = f"cannot write {printable(error.filename or '')} ({error.strerror}): {_what_is_kept(args, argv)}"
        else:
            raise
        print(f"error: {text}", file=sys.stderr)
        return 1
    except Exception as error:
        if _interrupt_inside(error):
            return _say_interrupted(args, argv)
        # An image read inside a tf.data pipeline that is gone (the data folder moved or deleted mid-run).
        tf = sys.modules.get("tensorflow")
        if tf is None or not isinstance(error, tf.errors.OpError):
            raise
        print(f"error: {_pipeline_failure(error)}; {_what_is_kept(args, argv)}", file=sys.stderr)
        return 1


def console():
    """The ``keras-alexnet`` console script.

    It parses the flags, then runs the command in a process of its own and supervises it
    (``_utils.signals``): SIGTERM, SIGINT and SIGHUP end it within seconds whatever it runs, and a bounded wait
    it announced ends it with one line. In the command's process: ``main``, then, after Ctrl-C or a failure, an
    exit that skips Python's teardown. A tf.data pipeline or an HDF5 file stopped mid-way can hang or crash the
    garbage collection at exit (seen after Ctrl-C: the process never ended); everything is written by then."""
    if not supervised():
        argv = sys.argv[1:]
        args = build_parser().parse_args(argv)  # --help, --version and bad flags answer here, at once
        return supervise([sys.executable, "-m", "keras_alexnet.cli", *argv], lambda: _interrupted(args, argv))
    try:
        code = main(own_process=True)
    except BrokenPipeError:  # the reader of the output went away (`| head`): end quietly, as shell tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at the final flush
        os._exit(EXIT_BROKEN_PIPE)
    if code in (1, EXIT_INTERRUPTED):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
