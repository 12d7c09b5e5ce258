"""Where the fits of an evaluation run: in this process, in worker processes, or as Ray tasks.

One interface: ``open_executor(kind, jobs=..., address=...)`` is a context manager that gives an executor
with ``submit(fn, *args) -> future``; ``future.result()`` returns ``fn(*args)`` or raises
:class:`TaskFailed` with a one-line reason (the function raised, its worker process died, a Ray node was
lost). Callers collect results in submission order, so what they build from them never depends on which
task finished first.

- ``process`` with ``jobs == 1``: each task runs here, when its result is asked for;
- ``process`` with ``jobs > 1``: a pool of ``jobs`` spawned worker processes;
- ``ray``: each task is a Ray task asking for one CPU. Without ``address`` a private local Ray with
  ``jobs`` CPUs is started for the run and stopped after it; with ``address`` (``HOST:PORT`` of a
  running cluster's head, ``auto``, or ``ray://HOST:PORT`` with ``ray[client]``) the tasks go to that
  cluster and its CPUs decide how many run at once. Every node needs the same myoedge installed. Ray is
  the optional extra ``myoedge[ray]``. If Ray is already initialised in this process (a notebook, a
  test session), that session is used and left running.
"""

from __future__ import annotations

import contextlib
import logging
import socket

from myoedge.ground.errors import InputError

log = logging.getLogger(__name__)

EXECUTORS = ("process", "ray")
RAY_EXTRA = "pip install 'myoedge[ray]'"
CONNECT_TIMEOUT_S = 5.0  # a Ray driver retries an unreachable head for minutes; we look first


class TaskFailed(Exception):
    """A task gave no result: it raised, or the process or node running it was lost."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


class _Deferred:
    """A task run in this process when its result is first asked for (so progress follows the work)."""

    def __init__(self, fn, args):
        self._fn, self._args = fn, args

    def result(self):
        try:
            return self._fn(*self._args)
        except Exception as e:
            raise TaskFailed(_one_line(e)) from e


class _Inline:
    kind = "process"

    def submit(self, fn, *args) -> _Deferred:
        return _Deferred(fn, args)


class _PoolFuture:
    def __init__(self, future):
        self._future = future

    def result(self):
        try:
            return self._future.result()
        except Exception as e:  # the function's own error, or BrokenProcessPool when a worker died
            raise TaskFailed(_one_line(e)) from e


class _Pool:
    kind = "process"

    def __init__(self, pool):
        self._pool = pool

    def submit(self, fn, *args) -> _PoolFuture | _Deferred:
        try:
            return _PoolFuture(self._pool.submit(fn, *args))
        except RuntimeError as e:  # BrokenProcessPool: a worker died earlier; every later task is lost too
            return _Deferred(_raise, (e,))


def _raise(e: BaseException):
    raise e


def _call(fn, *args):  # the body of every Ray task
    return fn(*args)


class _RayFuture:
    def __init__(self, ray, ref):
        self._ray, self._ref = ray, ref

    def result(self):
        try:
            return self._ray.get(self._ref)
        except Exception as e:  # RayTaskError (the function raised), WorkerCrashedError, NodeDiedError, …
            raise TaskFailed(_one_line(getattr(e, "cause", None) or e)) from e


class _Ray:
    kind = "ray"

    def __init__(self, ray):
        self._ray = ray
        self._task = ray.remote(num_cpus=1)(_call)

    def submit(self, fn, *args) -> _RayFuture:
        return _RayFuture(self._ray, self._task.remote(fn, *args))


def import_ray():
    """The ``ray`` module, or an InputError that names the extra to install."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--executor ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def _check_reachable(address: str) -> None:
    """A clear error now, instead of a Ray driver retrying a dead address for minutes."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"--address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise InputError(f"no Ray cluster reachable at {address!r} ({reason}; is `ray start --head` "
                         "running there?)") from None


def start_ray(*, jobs: int, address: str | None = None):
    """Initialise Ray in this process: a private local Ray with ``jobs`` CPUs, or a running cluster."""
    ray = import_ray()
    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        options.update(address="local", num_cpus=jobs)
    else:
        _check_reachable(address)
        options.update(address=address)
    try:
        ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        with contextlib.suppress(Exception):
            ray.shutdown()
        if address is None:
            raise InputError(f"could not start a local Ray: {_one_line(e)}") from None
        raise InputError(f"could not connect to the Ray cluster at {address!r}: {_one_line(e)} (a cluster "
                         "with token authentication needs RAY_AUTH_MODE=token and its token here)") from None
    resources = ray.cluster_resources()
    log.info("Ray: %g CPUs in %d node(s)", resources.get("CPU", 0), len(ray.nodes()))
    return ray


@contextlib.contextmanager
def open_executor(kind: str = "process", *, jobs: int = 1, address: str | None = None):
    """An executor for the ``with`` block (see the module docstring); it is shut down on leaving."""
    if kind not in EXECUTORS:
        raise InputError(f"executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs must be a positive int, got {jobs!r}")
    if address is not None and kind != "ray":
        raise InputError("--address is for --executor ray")
    if kind == "ray":
        ray = import_ray()
        owned = not ray.is_initialized()
        if owned:
            start_ray(jobs=jobs, address=address)
        elif address is not None:
            raise InputError(f"Ray is already initialised in this process; leave out --address {address}")
        try:
            yield _Ray(ray)
        finally:
            if owned:
                ray.shutdown()
        return
    if jobs == 1:
        yield _Inline()
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: forking a process whose torch/OpenMP threads have started can deadlock the child
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield _Pool(pool)
