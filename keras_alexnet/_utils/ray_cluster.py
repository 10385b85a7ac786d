"""Ray, on this machine or on a cluster: joining it, what it has, and storage every node sees.

- ``connect(address)``: Ray on this machine (started in-process, no setup) or an existing cluster
  (``HOST:PORT``, or ``RAY_ADDRESS``), with one-line errors for an unreachable address.
- ``check_resources``: refuse what no node can hold (Ray would wait for ever).
- ``check_shared(out)``: every node sees ``out`` (each writes a marker the driver reads back).

Used by ``experiments.engine`` (a comparison's trials on Ray Tune) and ``training.on_ray`` (``train
--workers`` on Ray Train).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

from keras_alexnet._utils import errors, signals
from keras_alexnet._utils.runtime import environment, stderr_to_devnull

RAY_EXTRA = "pip install 'ray[tune,train]'"
CONNECT_SECONDS = 30
MAX_FAILURES = 3  # a comparison's trial or a --workers group is restarted this often (a node lost), then fails
# ray.init's longest wait (an address that accepts TCP but is not a Ray cluster waits for ever); the environment's
# KERAS_ALEXNET_RAY_JOIN_SECONDS changes it.
JOIN_SECONDS = 120
# The object store holds nothing of ours (the runs exchange files): the smallest Ray allows.
OBJECT_STORE_BYTES = 100 * 2**20


class ClusterError(ValueError):
    """Ray or the cluster cannot run the comparison as asked; the message says why and what to do."""


def import_ray():
    """Ray, or a one-line error naming what installs it."""
    # Tune's own tables and banners: the comparison prints its own lines.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ctrl-C ends the command as everywhere else (one line, the finished runs kept), not Tune's own way.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise ClusterError(f"running trials needs Ray Tune, which is not installed: {RAY_EXTRA}.") from None
    return ray


def _reachable(address, seconds):
    """None if ``HOST:PORT`` accepts a TCP connection within ``seconds``, else why not."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"{address!r} is not HOST:PORT (e.g. 10.0.0.5:6379)"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return None
    except OSError as error:
        return error.strerror or str(error)


def _require_token():
    """Token authentication for the Ray this process starts, whatever ``RAY_AUTH_MODE`` the user set: its servers
    listen on loopback only (``_on_loopback``), and the token keeps out the machine's other users (and other
    machines, should a Ray version bind elsewhere). Ray 2.60 does the same by default when ``RAY_AUTH_MODE`` is unset, and so does this the same
    way (the process keeps token mode; Ray reads its settings again). The token is Ray's own:
    ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``, which Ray writes when there is none."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return
    from ray._raylet import Config

    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")


def _refused_authentication(error):
    """Whether ``error`` (or any of its causes: Ray wraps an authentication failure in a ConnectionError) says the
    cluster refused this process's token."""
    said = [f"{type(link).__name__} {link}" for link in errors.chain(error)]
    return any("uthenticat" in part or "token" in part.lower() for part in said)


def _check_authentication(address, where):
    """Raise the one-line refusal at once when the cluster at ``address`` refuses this process's token.

    ``ray.init`` retries every failure to reach the cluster's GCS once a second for 20 s (``ray._private.node``),
    a refused token too. One request of our own, with the GCS client ``ray.init`` itself uses (0.3 s), tells a
    refusal from a cluster still starting, which ``ray.init`` goes on to wait for."""
    try:
        from ray._raylet import GcsClient
    except ImportError:  # a Ray without it: ray.init's own answer comes, later
        return
    try:
        GcsClient(address=address)
    except Exception as error:
        if _refused_authentication(error):
            raise _join_failure(where, error) from None


def _join_failure(where, error):
    """One line for a cluster that refused or failed to let this process join."""
    text = str(error)
    if _refused_authentication(error):
        return ClusterError(
            f"{where}: the Ray cluster refused this process: it requires token authentication. Give this process "
            "the cluster's token: RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=... (or RAY_AUTH_TOKEN_PATH=FILE; `ray "
            "get-auth-token` on the head node prints it). See docs/cluster.md."
        )
    return ClusterError(f"{where}: could not join the Ray cluster ({text.splitlines()[0] if text else error!r}).")


def pickled_by_value(function):
    """``function``, with its module registered for Ray to pickle by value: the process Ray runs it in (a trial, a
    Ray Train worker) then imports nothing of keras-alexnet, nor Keras, before ``function`` runs."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[function.__module__])
    return function


@contextlib.contextmanager
def _on_loopback():
    """The Ray that ``ray.init`` starts in the block listens on 127.0.0.1 only. GCS, the raylet, the workers and
    this process's own server bind to the node's address (ray-project/ray#59852; Ray 2.60 here), and Ray takes
    loopback for that address where it runs no clusters (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the default on
    macOS and Windows). Ray's processes read the variable from the environment they start with; this process read
    it when it imported Ray, so its copy is set too (``ray._private.ray_constants``, the one private name of Ray's
    used here; ``test_ray_cluster`` lists the listening sockets)."""
    from ray._private import ray_constants

    constant, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
    try:
        with environment(**{ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR: "0"}):
            yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = constant


@contextlib.contextmanager
def connect(address=None):
    """Ray for the block: ``address`` (``HOST:PORT``; default ``RAY_ADDRESS``) joins that cluster, None
    starts Ray on this machine for the block (its CPUs, a small object store, no dashboard, listening on
    loopback only, token authentication always). Yields ``ray``; disconnects (and stops a Ray it
    started) at the end. A cluster that has not let this process join within ``JOIN_SECONDS`` ends the
    command line with one line naming it (``signals.deadline``)."""
    ray = import_ray()
    where = f"--address {address}" if address else f"RAY_ADDRESS={os.environ.get('RAY_ADDRESS')}"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():  # a caller's own Ray (a test's cluster, a notebook): use it as it is
        yield ray
        return
    settings = {"log_to_driver": False, "logging_level": logging.ERROR, "include_dashboard": False}
    if address is not None and address != "auto":
        problem = _reachable(address, CONNECT_SECONDS)
        if problem:
            raise ClusterError(
                f"{where}: no Ray cluster answers there ({problem}). Start one with `ray start --head` "
                "on the head node (and `ray start --address HEAD:6379` on the others), or leave out --address "
                "(and RAY_ADDRESS) to run on this machine."
            )
    local = address is None
    if local:  # a new Ray of this process's own, whatever other Ray runs on the machine
        settings.update(address="local", object_store_memory=OBJECT_STORE_BYTES)
    else:
        settings["address"] = address
    if local or not os.environ.get("RAY_AUTH_MODE"):
        # A cluster `ray start` made (Ray 2.60) requires its token by default, and a client in token mode
        # joins a cluster without authentication too; a RAY_AUTH_MODE the user set for a cluster is kept.
        _require_token()
    with (
        quiet_stderr(),
        signals.deadline(
            signals.wait_seconds("RAY_JOIN", JOIN_SECONDS),
            f"the Ray cluster at {address}" if not local else "Ray on this machine",
            f"is {where} a Ray head node (`ray start --head`)? Check the address, or leave it out to run here."
            if not local
            else "see Ray's logs under /tmp/ray/session_latest/logs.",
        ),
    ):
        if not local:
            _check_authentication(address, where)
        try:
            with signals.keeping_handlers(), _on_loopback() if local else contextlib.nullcontext():
                ray.init(**settings)
        except SystemExit as error:  # the SIGTERM handler ray.init installs fired before ours was back
            if error.code != signal.SIGTERM:
                raise
            raise KeyboardInterrupt from None
        except Exception as error:  # Ray's AuthenticationError is neither a ConnectionError nor a RuntimeError
            refused = isinstance(error, (ConnectionError, RuntimeError)) or "uthenticat" in str(error)
            if local or not refused:
                raise
            raise _join_failure(where, error) from None
    try:
        yield ray
    finally:
        with quiet_stderr():
            ray.shutdown()


def quiet_stderr():
    """Ray's start-up and shut-down lines (native and Python) go to its log files, not the terminal."""
    return stderr_to_devnull()


def nodes(ray):
    """The alive nodes: ``[{"id", "address", "cpus", "gpus"}]``."""
    return [
        {
            "id": node["NodeID"],
            "address": node["NodeManagerAddress"],
            "cpus": node["Resources"].get("CPU", 0),
            "gpus": node["Resources"].get("GPU", 0),
        }
        for node in ray.nodes()
        if node["Alive"]
    ]


def check_resources(ray, cpus, gpus, count=1, what="trial", flags="--cpus-per-trial, --gpus-per-trial"):
    """Refuse ``count`` tasks of ``cpus`` CPUs and ``gpus`` GPUs each that the cluster cannot hold at once
    (``count`` 1: one that no node can hold): Ray would wait for ever, printing "pending"."""
    alive = nodes(ray)
    have = ", ".join(f"{node['address']}: {node['cpus']:g} CPUs, {node['gpus']:g} GPUs" for node in alive)
    if not any(node["cpus"] >= cpus and node["gpus"] >= gpus for node in alive):
        raise ClusterError(
            f"each {what} asks for {cpus:g} CPUs and {gpus:g} GPUs, which no node of the cluster has ({have}). "
            f"Ask for less ({flags}) or add a node that has them."
        )
    if count > 1 and trial_slots(ray, cpus, gpus) < count:
        raise ClusterError(
            f"{count} {what}s of {cpus:g} CPUs and {gpus:g} GPUs each do not fit the cluster at once ({have}). "
            f"Ask for fewer or smaller ones ({flags}), or add nodes."
        )


def trial_slots(ray, cpus, gpus):
    """How many trials of ``cpus`` CPUs and ``gpus`` GPUs the cluster runs at once."""
    total = 0
    for node in nodes(ray):
        fits = [node["cpus"] // cpus if cpus else float("inf"), node["gpus"] // gpus if gpus else float("inf")]
        total += int(min(fits)) if min(fits) != float("inf") else 0
    return max(total, 1)


def _path_on_nodes(path):
    """The path the nodes are told to use: the same as here (shared storage mounts at one path)."""
    return path


def check_shared(ray, out):
    """Before any trial: every node sees ``out`` as this process does. Each node reads the driver's marker and
    writes its own, which the driver reads back; a node that cannot is named."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    out = Path(out).resolve()
    markers = out / ".nodes"
    markers.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    (markers / f"driver-{token}").write_text(token)

    @ray.remote(num_cpus=0, max_retries=0)
    def probe(folder, token, node):
        folder = Path(folder)
        seen = (folder / f"driver-{token}").exists()
        try:
            (folder / f"{node}-{token}").write_text(node)
            wrote = True
        except OSError:
            wrote = False
        return seen, wrote

    alive = nodes(ray)
    try:
        answers = ray.get(
            [
                probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["id"], soft=False)).remote(
                    str(_path_on_nodes(markers)), token, node["id"]
                )
                for node in alive
            ],
            timeout=CONNECT_SECONDS * 2,
        )
        for node, (seen, wrote) in zip(alive, answers):
            if not (seen and wrote and (markers / f"{node['id']}-{token}").exists()):
                raise ClusterError(
                    f"--out {out} is not shared with node {node['address']}: it "
                    f"{'cannot see' if not seen else 'cannot write'} the folder this process writes. Give an --out on "
                    "storage every node mounts at the same path (NFS and the like)."
                )
    finally:
        for marker in markers.glob(f"*{token}"):
            marker.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # left when another check is under way
            markers.rmdir()


def describe(ray):
    """One line: the cluster's nodes, CPUs and GPUs."""
    alive = nodes(ray)
    cpus, gpus = sum(node["cpus"] for node in alive), sum(node["gpus"] for node in alive)
    return f"{len(alive)} node{'s' if len(alive) != 1 else ''}, {cpus:g} CPUs, {gpus:g} GPUs"
