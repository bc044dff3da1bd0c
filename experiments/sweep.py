"""Sweeps on Dask: a grid's tasks run by an embedded cluster of local processes, or by an
existing Dask scheduler, each task's row written to Parquet as it finishes.

A rerun skips the tasks whose rows exist, so a sweep stopped by Ctrl-C or a lost worker loses
at most the tasks in flight; a task that fails is a row with its error. The grid is read by
``sweep_grid``, a task runs in ``sweep_task``, rows are stored by ``sweep_store``; this module
schedules. In Python::

    from trainplan.experiments.sweep import load_sweep, run_sweep
    from trainplan.experiments.sweep_grid import load_grid
    run_sweep(load_grid("grid.toml"), "sweep-out", jobs=2)
    frame = load_sweep("sweep-out")     # a pandas DataFrame, one row per task
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator

from tqdm import tqdm

from trainplan import __version__
from trainplan.experiments.sweep_grid import Task
from trainplan.experiments.sweep_store import compact, done_keys, load_sweep, write_part
from trainplan.experiments.sweep_task import VOLATILE, run_task
from trainplan.planner.errors import TrainplanError

__all__ = ["SchedulerError", "comparable", "load_sweep", "run_sweep"]

_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/:]+:\d{1,5}$")


class SchedulerError(TrainplanError):
    """A Dask scheduler that cannot be reached, or whose workers run another trainplan."""


def check_address(address: str) -> str:
    """``tcp://HOST:PORT`` (or ``tls://``), else SchedulerError saying so."""
    if not _ADDRESS.match(address) or not 0 < int(address.rsplit(":", 1)[1]) < 65536:
        raise SchedulerError(f"--scheduler {address!r}: give a Dask scheduler's address as "
                             "tcp://HOST:PORT (e.g. tcp://127.0.0.1:8786)")
    return address


@contextlib.contextmanager
def dask_client(jobs: int | None = None, scheduler: str | None = None) -> Iterator:
    """A Dask client: on an embedded cluster of ``jobs`` one-thread worker processes
    listening on 127.0.0.1 only (default: one per core; the scheduler's HTTP routes on a free
    port of 127.0.0.1 too), or on the scheduler at ``scheduler``."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise TrainplanError("sweeps run on Dask: pip install 'trainplan[sweep]'") from None
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            try:
                client = stack.enter_context(Client(check_address(scheduler), timeout="10s"))
            except (OSError, TimeoutError) as exc:
                raise SchedulerError(f"no Dask scheduler answered at {scheduler} ({exc}); "
                                     "start one with `dask scheduler` and its workers with "
                                     "`dask worker ADDRESS`") from None
            _check_workers(client)
        else:
            cluster = stack.enter_context(LocalCluster(
                n_workers=jobs or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=":0", silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        yield client


def _check_workers(client) -> None:
    """Every worker must run this trainplan: the rows' keys name this version."""
    versions = client.run(_trainplan_version)
    if not versions:
        raise SchedulerError("the scheduler has no workers; start some with `dask worker "
                             f"{client.scheduler.address}`")
    other = {w: v for w, v in versions.items() if v != __version__}
    if other:
        raise SchedulerError(f"workers run another trainplan ({other}); this is {__version__}")


def _trainplan_version() -> str:
    from trainplan import __version__ as version
    return version


def run_sweep(tasks: list[Task], out: str, *, jobs: int | None = None,
              scheduler: str | None = None, progress: bool = True, batch_rows: int = 64,
              batch_seconds: float = 5.0) -> dict:
    """Run the tasks that have no row in ``out`` yet and write their rows as they finish
    (every ``batch_rows`` rows or ``batch_seconds`` seconds); compact at the end. Returns what
    happened: tasks, already done, ran, failed (rows with an error), lost (a worker died on
    them more often than Dask retries; rerun to retry), seconds (in all, and running: from a
    ready cluster to the last row), tasks per second while running."""
    if jobs is not None and jobs < 1:
        raise TrainplanError(f"--jobs {jobs}: run at least one worker")
    os.makedirs(out, exist_ok=True)
    done = done_keys(out)
    todo = [t for t in tasks if t.key not in done]
    began = time.perf_counter()
    ran = failed = lost = 0
    running = 0.0
    if todo:
        with dask_client(jobs, scheduler) as client:
            started = time.perf_counter()
            ran, failed, lost = _collect(client, todo, out, len(tasks) - len(todo), progress,
                                         batch_rows, batch_seconds)
            running = time.perf_counter() - started
    rows = compact(out)
    seconds = time.perf_counter() - began
    return {"tasks": len(tasks), "already_done": len(tasks) - len(todo), "ran": ran,
            "failed": failed, "lost": lost, "rows": rows, "seconds": round(seconds, 3),
            "running_seconds": round(running, 3),
            "tasks_per_second": round(ran / running, 3) if ran and running else None,
            "out": out}


def _collect(client, todo: list[Task], out: str, initial: int, progress: bool,
             batch_rows: int, batch_seconds: float) -> tuple[int, int, int]:
    """Submit every task, write rows as futures finish; on Ctrl-C write what finished first."""
    from dask.distributed import as_completed

    futures = client.map(run_task, todo, pure=False)
    pending: list[dict] = []
    ran = failed = lost = 0
    flushed = time.monotonic()
    bar = tqdm(total=initial + len(todo), initial=initial, unit="task", desc="sweep",
               disable=not progress, smoothing=0.1)
    try:
        # results come gathered in batches, not one round trip per task
        for future, row in as_completed(futures, with_results=True, raise_errors=False):
            row = row if isinstance(row, dict) else _again(future)
            if row is None:
                lost += 1
            else:
                pending.append(row)
                ran += 1
                failed += row["error"] is not None
            future.release()
            bar.update(1)
            if pending and (len(pending) >= batch_rows
                            or time.monotonic() - flushed >= batch_seconds):
                write_part(out, pending)
                pending, flushed = [], time.monotonic()
    finally:
        bar.close()
        if pending:  # rows that finished before an interruption are kept
            write_part(out, pending)
        client.cancel(futures)
    return ran, failed, lost


def _again(future) -> dict | None:
    """The row of a task whose result could not be gathered (the worker holding it died):
    Dask computes it again; None when workers died on it more often than Dask retries."""
    try:
        return future.result()
    except Exception:  # noqa: BLE001 -- tasks never raise: workers died on this one
        return None


def comparable(frame):
    """The rows with what varies between runs of the same tasks (seconds, memory measured)
    dropped, sorted by task hash: two sweeps of the same grid give equal frames."""
    drop = [c for c in VOLATILE if c in frame.columns]
    return frame.drop(columns=drop).sort_values("task_hash").reset_index(drop=True)
