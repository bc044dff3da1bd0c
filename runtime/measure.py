"""A measured timeline: the numpy runtime timed EO by EO, in the simulator's event columns.

``measure`` sets up a Session, runs ``warmup`` iterations (they touch the arena's pages and warm
the caches), then records ``iterations`` more. Every EO that has ops becomes one row per
recorded iteration, timed by hooks chained around the executor's own ``before_eo``/``after_eo``
(the swap controller's, when there is one), so runtime/engine.py stays untouched. In the nntrainer
order every EO holds one op; when an EO holds several, its row names them joined with ``+``.

Columns, as ``Timeline.events`` has them: ``iteration`` (0-based over the recorded ones),
``eo``, ``step``, ``layer``, ``op``, ``start_s``, ``end_s``, ``stall_s``, ``rss_bytes``,
``bytes_read``, ``bytes_written``, ``cpu_s`` and ``threads`` (the most threads the thread
policy gave an op of the EO: runtime/kernels/threads.py). Seconds count from the start of the
first recorded iteration. The rows tile each iteration: an EO is ready (``start_s - stall_s``) when
the previous row ends (the first when ``step`` is called), waits ``stall_s`` inside the swap
controller, and ends when its ``after_eo`` hook returns (the last when ``step`` returns); so
empty EOs, the loop and the hooks (measuring included, a few µs per EO) count in the next row,
and a preemption by another process lands in the row it interrupted. ``rss_bytes`` is the process's RSS after the EO (read
outside the timed span, a few µs); ``bytes_read``/``bytes_written`` are what the swap file
finished moving during the EO (``Measurement.transfers`` has every transfer, with the EO that
issued it and its times; the summary's byte counts are per issuing iteration); ``cpu_s`` the process's CPU time over the row (all threads: with
one BLAS thread, the op's own work, which preemption by other processes does not stretch as it
stretches the wall clock). The summary takes medians over the recorded iterations (the machine may be shared);
``peak_rss_bytes`` is the largest RSS seen at an EO boundary of the recorded iterations,
``process_peak_rss_bytes`` the process's lifetime peak (getrusage), which also covers whatever
ran before in the same process.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import networkx as nx
import numpy as np
import pandas as pd
import psutil

from trainplan.planner.errors import TrainplanError
from trainplan.planner.training_plan import TrainingPlan
from trainplan.runtime.data import synthetic
from trainplan.runtime.session import Session, SessionOptions

EVENT_COLUMNS = ["iteration", "eo", "step", "layer", "op", "start_s", "end_s", "stall_s",
                 "rss_bytes", "bytes_read", "bytes_written", "cpu_s", "threads"]
# one row per transfer the swap file was handed during a recorded iteration, as the simulator's
# Timeline.transfers has them: ``issue_eo`` the EO around which the controller issued it (a
# read before the EO's ops, a write after them), ``ready_s`` when it was queued, ``start_s``
# and ``end_s`` when the transfer thread began and finished it, ``cpu_s`` the CPU time that
# thread spent on it (copies between the page cache and the arena, system calls)
TRANSFER_COLUMNS = ["iteration", "tensor", "kind", "nbytes", "issue_eo", "ready_s", "start_s",
                    "end_s", "cpu_s"]


class MeasureError(TrainplanError, ValueError):
    """A measurement that cannot be taken as asked (counts, threads)."""


@dataclass(frozen=True)
class MeasuredSummary:
    """Figures of a measured run; seconds are per iteration, medians over the recorded ones.

    ``seconds_per_iteration``: the median wall time. ``uninterrupted_seconds``: the sum over EOs
    of each EO's median time plus the median time outside EOs, i.e. an iteration in which no op
    was preempted (robust on a shared machine). ``cpu_seconds``: the median CPU time of the
    whole process per iteration (every thread; with one BLAS thread, the work done).
    ``load_average``: the 1-minute load average before and after; ``other_cpus``: the CPUs
    other processes kept busy, on average, while the iterations were recorded (system busy
    time less ours, over the wall time). ``blas_threads``: the thread count pinned for the run
    (None: the thread policy followed the load); ``thread_policy`` says which policy ran."""

    model: str
    planner: str
    batch: int | None
    warmup: int
    iterations: int
    seconds_per_iteration: float
    iteration_seconds: tuple[float, ...]
    uninterrupted_seconds: float
    cpu_seconds: float
    stall_seconds: float
    bytes_read: int
    bytes_written: int
    peak_rss_bytes: int
    process_peak_rss_bytes: int
    arena_bytes: int
    load_average: tuple[float, float]
    other_cpus: float
    cpu_count: int
    blas_threads: int | None
    thread_policy: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """``events``: one row per EO with ops per recorded iteration; ``summary``: the figures;
    ``plan``: the plan the session ran (None for the reference run); ``transfers``: one row
    per swap transfer issued in a recorded iteration (TRANSFER_COLUMNS; empty without
    swapping)."""

    events: pd.DataFrame
    summary: MeasuredSummary
    plan: TrainingPlan | None = field(default=None, compare=False, repr=False)
    transfers: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=TRANSFER_COLUMNS), compare=False,
        repr=False)

    def __repr__(self) -> str:
        s = self.summary
        return (f"Measurement({s.model}, {s.planner}: {len(self.events)} EO rows over "
                f"{s.iterations} iterations, {s.seconds_per_iteration:.3g} s per iteration "
                f"(median), peak RSS {s.peak_rss_bytes:,} B)")


class ResidentSet:
    """The process's resident set size, read from /proc/self/statm through a file kept open
    (a few µs, so sampling it at every EO barely moves the wall clock); psutil elsewhere."""

    def __init__(self):
        try:
            self.fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self.fd = -1
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def read(self) -> int:
        if self.fd < 0:
            return int(psutil.Process().memory_info().rss)
        return int(os.pread(self.fd, 128, 0).split()[1]) * self.page

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class EOTimer:
    """Hooks timing every EO, chained around an executor's existing hooks."""

    def __init__(self, executor, controller=None, swapfile=None,
                 clock: Callable[[], float] = time.perf_counter):
        self.executor, self.controller, self.swapfile, self.clock = (
            executor, controller, swapfile, clock)
        self.inner_before, self.inner_after = executor.before_eo, executor.after_eo
        nodes = executor.graph.nodes
        self.labels = {e: ("+".join(nodes[o]["step"] for o in ops),
                           "+".join(dict.fromkeys(nodes[o]["layer"] for o in ops)),
                           "+".join(ops))
                       for e, ops in enumerate(executor.ops_at) if ops}
        self.rows: list[tuple] = []
        self.iteration, self.origin = 0, 0.0
        self.rss = ResidentSet()
        self._ready, self._cpu, self._stall = 0.0, 0.0, 0.0
        self._moved = self._swap_counters()
        self.issued: list[tuple] = []  # (iteration, issue EO, ticket, origin)
        if swapfile is not None:
            swapfile.journal = []

    def install(self) -> EOTimer:
        self.executor.before_eo, self.executor.after_eo = self.before_eo, self.after_eo
        return self

    def uninstall(self) -> None:
        self.executor.before_eo, self.executor.after_eo = self.inner_before, self.inner_after
        self.rss.close()
        if self.swapfile is not None:
            self.swapfile.journal = None

    def _issued_since(self, n: int, e: int) -> None:
        """Tickets the controller submitted around EO ``e`` (journal entries from ``n``)."""
        journal = self.swapfile.journal if self.swapfile is not None else None
        if journal is not None and len(journal) > n:
            self.issued += [(self.iteration, e, t, self.origin) for t in journal[n:]]

    def _journal_length(self) -> int:
        journal = self.swapfile.journal if self.swapfile is not None else None
        return len(journal) if journal is not None else 0

    def transfers(self) -> pd.DataFrame:
        """The recorded tickets as rows of TRANSFER_COLUMNS (call once they are all done)."""
        return pd.DataFrame([(it, t.buffer, t.kind, t.nbytes, e, t.submitted - origin,
                              t.started - origin, t.ended - origin, t.cpu_s)
                             for it, e, t, origin in self.issued], columns=TRANSFER_COLUMNS)

    def _swap_counters(self) -> tuple[int, int]:
        f = self.swapfile
        return (f.bytes_read, f.bytes_written) if f is not None else (0, 0)

    def _stall_total(self) -> float:
        return self.controller.stall_seconds if self.controller is not None else 0.0

    def before_eo(self, e: int) -> None:
        stall0, n = self._stall_total(), self._journal_length()
        if self.inner_before:
            self.inner_before(e)
        self._issued_since(n, e)
        self._stall += self._stall_total() - stall0

    def after_eo(self, e: int) -> None:
        n = self._journal_length()
        if self.inner_after:
            self.inner_after(e)
        self._issued_since(n, e)
        if e not in self.labels:  # an empty EO counts in the next row
            return
        end, cpu = self.clock(), time.process_time()
        moved = self._swap_counters()
        self.rows.append((self.iteration, e, *self.labels[e],
                          self._ready + self._stall - self.origin, end - self.origin,
                          self._stall, self.rss.read(), moved[0] - self._moved[0],
                          moved[1] - self._moved[1], cpu - self._cpu,
                          self.executor.threads_at[e]))
        self._moved, self._ready, self._cpu, self._stall = moved, end, cpu, 0.0

    def start_iteration(self, iteration: int, origin: float, began: float, cpu: float) -> None:
        """The next rows belong to ``iteration``, which started at ``began`` (CPU ``cpu``)."""
        self.iteration, self.origin = iteration, origin
        self._ready, self._cpu, self._stall = began, cpu, 0.0
        self._moved = self._swap_counters()

    def finish_iteration(self, end: float, cpu: float) -> None:
        """The time after the last row (trailing empty EOs, the return) joins that row."""
        if self.rows and self.rows[-1][0] == self.iteration:
            row = list(self.rows[-1])
            row[EVENT_COLUMNS.index("cpu_s")] += cpu - self._cpu
            row[EVENT_COLUMNS.index("end_s")] = end - self.origin
            self.rows[-1] = tuple(row)


def uninterrupted_seconds(events: pd.DataFrame, walls: Sequence[float]) -> float:
    """Σ over EOs of the median EO time (stall included), plus the median time spent outside
    EO rows (feeding the batch, the loop): an iteration no preemption hit."""
    took = events["end_s"] - events["start_s"] + events["stall_s"]
    per_eo = took.groupby(events["eo"]).median().sum()
    inside = took.groupby(events["iteration"]).sum().reindex(range(len(walls)), fill_value=0.0)
    return float(per_eo + np.median(np.asarray(walls) - inside.to_numpy()))


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs, every process)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def bytes_per_iteration(transfers: pd.DataFrame, iterations: int) -> pd.DataFrame:
    """Bytes read and written per iteration (columns ``bytes_read``, ``bytes_written``),
    counting every transfer in the iteration that issued it, however late it finished."""
    moved = transfers.pivot_table(index="iteration", columns="kind", values="nbytes",
                                  aggfunc="sum", fill_value=0)
    moved = moved.reindex(index=range(iterations), columns=["read", "write"], fill_value=0)
    return moved.rename(columns={"read": "bytes_read", "write": "bytes_written"}).astype(
        np.int64)


def _summary(graph: nx.DiGraph, session: Session, events: pd.DataFrame, walls: list[float],
             cpus: list[float], warmup: int, load: tuple[float, float], others: float,
             threads: int | None, transfers: pd.DataFrame) -> MeasuredSummary:
    per_it = events.groupby("iteration")[["stall_s"]].sum().join(
        bytes_per_iteration(transfers, len(walls)), how="outer").fillna(0)
    return MeasuredSummary(
        model=str(graph.graph.get("model", "")),
        planner=session.plan.provenance.offsets if session.plan else "reference",
        batch=graph.graph.get("batch"),
        warmup=warmup, iterations=len(walls), seconds_per_iteration=float(np.median(walls)),
        iteration_seconds=tuple(walls), uninterrupted_seconds=uninterrupted_seconds(events, walls),
        cpu_seconds=float(np.median(cpus)), stall_seconds=float(per_it["stall_s"].median()),
        bytes_read=int(per_it["bytes_read"].median()),
        bytes_written=int(per_it["bytes_written"].median()),
        peak_rss_bytes=int(events["rss_bytes"].max()) if len(events) else 0,
        process_peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        arena_bytes=int(session.arena_bytes), load_average=load, other_cpus=others,
        cpu_count=os.cpu_count() or 1, blas_threads=threads,
        thread_policy=session.executor.thread_policy())


def measure(graph: nx.DiGraph, plan: TrainingPlan | None,
            options: SessionOptions = SessionOptions(), *, warmup: int = 1,
            iterations: int = 3, min_seconds: float = 0.0, max_iterations: int = 50,
            threads: int | None = None, seed: int = 0,
            on_iteration: Callable[[int, float], None] | None = None) -> Measurement:
    """Train ``warmup`` iterations of ``graph`` on one synthetic batch, then record at least
    ``iterations`` more (and more while fewer than ``min_seconds`` were recorded, up to
    ``max_iterations``), timing every EO, every op on ``threads`` threads at most (the ops too
    small for more on one; None: the options', by default the thread policy's choice);
    ``on_iteration(i, seconds)`` reports progress (negative ``i`` for warm-up)."""
    if warmup < 0 or iterations < 1 or max_iterations < iterations:
        raise MeasureError(f"need warmup >= 0 and 1 <= iterations <= max_iterations, got "
                           f"{warmup}, {iterations}, {max_iterations}")
    if threads is not None:
        if threads < 1:
            raise MeasureError(f"threads must be at least 1, got {threads}")
        options = dataclasses.replace(options, threads=threads)
    batch = synthetic(graph, graph.graph["batch"], seed=seed).arrays
    load0 = os.getloadavg()[0]
    session = Session(graph, plan, options) if plan is not None else Session.reference(graph,
                                                                                      options)
    with session:
        for i in range(warmup):
            session.step(batch)
            if on_iteration:
                on_iteration(i - warmup, float("nan"))
        timer = EOTimer(session.executor, session.controller, session.swapfile).install()
        walls: list[float] = []
        cpus: list[float] = []
        origin, busy0, ours0 = time.perf_counter(), busy_seconds(), time.process_time()
        try:
            while len(walls) < iterations or (sum(walls) < min_seconds
                                              and len(walls) < max_iterations):
                began, cpu = time.perf_counter(), time.process_time()
                timer.start_iteration(len(walls), origin, began, cpu)
                session.step(batch)
                end, cpu_end = time.perf_counter(), time.process_time()
                timer.finish_iteration(end, cpu_end)
                walls.append(end - began)
                cpus.append(cpu_end - cpu)
                if on_iteration:
                    on_iteration(len(walls) - 1, walls[-1])
        finally:
            timer.uninstall()
        if session.controller is not None:
            session.controller.flush()  # every recorded transfer ends before it is read
        transfers = timer.transfers()
        others = (busy_seconds() - busy0 - (time.process_time() - ours0)) / (
            time.perf_counter() - origin)
        events = pd.DataFrame(timer.rows, columns=EVENT_COLUMNS)
        load = (round(load0, 2), round(os.getloadavg()[0], 2))
        summary = _summary(graph, session, events, walls, cpus, warmup, load,
                           round(max(0.0, others), 2), options.threads, transfers)
        return Measurement(events, summary, plan, transfers)
