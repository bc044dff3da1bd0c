"""Storage measured the way the runtime swaps through to it (runtime/swapio.py, ``through``).

The swap file moves one buffer per request, one request at a time on one thread: a write is
``pwrite`` + ``fdatasync`` + ``posix_fadvise(DONTNEED)``, a read is ``preadv`` of pages the
cache no longer holds + ``posix_fadvise(DONTNEED)``, with read-ahead off
(``POSIX_FADV_RANDOM``: pages of other swapped buffers must not come back into RAM), every
buffer at a page-aligned offset of a file whose blocks were written before (a steady-state
swap file; a first write to a hole also commits the allocation). This module times exactly
those requests at the sizes asked (by default a ladder from 4 KiB to 16 MiB; a benchmark
passes its plans' transfer sizes), on a file of their slots, sizes in a shuffled order each
round, and fits ``seconds = latency + bytes / bandwidth`` per kind to the mean of each size
(least squares on relative errors, so small requests weigh as much as large ones). The
simulator's storage model (simulator/engine.py) is exactly that line, one request at a time on
a shared channel: a request holds the channel as long as it lasts, so the mean is the figure
(a median leaves out the occasional fsync that takes ten times as long and delays every request
queued behind it).

The requests are timed while a thread computes beside them (``computing_probe``: small numpy
passes and products, as a training iteration's kernels make), since that is when a training
run makes them: the swap file's transfer thread needs the interpreter lock between its system
calls, and the computing thread holds it between its numpy calls, so each request takes longer
than on an idle interpreter (about 20 µs more per write on this virtual machine, 10-25 µs per
read; swapping lenet5 makes 16-40 requests an iteration).

What a transfer takes from computing (``measure_transfer_interference``): a one-thread GEMM
loop timed alone and issuing swap requests through the runtime's swap file as it computes,
alternately; the slowdown per request, at a small and a large request size, fitted to the same
line. It is more than the transfer thread's own CPU time (about twice, on this virtual machine):
the submission, the hand-offs of the interpreter lock, the kernel's writeback, the virtual
disk's emulation and the copies' memory traffic slow the computing too. The same loop gives
the swap thread's pickup: how long the storage sits idle before each request starts, once the
request is queued and the one before it is done (the thread woken, the interpreter lock
regained) — the mean over every request of ``started - max(submitted, previous ended)``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from trainplan.runtime.swapio import PAGE, SwapFile, page_round, swap_request

REQUEST_SIZES = tuple(PAGE * 4**k for k in range(7))  # 4 KiB .. 16 MiB
STORAGE_KEYS = ("read_latency", "read_bandwidth", "write_latency", "write_bandwidth")
INTERFERENCE_KEYS = ("cpu_latency", "cpu_bandwidth", "pickup")
_PER_REQUEST = ("read_latency", "write_latency", "cpu_latency", "pickup")  # averaged as seconds


def fit_line(sizes: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """``(latency, bandwidth)`` of ``seconds ≈ latency + size / bandwidth``, least squares on
    relative errors, latency >= 0.

    >>> lat, bw = fit_line([1e3, 1e6, 1e7], [0.001 + s / 1e8 for s in (1e3, 1e6, 1e7)])
    >>> round(lat, 9), round(bw)
    (0.001, 100000000)
    """
    s, t = np.asarray(sizes, float), np.asarray(seconds, float)
    w = 1.0 / np.maximum(t, 1e-12)
    a = np.column_stack([np.ones_like(s), s]) * w[:, None]
    latency, per_byte = np.linalg.lstsq(a, t * w, rcond=None)[0]
    if latency < 0:  # no fixed cost measurable: a line through the origin
        latency, per_byte = 0.0, float(np.sum(s * t * w * w) / np.sum(s * s * w * w))
    if per_byte <= 0:  # the fixed cost hides the bytes: give them 1% of the largest request
        largest = int(np.argmax(s))
        per_byte = 0.01 * float(t[largest] / s[largest])
        latency = max(0.0, float(np.sum((t - s * per_byte) * w * w) / np.sum(w * w)))
    return float(latency), float(1.0 / per_byte)


def computing_probe(stop: threading.Event) -> None:
    """Compute until ``stop`` is set as a training iteration's kernels do: element-wise passes
    over arrays of tens of kilobytes and products too small for BLAS to thread, the
    interpreter lock taken and released around every call."""
    a, b = np.full(4096, 0.5, np.float32), np.full(4096, 1.5, np.float32)
    c = np.empty_like(a)
    m = np.full((48, 48), 0.5, np.float32)
    out = np.empty_like(m)
    while not stop.is_set():
        for _ in range(20):
            np.multiply(a, b, out=c)
            np.add(c, a, out=c)
            np.matmul(m, m, out=out)


def measure_swap_storage(directory: str, sizes: Sequence[int] = REQUEST_SIZES, *,
                         rounds: int = 5, seed: int = 0,
                         beside: Callable[[threading.Event], None] | None = computing_probe,
                         min_seconds: float = 0.0) -> dict:
    """Time swap requests of ``sizes`` in a temporary file in ``directory`` (removed even on
    error) while ``beside(stop)`` runs on another thread (None: nothing beside): ``rounds``
    rounds of every size, more until ``min_seconds`` have passed (a disk whose latency drifts
    from second to second is timed over a window, not an instant); returns the
    fitted ``read_/write_bandwidth`` and ``read_/write_latency``, the mean seconds per size and
    kind (``requests``) and the ``method``."""
    if not (hasattr(os, "posix_fadvise") and hasattr(os, "fdatasync")):
        raise OSError("this system lacks posix_fadvise or fdatasync, which swapping through "
                      "to storage uses")
    sizes = sorted({int(s) for s in sizes if s > 0})
    slots = np.cumsum([0] + [page_round(s) for s in sizes])
    data = np.random.default_rng(seed).integers(0, 256, max(sizes), np.uint8)
    out = np.empty(max(sizes), np.uint8)
    fd, path = tempfile.mkstemp(prefix=".trainplan-calibrate-swap-", dir=directory)
    times: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    stop = threading.Event()
    computing = None if beside is None else threading.Thread(target=beside, args=(stop,),
                                                              daemon=True)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for i, s in enumerate(sizes):  # allocate every slot, as a steady swap file has them
            swap_request(fd, "write", memoryview(data[:s]), int(slots[i]))
        rng = np.random.default_rng(seed)
        if computing is not None:
            computing.start()
        window, done = time.perf_counter(), 0
        while done < rounds or time.perf_counter() - window < min_seconds:
            done += 1
            for kind in ("write", "read"):
                for i in rng.permutation(len(sizes)):
                    s = sizes[i]
                    buf = memoryview(data[:s] if kind == "write" else out[:s])
                    began, cpu0 = time.perf_counter(), time.thread_time()
                    swap_request(fd, kind, buf, int(slots[i]))
                    times.setdefault((kind, s), []).append(time.perf_counter() - began)
                    cpu.setdefault((kind, s), []).append(time.thread_time() - cpu0)
    finally:
        stop.set()
        if computing is not None and computing.is_alive():
            computing.join()
        os.close(fd)
        os.unlink(path)
    means = {key: statistics.fmean(v) for key, v in times.items()}
    method = ("swap requests: pwrite+fdatasync / preadv, posix_fadvise DONTNEED after each, "
              "read-ahead off (POSIX_FADV_RANDOM); mean per size")
    if beside is not None:
        method += f", a thread computing beside ({beside.__name__})"
    result: dict = {"method": method, "rounds": done,
                    "requests": {f"{k} {s}": round(t, 9) for (k, s), t in means.items()}}
    for kind in ("read", "write"):
        latency, bandwidth = fit_line(sizes, [means[(kind, s)] for s in sizes])
        result[f"{kind}_latency"], result[f"{kind}_bandwidth"] = latency, bandwidth
    result["thread_cpu"] = {f"{k} {s}": round(statistics.median(v), 9)
                            for (k, s), v in cpu.items()}
    return result


def _gemm_loop(reps: int, n: int = 384, swap: SwapFile | None = None,
               data: np.ndarray | None = None, back: np.ndarray | None = None
               ) -> tuple[float, int]:
    """Seconds of ``reps`` float32 n×n products on one BLAS thread (the computing probe) and
    the swap requests completed meanwhile: with ``swap``, before each product, once the last
    pair is done, it queues writing ``data`` and reading ``back`` through the swap file, as
    the swap controller does between ops."""
    a = np.full((n, n), 0.5, np.float32)
    out = np.empty_like(a)
    pending: list = []
    done = 0
    began = time.perf_counter()
    for _ in range(reps):
        if swap is not None and all(t.done for t in pending):
            done += len(pending)
            pending = [swap.write(data, 0, "probe"), swap.read(back, page_round(data.size),
                                                              "probe")]
        np.matmul(a, a, out=out)
    elapsed = time.perf_counter() - began
    done += sum(t.done for t in pending)
    for t in pending:
        t.wait()
    return elapsed, done


def pickup_seconds(tickets: Sequence) -> float:
    """The mean time the storage idled before each of ``tickets`` (served in order by one
    thread) started: ``started - max(submitted, the previous one's ended)``, never below 0.

    >>> from types import SimpleNamespace as T
    >>> round(pickup_seconds([T(submitted=0, started=1, ended=5),
    ...                       T(submitted=2, started=7, ended=9)]), 6)  # 1 s, then 2 s
    1.5
    """
    gaps, previous = [], float("-inf")
    for t in tickets:
        gaps.append(max(0.0, t.started - max(t.submitted, previous)))
        previous = t.ended
    return statistics.fmean(gaps) if gaps else 0.0


def measure_transfer_interference(directory: str, sizes: Sequence[int] = (2**16, 2**22), *,
                                  pairs: int = 5, reps: int = 120) -> dict:
    """The computing time swap requests take from the thread that computes and issues them:
    per size, ``pairs`` alternations of a GEMM loop alone and issuing write + read requests of
    that size through the runtime's swap file (runtime/swapio.py ``SwapFile``, through to
    storage, its transfer thread serving them: the submission, the hand-offs of the
    interpreter lock, the system calls' and the storage's load on the machine); the median
    slowdown per request, fitted to ``latency + bytes / bandwidth`` (``cpu_latency``,
    ``cpu_bandwidth``); ``pickup``: ``pickup_seconds`` of every request issued; ``requests``:
    seconds per request."""
    sizes = sorted({int(s) for s in sizes})
    data = np.random.default_rng(0).integers(0, 256, max(sizes), np.uint8)
    back = np.empty_like(data)
    per_request: dict[int, float] = {}
    with SwapFile(2 * page_round(max(sizes)), directory, through=True) as swap, \
            threadpool_limits(limits=1, user_api="blas"):
        swap.journal = []
        for size in sizes:
            slow = []
            for _ in range(pairs):
                alone, _ = _gemm_loop(reps)
                busy, done = _gemm_loop(reps, swap=swap, data=data[:size], back=back[:size])
                slow.append((busy - alone) / max(done, 1))
            per_request[size] = max(statistics.median(slow), 1e-7)
        pickup = pickup_seconds(swap.journal)
    latency, bandwidth = fit_line(sizes, [per_request[s] for s in sizes])
    return {"cpu_latency": latency, "cpu_bandwidth": bandwidth, "pickup": pickup,
            "requests": {s: round(t, 9) for s, t in per_request.items()}}


def mean_storage(*timings: dict) -> dict:
    """Several ``measure_swap_storage`` (or ``measure_transfer_interference``) results as one:
    latencies, pickups and seconds per byte averaged (e.g. storage timed before and after a
    measurement)."""
    out = {"method": timings[0].get("method", ""), "requests": timings[0].get("requests", {})}
    keys = [k for k in (*STORAGE_KEYS, *INTERFERENCE_KEYS) if all(k in t for t in timings)]
    for key in keys:
        values = [t[key] for t in timings]
        out[key] = (float(np.mean(values)) if key in _PER_REQUEST
                    else float(1.0 / np.mean([1.0 / v for v in values])))
    return out
