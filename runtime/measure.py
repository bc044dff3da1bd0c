"""A measured timeline: the numpy runtime timed EO by EO, in the simulator's event columns.

``measure`` sets up a Session, runs ``warmup`` iterations (they touch the arena's pages and warm
the caches), then records ``iterations`` more. Every EO that has ops becomes one row per
recorded iteration, timed by hooks chained around the executor's own ``before_eo``/``after_eo``
(the swap controller's, when there is one), so runtime/engine.py stays untouched. In the nntrainer
order every EO holds one op; when an EO holds several, its row names them joined with ``+``.

Columns, as ``Timeline.events`` has them: ``iteration`` (0-based over the recorded ones),
``eo``, ``step``, ``layer``, ``op``, ``start_s``, ``end_s``, ``stall_s``, ``resident_bytes``,
``bytes_read``, ``bytes_written``. Seconds count from the start of the first recorded
iteration: an EO is ready when its ``before_eo`` hook is entered (``start_s - stall_s``; empty
EOs before it count in), waits ``stall_s`` inside the swap controller, and ends when its
``after_eo`` hook returns. ``resident_bytes`` is the process's RSS after the EO (read outside
the timed span); ``bytes_read``/``bytes_written`` are what the swap file finished moving during
the EO. The summary takes medians over the recorded iterations (the machine may be shared);
``peak_rss_bytes`` is the largest RSS seen at an EO boundary of the recorded iterations,
``process_peak_rss_bytes`` the process's lifetime peak (getrusage), which also covers whatever
ran before in the same process.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import networkx as nx
import numpy as np
import pandas as pd
import psutil

from runtime.data import synthetic
from runtime.session import Session, SessionOptions

EVENT_COLUMNS = ["iteration", "eo", "step", "layer", "op", "start_s", "end_s", "stall_s",
                 "resident_bytes", "bytes_read", "bytes_written"]


@dataclass(frozen=True)
class MeasuredSummary:
    """Figures of a measured run; seconds are per iteration (median over the recorded ones)."""

    model: str
    planner: str
    batch: int | None
    warmup: int
    iterations: int
    seconds_per_iteration: float
    iteration_seconds: tuple[float, ...]
    stall_seconds: float
    bytes_read: int
    bytes_written: int
    peak_rss_bytes: int
    process_peak_rss_bytes: int
    arena_bytes: int
    load_average: tuple[float, float]
    cpu_count: int
    blas_threads: int | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """``events``: one row per EO with ops per recorded iteration; ``summary``: the figures;
    ``plan``: the plan the session ran (None for the reference run)."""

    events: pd.DataFrame
    summary: MeasuredSummary
    plan: object = field(default=None, compare=False, repr=False)

    def median_iteration(self) -> pd.DataFrame:
        """The rows of the recorded iteration whose wall time is the median, times from 0."""
        secs = np.asarray(self.summary.iteration_seconds)
        it = int(np.argsort(secs)[(len(secs) - 1) // 2])
        rows = self.events[self.events["iteration"] == it].reset_index(drop=True)
        shift = rows["start_s"].iloc[0] - rows["stall_s"].iloc[0] if len(rows) else 0.0
        rows[["start_s", "end_s"]] -= shift
        return rows


class EOTimer:
    """Hooks timing every EO, chained around an executor's existing hooks."""

    def __init__(self, executor, controller=None, swapfile=None,
                 clock: Callable[[], float] = time.perf_counter):
        self.executor, self.controller, self.swapfile, self.clock = (
            executor, controller, swapfile, clock)
        self.inner_before, self.inner_after = executor.before_eo, executor.after_eo
        self.rows: list[dict] = []
        self.iteration, self.origin = 0, 0.0
        self.process = psutil.Process()
        self._ready: float | None = None
        self._stall = 0.0
        self._moved = self._swap_counters()

    def install(self) -> EOTimer:
        self.executor.before_eo, self.executor.after_eo = self.before_eo, self.after_eo
        return self

    def uninstall(self) -> None:
        self.executor.before_eo, self.executor.after_eo = self.inner_before, self.inner_after

    def _swap_counters(self) -> tuple[int, int]:
        f = self.swapfile
        return (f.bytes_read, f.bytes_written) if f is not None else (0, 0)

    def _stall_total(self) -> float:
        return self.controller.stall_seconds if self.controller is not None else 0.0

    def before_eo(self, e: int) -> None:
        now = self.clock()
        if self._ready is None:  # the first EO since the last row: empty EOs count in
            self._ready = now
        stall0 = self._stall_total()
        if self.inner_before:
            self.inner_before(e)
        self._stall += self._stall_total() - stall0

    def after_eo(self, e: int) -> None:
        if self.inner_after:
            self.inner_after(e)
        end = self.clock()
        ops = self.executor.ops_at[e]
        if not ops:
            return
        moved = self._swap_counters()
        nodes = self.executor.graph.nodes
        self.rows.append({
            "iteration": self.iteration, "eo": e,
            "step": "+".join(nodes[o]["step"] for o in ops),
            "layer": "+".join(dict.fromkeys(nodes[o]["layer"] for o in ops)),
            "op": "+".join(ops), "start_s": self._ready + self._stall - self.origin,
            "end_s": end - self.origin, "stall_s": self._stall,
            "resident_bytes": self.process.memory_info().rss,
            "bytes_read": moved[0] - self._moved[0], "bytes_written": moved[1] - self._moved[1]})
        self._moved, self._ready, self._stall = moved, None, 0.0

    def start_iteration(self, iteration: int, origin: float) -> None:
        self.iteration, self.origin, self._ready, self._stall = iteration, origin, None, 0.0
        self._moved = self._swap_counters()


def _summary(graph: nx.DiGraph, session: Session, events: pd.DataFrame, walls: list[float],
             warmup: int, load: tuple[float, float], threads: int | None) -> MeasuredSummary:
    per_it = events.groupby("iteration")[["stall_s", "bytes_read", "bytes_written"]].sum()
    return MeasuredSummary(
        model=str(graph.graph.get("model", "")),
        planner=session.options.planner or "reference", batch=graph.graph.get("batch"),
        warmup=warmup, iterations=len(walls), seconds_per_iteration=float(np.median(walls)),
        iteration_seconds=tuple(walls), stall_seconds=float(per_it["stall_s"].median()),
        bytes_read=int(per_it["bytes_read"].median()),
        bytes_written=int(per_it["bytes_written"].median()),
        peak_rss_bytes=int(events["resident_bytes"].max()) if len(events) else 0,
        process_peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        arena_bytes=int(session.arena_bytes), load_average=load, cpu_count=os.cpu_count() or 1,
        blas_threads=threads)


def blas_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """A context limiting the BLAS thread pool to ``threads`` (None: leave it alone).

    On a shared machine a multi-threaded BLAS makes a small product wait for a descheduled
    worker thread, up to a scheduler slice (tens of ms for a 0.1 ms GEMM); one thread measures
    the kernels, not the neighbours."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        raise RuntimeError("limiting BLAS threads needs threadpoolctl (pip install "
                           "threadpoolctl; scikit-learn brings it)") from exc
    return threadpool_limits(limits=threads, user_api="blas")


def measure(graph: nx.DiGraph, options: SessionOptions | None = None, *, warmup: int = 1,
            iterations: int = 3, min_seconds: float = 0.0, max_iterations: int = 50,
            threads: int | None = None, seed: int = 0,
            on_iteration: Callable[[int, float], None] | None = None) -> Measurement:
    """Train ``warmup`` iterations of ``graph`` on one synthetic batch, then record at least
    ``iterations`` more (and more while fewer than ``min_seconds`` were recorded, up to
    ``max_iterations``), timing every EO, with ``threads`` BLAS threads (None: as configured);
    ``on_iteration(i, seconds)`` reports progress (negative ``i`` for warm-up)."""
    if warmup < 0 or iterations < 1 or max_iterations < iterations:
        raise ValueError(f"need warmup >= 0 and 1 <= iterations <= max_iterations, got "
                         f"{warmup}, {iterations}, {max_iterations}")
    options = options or SessionOptions()
    batch = synthetic(graph, graph.graph["batch"], seed=seed).arrays
    load0 = os.getloadavg()[0]
    with blas_threads(threads), Session(graph, options) as session:
        for i in range(warmup):
            session.step(batch)
            if on_iteration:
                on_iteration(i - warmup, float("nan"))
        timer = EOTimer(session.executor, session.controller, session.swapfile).install()
        walls: list[float] = []
        origin = time.perf_counter()
        while len(walls) < iterations or (sum(walls) < min_seconds
                                          and len(walls) < max_iterations):
            began = time.perf_counter()
            timer.start_iteration(len(walls), origin)
            session.step(batch)
            walls.append(time.perf_counter() - began)
            if on_iteration:
                on_iteration(len(walls) - 1, walls[-1])
        timer.uninstall()
        events = pd.DataFrame(timer.rows, columns=EVENT_COLUMNS)
        load = (round(load0, 2), round(os.getloadavg()[0], 2))
        summary = _summary(graph, session, events, walls, warmup, load, threads)
        return Measurement(events, summary, getattr(session, "plan", None))
