"""A real Dask cluster on this machine, for the sweep tests and benchmark: a scheduler and its
workers as separate processes, all listening on 127.0.0.1 at ports the system chose, stopped
by whoever started them (and by themselves a minute after losing their scheduler)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"


@dataclass
class LocalDask:
    """A scheduler's address and the worker processes started with it."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def processes(self) -> list[subprocess.Popen]:
        return [self.scheduler, *self.workers]


def _start(args: list[str], log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {seconds} s")
        time.sleep(0.2)


def start_local_dask(tmp, workers: int = 2) -> LocalDask:
    """A scheduler on 127.0.0.1 (port 0: the system picks a free one, written to a scheduler
    file) and ``workers`` one-thread workers without nannies (so that killing one kills it),
    each giving up by itself a minute after losing its scheduler."""
    file = os.path.join(tmp, "scheduler.json")
    with open(os.path.join(tmp, "dask.log"), "ab") as log:  # the processes keep their copy
        scheduler = _start(["distributed.cli.dask_scheduler", "--host", LOOPBACK, "--port",
                            "0", "--no-dashboard", "--dashboard-address", f"{LOOPBACK}:0",
                            "--scheduler-file", file, "--idle-timeout", "600"], log)
        cluster = LocalDask("", scheduler)
        try:
            _wait_for(lambda: os.path.exists(file) and os.path.getsize(file) > 0, 60,
                      "the scheduler's start")
            with open(file) as fh:
                cluster.address = json.load(fh)["address"]
            if not cluster.address.startswith(f"tcp://{LOOPBACK}:"):
                raise RuntimeError(f"the scheduler listens at {cluster.address}, not on "
                                   f"{LOOPBACK}")
            for i in range(workers):
                cluster.workers.append(_start(
                    ["distributed.cli.dask_worker", cluster.address, "--host", LOOPBACK,
                     "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}",
                     "--death-timeout", "60"], log))
            _wait_for(lambda: _count_workers(cluster.address) >= workers, 90,
                      "the workers' start")
        except BaseException:
            stop_local_dask(cluster)
            raise
    return cluster


def _count_workers(address: str) -> int:
    from dask.distributed import Client

    with Client(address, timeout="10s") as client:
        return len(client.scheduler_info()["workers"])


def stop_local_dask(cluster: LocalDask) -> None:
    """Stop exactly the processes ``start_local_dask`` started: the workers, then the
    scheduler."""
    for proc in [*cluster.workers, cluster.scheduler]:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
