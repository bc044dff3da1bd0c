"""Storage measured the way the runtime swaps through to it (runtime/swapio.py, ``through``).

The swap file moves one buffer per request, one request at a time on one thread: a write is
``pwrite`` + ``fdatasync`` + ``posix_fadvise(DONTNEED)``, a read is ``preadv`` of pages the
cache no longer holds + ``posix_fadvise(DONTNEED)``, with read-ahead off
(``POSIX_FADV_RANDOM``: pages of other swapped buffers must not come back into RAM), every
buffer at a page-aligned offset of a file whose blocks were written before (a steady-state
swap file; a first write to a hole also commits the allocation). This module times exactly
those requests at the sizes asked (by default a ladder from 4 KiB to 16 MiB; a benchmark
passes its plans' transfer sizes), on a file of their slots, sizes in a shuffled order each
round, and fits ``seconds = latency + bytes / bandwidth`` per kind to the medians (least
squares on relative errors, so small requests weigh as much as large ones). The simulator's
storage model (simulator/engine.py) is exactly that line, one request at a time on a shared
channel. The CPU time of each request (the calling thread's: system calls, copies between the
page cache and the buffer) is fitted the same way, reads and writes together: the time a
transfer takes from computing on a host with no core to spare.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Sequence

import numpy as np

PAGE = 4096
REQUEST_SIZES = tuple(PAGE * 4**k for k in range(7))  # 4 KiB .. 16 MiB
STORAGE_KEYS = ("read_latency", "read_bandwidth", "write_latency", "write_bandwidth",
                "cpu_latency", "cpu_bandwidth")


def page_round(nbytes: int) -> int:
    """``nbytes`` rounded up to whole pages (the span a buffer's slot and its advice cover)."""
    return -(-nbytes // PAGE) * PAGE


def swap_request(fd: int, kind: str, buf: memoryview, offset: int) -> int:
    """One request as the swap file makes it through to storage; returns the bytes moved."""
    if kind == "write":
        done = os.pwrite(fd, buf, offset)
        os.fdatasync(fd)
    else:
        done = os.preadv(fd, [buf], offset)
    os.posix_fadvise(fd, offset, page_round(done), os.POSIX_FADV_DONTNEED)
    return done


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


def measure_swap_storage(directory: str, sizes: Sequence[int] = REQUEST_SIZES, *,
                         rounds: int = 5, seed: int = 0) -> dict:
    """Time swap requests of ``sizes`` in a temporary file in ``directory`` (removed even on
    error); returns the fitted ``read_/write_bandwidth`` and ``read_/write_latency``, the
    median seconds per size and kind (``requests``) and the ``method``."""
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
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for i, s in enumerate(sizes):  # allocate every slot, as a steady swap file has them
            swap_request(fd, "write", memoryview(data[:s]), int(slots[i]))
        rng = np.random.default_rng(seed)
        for _ in range(rounds):
            for kind in ("write", "read"):
                for i in rng.permutation(len(sizes)):
                    s = sizes[i]
                    buf = memoryview(data[:s] if kind == "write" else out[:s])
                    began, cpu0 = time.perf_counter(), time.thread_time()
                    swap_request(fd, kind, buf, int(slots[i]))
                    times.setdefault((kind, s), []).append(time.perf_counter() - began)
                    cpu.setdefault((kind, s), []).append(time.thread_time() - cpu0)
    finally:
        os.close(fd)
        os.unlink(path)
    medians = {key: statistics.median(v) for key, v in times.items()}
    result: dict = {"method": "swap requests: pwrite+fdatasync / preadv, posix_fadvise "
                              "DONTNEED after each, read-ahead off (POSIX_FADV_RANDOM)",
                    "requests": {f"{k} {s}": round(t, 9) for (k, s), t in medians.items()}}
    for kind in ("read", "write"):
        latency, bandwidth = fit_line(sizes, [medians[(kind, s)] for s in sizes])
        result[f"{kind}_latency"], result[f"{kind}_bandwidth"] = latency, bandwidth
    cpu_medians = {key: statistics.median(v) for key, v in cpu.items()}
    result["cpu_latency"], result["cpu_bandwidth"] = fit_line(
        [s for _, s in cpu_medians], [max(v, 1e-7) for v in cpu_medians.values()])
    return result


def mean_storage(*timings: dict) -> dict:
    """Several ``measure_swap_storage`` results as one: latencies and seconds per byte
    averaged (e.g. storage timed before and after a measurement)."""
    out = {"method": timings[0]["method"], "requests": timings[0]["requests"]}
    for key in STORAGE_KEYS:
        values = [t[key] for t in timings]
        out[key] = (float(np.mean(values)) if key.endswith("latency")
                    else float(1.0 / np.mean([1.0 / v for v in values])))
    return out
