"""Every command ends on SIGTERM, SIGINT and SIGHUP within seconds, whatever it is running.

A signal handler of Python's runs in the main thread between two bytecodes, and only while no
native call holds the interpreter's lock: a TensorFlow while loop, a collective waiting for a worker
(``MultiWorkerMirroredStrategy`` waits holding the lock) or ``ray.init`` waiting for a cluster keep
every thread of the process from running. So the ``keras-alexnet`` command is two processes:

- the **supervisor** (``supervise``: the console script; it parses the flags and never loads
  TensorFlow) starts the command in a child process and waits. It passes SIGTERM, SIGINT and SIGHUP
  on (the child ignores all but the first it gets); the child then has ``GRACE_SECONDS`` (or
  ``KERAS_ALEXNET_GRACE_SECONDS``) to end as
  usual (its one line, its lock released, its backup kept). After that, at a second signal, or when the
  child dies of a signal meanwhile (a native library's abort on the way out), the supervisor ends the
  child, prints the command's line itself, removes the locks the child held and exits with
  ``EXIT_INTERRUPTED``. A ``deadline`` the child announced and did not finish in time ends
  it the same way, with one line naming what it waited for and ``EXIT_FAILED``.
- the **command** (the child, and any library call) turns SIGTERM and SIGHUP into
  ``KeyboardInterrupt`` (``signals_as_interrupt``) and tells the supervisor, through an inherited
  pipe, which locks it holds and which bounded waits it has begun. Without a supervisor (a library
  call, ``cli.main`` in a test) the messages go nowhere and nothing is ended from outside.

Libraries that set handlers of their own do not keep them: ``ray.init``'s (SIGTERM as ``sys.exit``) is
undone by ``keeping_handlers``, Ray Train's ``fit`` (SIGINT aborts the run) runs ``off_the_main_thread``,
and Ray Tune's is turned off (``experiments.engine``).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

GRACE_SECONDS = 3.0
EXIT_INTERRUPTED = 130  # as after Ctrl-C in a shell, for SIGINT, SIGTERM and SIGHUP alike
EXIT_BROKEN_PIPE = 141  # as a shell reports a command whose reader closed the pipe (128 + SIGPIPE)
EXIT_FAILED = 1
CONTROL = "KERAS_ALEXNET_CONTROL_FD"  # the pipe from the command to its supervisor
_ids = itertools.count()
_control = []  # the pipe's descriptor, in the command's process only


# The command's side.


def supervised():
    """In the command's process: take the pipe to the supervisor out of the environment (so that no process this
    one starts writes to a descriptor it does not have). True when there is one."""
    fd = os.environ.pop(CONTROL, "")
    if fd.isdigit():
        _control[:] = [int(fd)]
    return bool(_control)


def _tell(message):
    """Send ``message`` (a dict) to the supervisor, if this process has one."""
    if _control:
        with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
            os.write(_control[0], (json.dumps(message) + "\n").encode())


def holding(path, held):
    """Tell the supervisor that this process now holds (or no longer holds) the lock file ``path``."""
    _tell({"lock": os.path.abspath(path), "held": bool(held)})


def wait_seconds(name, default):
    """A bounded wait's length: ``default``, or the environment's ``KERAS_ALEXNET_<name>_SECONDS``."""
    text = os.environ.get(f"KERAS_ALEXNET_{name}_SECONDS", "")
    try:
        return float(text) if text else default
    except ValueError:
        return default


@contextlib.contextmanager
def deadline(seconds, what, advice):
    """A bounded wait: when the block has not finished within ``seconds``, the supervisor ends the command with
    one line, ``what`` (what it waited for) and ``advice``, and ``EXIT_FAILED``. Without a supervisor, nothing."""
    number = f"{os.getpid()}-{next(_ids)}"
    line = f"error: {what} did not answer within {seconds:g} s: {advice}"
    _tell({"deadline": number, "seconds": float(seconds), "line": line})
    try:
        yield
    finally:
        _tell({"done": number})


@contextlib.contextmanager
def handling(numbers, handler):
    """``handler`` for the signals ``numbers`` while the block runs, the previous handlers after it. Only in the
    main thread, where Python allows signal handlers; elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number in numbers}
    try:
        yield
    finally:
        for number, earlier in previous.items():
            signal.signal(number, earlier)


@contextlib.contextmanager
def keeping_handlers():
    """This process's handlers for SIGTERM, SIGHUP and SIGINT again when the block ends, whatever it set: a library
    that installs its own (``ray.init`` makes SIGTERM a ``sys.exit(15)``) does not take the signals from the
    command. Only in the main thread, where handlers can be set; elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    saved = {number: signal.getsignal(number) for number in numbers}
    try:
        yield
    finally:
        for number, handler in saved.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(number, handler)


def off_the_main_thread(call):
    """``call()``'s result (or its error), run in a thread of its own while the main thread waits for it. A library
    that sets signal handlers only in the main thread (Ray Train's ``fit`` makes SIGINT abort its run and return)
    leaves this process's alone, and a signal still interrupts the wait: ``KeyboardInterrupt`` in the main thread,
    the call abandoned (the thread is a daemon; what it ran must not need it to finish, as a Ray run that ends with
    the process's connection)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = call()
        except BaseException as error:  # handed to the main thread as it is
            outcome["error"] = error

    thread = threading.Thread(target=run, name=getattr(call, "__name__", "call"), daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)  # short waits: a signal's handler runs between them
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def signals_as_interrupt():
    """SIGTERM (kill, systemd, schedulers), SIGHUP (a closed terminal or SSH session) and SIGINT end the block
    like Ctrl-C: one ``KeyboardInterrupt`` in the main thread; signals after the first are ignored, so the command's
    own last line is not cut off."""
    received = []

    def interrupt(number, frame):
        received.append(number)
        if len(received) == 1:
            raise KeyboardInterrupt

    return handling((signal.SIGTERM, signal.SIGHUP, signal.SIGINT), interrupt)


# The supervisor's side.


def _say(line):
    with contextlib.suppress(OSError, ValueError):  # SIGHUP: the terminal may be gone
        print(line, file=sys.stderr, flush=True)


def _release(locks, pid):
    """Remove the lock files the command (``pid``) held, each only while it still names that process."""
    for path in locks:
        with contextlib.suppress(OSError, ValueError):
            if int(open(path).read().strip() or 0) == pid:
                os.unlink(path)


def _end_with_parent():
    """In the command's process, before it starts: the kernel kills it when the supervisor dies (Linux's
    ``PR_SET_PDEATHSIG``), so a supervisor that was killed leaves no command running on its own."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def supervise(command, describe):
    """Run ``command`` (an argv list) as the command's process and wait for it; returns its exit status. See the
    module's docstring. ``describe()``: the line printed when the command had to be ended after a signal."""
    grace = wait_seconds("GRACE", GRACE_SECONDS)
    reader, writer = os.pipe()
    child = subprocess.Popen(
        command, pass_fds=(writer,), env={**os.environ, CONTROL: str(writer)}, preexec_fn=_end_with_parent
    )
    os.close(writer)
    received = []

    def on_signal(number, frame):
        received.append((number, time.monotonic()))
        # Passed on even where the child got it itself (a terminal's Ctrl-C, a closed terminal's SIGHUP reach
        # the whole process group): the command ignores every signal after its first.
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(number)

    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(number, on_signal)
    locks, deadlines, pending = set(), {}, b""

    def end(line, code):
        child.kill()
        child.wait()
        _say(line)
        _release(locks, child.pid)
        return code

    def interrupted_line():
        try:
            return "\n" + describe()
        except Exception as error:  # the line is a courtesy; ending the command is the point
            return f"\ninterrupted ({type(error).__name__} while saying what was kept)."

    while True:
        ready, _, _ = select.select([reader], [], [], 0.1)
        if ready:
            chunk = os.read(reader, 65536)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if "lock" in message:
                        (locks.add if message["held"] else locks.discard)(message["lock"])
                    elif "deadline" in message:
                        deadlines[message["deadline"]] = (time.monotonic() + message["seconds"], message["line"])
                    elif "done" in message:
                        deadlines.pop(message["done"], None)
        code = child.poll()
        if code is not None:
            os.close(reader)
            if code < 0 and received:
                # Killed by a signal while ending on one (an abort in a native library's shutdown, or the signal
                # itself before the command's handlers were set): it said nothing, so the line is said here.
                return end(interrupted_line(), EXIT_INTERRUPTED)
            return code if code >= 0 else 128 - code
        now = time.monotonic()
        if received and (len(received) > 1 or now - received[0][1] >= grace):
            return end(interrupted_line(), EXIT_INTERRUPTED)
        for expiry, line in list(deadlines.values()):
            if now >= expiry and not received:
                return end(line, EXIT_FAILED)
