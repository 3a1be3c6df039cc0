"""Runs a study's runs on Dask: an embedded LocalCluster (one single-threaded
worker process per core) that starts and stops with the command, or a running
scheduler at an address. A few runs per worker thread are in flight at a time;
each result is filed the moment it returns. A worker that dies is Dask's to
handle: the scheduler gives its run to another worker."""
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import socket
import time
from dataclasses import dataclass

from ..errors import ConfigError
from .run import execute, sim_version
from .spec import Run
from .store import ResultStore

# One numba/OpenMP thread per Dask worker process: the worker is the unit of parallelism.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
# Dask's background work in a busy worker: the statistical profiler samples the
# running task every 10 ms, the event loop ticks every 20 ms and the monitors
# every 100-500 ms, each taking the GIL from the run. A study has no dashboard
# to feed; quieter, a 2-worker study's runs took 0.94 s instead of 1.01-1.05 s
# (interleaved A/B, two rounds). docs/studies.md gives the same for clusters.
QUIET_WORKERS = {"distributed.worker.profile.enabled": False,
                 "distributed.admin.tick.interval": "500ms",
                 "distributed.admin.system-monitor.interval": "2s",
                 "distributed.worker.memory.monitor-interval": "1s"}
IN_FLIGHT_PER_THREAD = 3
CONNECT_TIMEOUT_S = 30
# glibc's mallopt parameters, and what a worker keeps of freed memory.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 64 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Let this process reuse the memory a run frees. Dask's nanny starts workers
    with MALLOC_TRIM_THRESHOLD_=65536, which also switches off glibc's adaptive
    mmap threshold: every run's multi-megabyte grid buffers were then mapped and
    page-faulted afresh, 20% of a one-second run (1.12-1.18 s against 0.91-0.98 s
    here). Once per process; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES)) and \
            bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
    except (OSError, AttributeError):
        return False


def work(run: Run, payload: bytes, expected_version: str) -> dict:
    """The task: one run on whichever worker picks it up. Never raises for a bad
    run: the error is the result, so the study goes on."""
    keep_freed_memory()
    started = time.perf_counter()
    try:
        if sim_version() != expected_version:
            raise RuntimeError(f"this worker runs cellsim {sim_version()}, the study was submitted "
                               f"with {expected_version}: install the same cellsim everywhere")
        row = {"status": "ok", "error": "", **execute(run, payload, workers=1)}
    except Exception as exc:  # noqa: BLE001  (any failure of one run is that run's result)
        message = str(exc).splitlines()[0] if str(exc) else ""
        row = {"status": "failed", "error": f"{type(exc).__name__}: {message}",
               "wall_time_s": time.perf_counter() - started}
    row["worker"] = _worker_address()
    row["host"] = socket.gethostname()
    return row


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return f"pid:{os.getpid()}"


@dataclass
class Progress:
    done: int = 0
    failed: int = 0


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None, quiet: bool = True):
    """A distributed.Client on a new LocalCluster, or on the scheduler at `scheduler`."""
    if quiet:
        for name in ("distributed", "distributed.nanny", "distributed.worker",
                     "distributed.scheduler", "distributed.core", "distributed.batched",
                     "distributed.comm"):
            logging.getLogger(name).setLevel(logging.ERROR)
    import dask
    from distributed import Client, LocalCluster

    if scheduler is None:
        n = workers or os.cpu_count() or 1
        # The nannies hand this configuration to the worker processes they start.
        with dask.config.set(QUIET_WORKERS), \
                LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                             dashboard_address=None, env=WORKER_ENV,
                             silence_logs=logging.ERROR if quiet else logging.WARNING) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"cannot reach a Dask scheduler at {scheduler}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ConfigError(f"the scheduler at {scheduler} has no workers "
                              f"(waited {CONNECT_TIMEOUT_S} s); start some with "
                              f"`dask worker {scheduler} --nthreads 1`") from None
        yield client


def _numba_threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def describe(client) -> dict:
    info = client.scheduler_info()
    workers = info.get("workers", {})
    return {"scheduler": info.get("address", ""), "workers": len(workers),
            "threads": sum(w.get("nthreads", 0) for w in workers.values()),
            "hosts": sorted({w.get("host", "") for w in workers.values()}),
            # numba's pool size in each worker process (1 is what a study wants).
            "numba_threads": sorted(client.run(_numba_threads).values())}


def run_all(client, jobs: list, store: ResultStore, version: str, on_result=None) -> Progress:
    """jobs: (run, payload, parameter record) in study order. Files each result
    as it comes back; returns the counts."""
    from distributed import as_completed

    progress = Progress()
    pending = iter(jobs)
    in_flight = {}
    finished = as_completed()

    def submit_next() -> None:
        job = next(pending, None)
        if job is None:
            return
        run, payload, params = job
        future = client.submit(work, run, payload, version, key=f"cellsim-run-{params['key']}",
                               pure=False)
        in_flight[future.key] = params
        finished.add(future)

    threads = max(1, sum(client.nthreads().values()))
    for _ in range(IN_FLIGHT_PER_THREAD * threads):
        submit_next()
    for future in finished:
        params = in_flight.pop(future.key)
        try:
            row = future.result()
        except Exception as exc:  # noqa: BLE001  (KilledWorker, lost connection: the run failed)
            row = {"status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                   "worker": "", "host": ""}
        future.release()
        record = {**params, **row}
        store.write(record)
        progress.done += 1
        progress.failed += row["status"] != "ok"
        if on_result is not None:
            on_result(record, progress)
        submit_next()
    return progress
