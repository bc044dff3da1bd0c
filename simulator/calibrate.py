"""Measure this machine into a device profile like the shipped ones (`trainplan calibrate`).

Compute: float32 GEMM with numpy (the profile's GEMM throughput) and an in-cache elementwise
kernel (its efficiency); memory: large array copies. Storage, with a real file in the chosen
directory, the way the runtime swaps through to it (simulator/calibrate_storage.py): one buffer
per request, write + fdatasync, reads of pages the cache dropped, read-ahead off, at the request
sizes asked; latency and bandwidth fitted to them. The temporary file is removed even on error
or Ctrl-C.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable, Sequence

import numpy as np
import psutil
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from trainplan.simulator.calibrate_storage import (
    REQUEST_SIZES,
    measure_swap_storage,
    measure_transfer_interference,
)
from trainplan.simulator.device import (
    SCHEMA,
    DeviceProfile,
    profile_document,
    profile_from_dict,
)
from trainplan.simulator.units import quantity


def _best_seconds(fn: Callable[[], object], seconds: float, min_reps: int = 3) -> float:
    """Fastest of repeated calls, repeating for ``seconds`` and at least ``min_reps`` times."""
    best, began, reps = float("inf"), time.perf_counter(), 0
    while reps < min_reps or time.perf_counter() - began < seconds:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        reps += 1
    return best


def measure_gemm(n: int = 1024, seconds: float = 0.5, threads: int | None = None) -> float:
    """float32 matrix multiply throughput (FLOP/s), 2 n^3 FLOP per product, the fastest of
    repeated products on ``threads`` BLAS threads (None: as configured)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    out = np.empty((n, n), np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        return 2 * n**3 / _best_seconds(lambda: np.matmul(a, b, out=out), seconds)


def measure_elementwise(n: int = 1 << 15, seconds: float = 0.3) -> float:
    """FLOP/s of a*b+c on arrays that stay in cache (2 FLOP per element)."""
    a, b, c = (np.full(n, v, np.float32) for v in (1.0, 2.0, 3.0))
    out = np.empty(n, np.float32)

    def kernel():
        for _ in range(32):
            np.multiply(a, b, out=out)
            np.add(out, c, out=out)
    return 64 * n / _best_seconds(kernel, seconds)


def measure_memory_bandwidth(nbytes: int = 64 * 2**20, seconds: float = 0.5) -> float:
    """Bytes per second moved by a copy far larger than the caches (read + write counted)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    return 2 * src.nbytes / _best_seconds(lambda: np.copyto(dst, src), seconds)


def filesystem_of(directory: str) -> str:
    """The filesystem type of the mount holding ``directory`` ('' when unknown)."""
    path, best, kind = os.path.realpath(directory), "", ""
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                mount = parts[1]
                if (path == mount or path.startswith(mount.rstrip("/") + "/")) \
                        and len(mount) > len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def _notes(storage: dict, mem_bw: float, fs: str) -> list[str]:
    sizes = sorted({int(k.split()[1]) for k in storage["requests"]})
    notes = [(f"storage timed as the runtime swaps through to it ({storage['method']}), "
              f"{len(sizes)} request sizes from {sizes[0]:,} to {sizes[-1]:,} B; latency and "
              "bandwidth: the line latency + bytes / bandwidth fitted to the mean times")]
    if storage["read_bandwidth"] > 0.5 * mem_bw or fs in ("tmpfs", "ramfs"):
        notes.append(f"read bandwidth is near RAM speed (filesystem {fs or 'unknown'}): the "
                     "page cache or a RAM-backed filesystem was in play")
    notes.append("storage.shared_channel not measured: assumed shared (the conservative case)")
    notes.append("storage.cpu_latency and cpu_bandwidth: what one swap request takes from the "
                 "thread that computes and issues it (a one-thread GEMM loop timed alone and "
                 "issuing swap requests through the runtime's swap file), charged to the "
                 "compute stream; storage.pickup: the mean time the storage idled before each "
                 "of those requests started (the swap thread taking it up)")
    notes.append("compute.efficiency.conv not measured: default 0.6")
    return notes


def storage_sizes(largest: int, sizes: Sequence[int] | None = None) -> list[int]:
    """The request sizes storage is timed at: ``sizes`` when given, else the ladder of
    REQUEST_SIZES up to ``largest`` (``largest`` itself when it is below the ladder)."""
    if sizes:
        return sorted({int(s) for s in sizes if s > 0})
    return [s for s in REQUEST_SIZES if s <= largest] or [int(largest)]


def calibrate(directory: str = ".", *, storage_bytes: int = 256 * 2**20, name: str = "host",
              gemm_n: int = 1024, memory_bytes: int = 64 * 2**20, probe_seconds: float = 0.5,
              probes: int = 5, request_sizes: Sequence[int] | None = None,
              interference_pairs: int = 5,
              gemm_threads: int | None = None, progress: bool = True) -> DeviceProfile:
    """Measure this machine (a few seconds by default) and return it as a DeviceProfile.
    Storage: ``probes`` rounds of swap requests at ``request_sizes`` (default: the ladder up
    to ``storage_bytes``), and ``interference_pairs`` of a GEMM loop timed alone and beside
    them; GEMM on ``gemm_threads`` BLAS threads (None: as configured)."""
    phases = ["GEMM", "elementwise", "memory", "storage"]
    bar = tqdm(total=len(phases), desc="calibrating", disable=not progress, leave=False)
    try:
        bar.set_postfix_str("float32 GEMM")
        gemm = measure_gemm(gemm_n, probe_seconds, threads=gemm_threads)
        bar.update()
        bar.set_postfix_str("elementwise")
        elem = measure_elementwise(seconds=probe_seconds / 2)
        bar.update()
        bar.set_postfix_str("memory bandwidth")
        mem = measure_memory_bandwidth(memory_bytes, probe_seconds)
        bar.update()
        sizes = storage_sizes(storage_bytes, request_sizes)
        bar.set_postfix_str(f"storage ({len(sizes)} request sizes)")
        storage = measure_swap_storage(directory, sizes, rounds=probes)
        bar.set_postfix_str("what transfers take from computing")
        storage.update(measure_transfer_interference(directory, pairs=interference_pairs,
                                                     reps=120 if interference_pairs > 1 else 5)
                       | {"requests": storage["requests"]})
        bar.update()
    finally:
        bar.close()
    vm, fs = psutil.virtual_memory(), filesystem_of(directory)
    return profile_from_dict(_document(name, gemm, elem, mem, storage, vm, directory, fs),
                             f"{name} (calibrated)")


def _document(name, gemm, elem, mem, storage, vm, directory, fs) -> dict:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    src = f"measured by trainplan calibrate on {platform.node() or 'this host'}, {when}"
    eff = round(min(1.0, max(0.01, elem / gemm)), 4)
    return {
        "schema": SCHEMA, "name": name,
        "description": f"{platform.machine()} {platform.system()} host, {os.cpu_count()} CPUs, "
                       f"numpy {np.__version__}; storage: {os.path.realpath(directory)} ({fs})",
        "ram": quantity(vm.total / 2**20, "MiB", "psutil.virtual_memory().total"),
        "reserved": quantity((vm.total - vm.available) / 2**20, "MiB",
                             "total - available at calibration time"),
        "compute": {"gemm_throughput": quantity(gemm / 1e9, "GFLOP/s", src),
                    "efficiency": {"gemm": 1.0, "conv": 0.6, "elementwise": eff,
                                   "optimizer": eff},
                    "efficiency_source": "elementwise/optimizer: in-cache a*b+c over GEMM; "
                                         "conv: default",
                    "memory_bandwidth": quantity(mem / 1e9, "GB/s", src)},
        "storage": {"kind": f"{fs or 'unknown'} filesystem at {os.path.realpath(directory)}",
                    "read_bandwidth": quantity(storage["read_bandwidth"] / 1e6, "MB/s", src),
                    "write_bandwidth": quantity(storage["write_bandwidth"] / 1e6, "MB/s", src),
                    "read_latency": quantity(storage["read_latency"] * 1e3, "ms", src),
                    "write_latency": quantity(storage["write_latency"] * 1e3, "ms", src),
                    "shared_channel": True, **_cpu_fields(storage, src)},
        "notes": _notes(storage, mem, fs),
        "sources": [src],
    }


def with_gemm_peak(base: DeviceProfile, flops: float, source: str) -> DeviceProfile:
    """``base`` with its GEMM throughput (the peak efficiencies are fractions of) replaced by
    ``flops``, e.g. the best of GEMM probes on the BLAS threads the runtime ran with."""
    doc = dict(base.document) if base.document else profile_document(base)
    doc["compute"] = {**doc["compute"],
                      "gemm_throughput": quantity(flops / 1e9, "GFLOP/s", source)}
    return profile_from_dict(doc, f"{base.name} (GEMM peak measured again)")


def _cpu_fields(storage: dict, src: str) -> dict:
    """The time a transfer takes from computing (``storage.cpu_*``) and the swap thread's
    pickup (``storage.pickup``), when they were measured (``measure_transfer_interference``)."""
    out = {}
    if "cpu_bandwidth" in storage:
        out = {"cpu_latency": quantity(storage["cpu_latency"] * 1e3, "ms", src),
               "cpu_bandwidth": quantity(storage["cpu_bandwidth"] / 1e6, "MB/s", src)}
    if "pickup" in storage:
        out["pickup"] = quantity(storage["pickup"] * 1e6, "us", src)
    return out


def with_storage(base: DeviceProfile, storage: dict, source: str = "") -> DeviceProfile:
    """``base`` with the storage figures of ``storage`` (``measure_swap_storage``'s result),
    e.g. storage timed again beside a measurement on a machine whose disk others share."""
    doc = dict(base.document) if base.document else profile_document(base)
    src = source or "measure_swap_storage"
    doc["storage"] = {
        **doc["storage"],
        "read_bandwidth": quantity(storage["read_bandwidth"] / 1e6, "MB/s", src),
        "write_bandwidth": quantity(storage["write_bandwidth"] / 1e6, "MB/s", src),
        "read_latency": quantity(storage["read_latency"] * 1e3, "ms", src),
        "write_latency": quantity(storage["write_latency"] * 1e3, "ms", src),
        "shared_channel": True, **_cpu_fields(storage, src)}
    return profile_from_dict(doc, f"{base.name} (storage timed again)")


def profile_summary(p: DeviceProfile) -> dict:
    """The figures `trainplan calibrate` prints, in the units people read."""
    return {"device": p.name, "ram_mib": round(p.ram_bytes / 2**20),
            "available_mib": round(p.available_bytes / 2**20),
            "gemm_gflops": round(p.gemm_flops / 1e9, 2),
            "elementwise_efficiency": p.efficiency["elementwise"],
            "efficiency": {c: round(v, 4) for c, v in p.efficiency.items()},
            "op_overhead_us": round(p.op_overhead_s * 1e6, 2),
            "memory_gb_s": round(p.memory_bandwidth / 1e9, 2),
            "storage": p.storage, "read_mb_s": round(p.read_bandwidth / 1e6, 1),
            "write_mb_s": round(p.write_bandwidth / 1e6, 1),
            "read_latency_ms": round(p.read_latency_s * 1e3, 4),
            "write_latency_ms": round(p.write_latency_s * 1e3, 4),
            "transfer_toll_ms": round(p.transfer_cpu_latency_s * 1e3, 4),
            "transfer_toll_mb_s": round(p.transfer_cpu_bandwidth / 1e6, 1),
            "transfer_pickup_us": round(p.transfer_pickup_s * 1e6, 2),
            "notes": "; ".join(p.document.get("notes", []))}
