"""Lanes: a kernel's work cut into a fixed number of independent parts, run by up to that many
threads.

A kernel that parallelises itself splits its work into ``LANES`` lanes whatever the thread
count (samples, channels or rows, each lane writing its own outputs and, for a reduction, its
own partial result, summed in lane order), so the bits are the same on one thread or two: the
thread count decides only which thread runs which lane. Lane 0 runs on the calling thread, the
others on persistent helper threads fed through queues; numpy and BLAS release the GIL inside
their loops, so the lanes run in parallel. The caller blocks (it does not spin) while it waits,
so a descheduled helper costs the time it is away and no more.

>>> out = [0, 0]
>>> run_lanes(lambda lane: out.__setitem__(lane, lane + 1), threads=2)
>>> out
[1, 2]
>>> [(s.start, s.stop) for s in split(5)]
[(0, 3), (3, 5)]
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

from trainplan.planner.layers.conv import LANES

__all__ = ["LANES", "before_threads", "over_lanes", "run_lanes", "split"]


class _Helper:
    """One persistent daemon thread running the lanes handed to it, one at a time."""

    def __init__(self, index: int):
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=f"trainplan-lane-{index}",
                                       daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        _local.helper = True
        while True:
            work, lanes = self.tasks.get()
            try:
                for lane in lanes:
                    work(lane)
                self.done.put(None)
            except BaseException as exc:  # handed back to the caller, raised there
                self.done.put(exc)


_local = threading.local()
_helpers: list[_Helper] = []
# called before lanes start on threads: the lane worker stops polling, which would hold a core
_before_threads: list[Callable[[], object]] = []
_busy = threading.Lock()  # one caller at a time uses the helpers; others run their lanes alone


def _reset_after_fork() -> None:
    global _busy
    _helpers.clear()  # a forked child has none of the parent's threads
    _before_threads.clear()  # nor its lane worker
    _busy = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def before_threads(hook: Callable[[], object], *, remove: bool = False) -> None:
    """Call ``hook()`` whenever lanes are about to start on threads (the lane worker naps, so
    the core it polls on is free for them); ``remove``: stop calling it."""
    if remove:
        if hook in _before_threads:
            _before_threads.remove(hook)
    else:
        _before_threads.append(hook)


def split(n: int, lanes: int = LANES) -> list[slice]:
    """``range(n)`` cut into ``lanes`` contiguous parts, the larger ones first (some may be
    empty when ``n < lanes``)."""
    step, extra = divmod(n, lanes)
    out, start = [], 0
    for lane in range(lanes):
        stop = start + step + (lane < extra)
        out.append(slice(start, stop))
        start = stop
    return out


def run_lanes(work: Callable[[int], object], threads: int, lanes: int = LANES) -> None:
    """``work(lane)`` for every lane in ``range(lanes)``, on up to ``threads`` threads: thread
    t runs lanes t, t + threads, ... in order. Lanes must not depend on each other. The first
    exception of any lane is raised once all have finished."""
    threads = min(threads, lanes)
    if threads <= 1 or getattr(_local, "helper", False) or not _busy.acquire(blocking=False):
        for lane in range(lanes):
            work(lane)
        return
    error: BaseException | None = None
    for quiet in _before_threads:
        quiet()
    try:
        while len(_helpers) < threads - 1:
            _helpers.append(_Helper(len(_helpers) + 1))
        used = _helpers[:threads - 1]
        for t, helper in enumerate(used, start=1):
            helper.tasks.put((work, range(t, lanes, threads)))
        try:
            for lane in range(0, lanes, threads):
                work(lane)
        except BaseException as exc:
            error = exc
        for helper in used:  # wait for every helper, whatever happened here
            failed = helper.done.get()
            error = error or failed
    finally:
        _busy.release()
    if error is not None:
        raise error


def over_lanes(n: int, threads: int, work: Callable[[slice], object], *,
               elementwise: bool = False, lanes: int = LANES) -> None:
    """``work(part)`` for each of the ``lanes`` parts of ``range(n)`` (``split``), on up to
    ``threads`` threads; empty parts are skipped. ``elementwise``: every element's (or row's)
    result is computed on its own, the same bits whatever the cut, so one thread takes
    ``range(n)`` in one call."""
    if (elementwise and threads <= 1) or lanes == 1:
        work(slice(0, n))
        return
    parts = [p for p in split(n, lanes) if p.stop > p.start]
    run_lanes(lambda k: work(parts[k]), threads, len(parts))
