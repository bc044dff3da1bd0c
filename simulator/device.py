"""Device profiles: RAM, compute and storage figures read from data files in ``profiles/``.

A profile is a JSON document whose every quantity carries its unit and, where one exists, its
source (see ``profiles/raspberry-pi-4.json``). Loading converts to SI units (bytes, seconds,
FLOP/s, bytes per second) and rejects, at the door, a missing field or an unknown unit with an
error naming the field. Adding a device is adding a file; no code changes.

>>> pi = load_device("raspberry-pi-4")
>>> pi.read_bandwidth, pi.write_bandwidth, pi.shared_channel
(45500000.0, 24500000.0, True)
>>> round(pi.read_seconds(45_500_000), 6)  # latency + bytes / bandwidth
1.000005
>>> load_device("pi5")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
trainplan.planner.errors.UnknownName: unknown device 'pi5'; valid: emmc51-tv-board, jetson-tx2, ...
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from trainplan.planner.errors import UnknownName
from trainplan.planner.fileio import clip, read_text_file
from trainplan.simulator.errors import InvalidProfile
from trainplan.simulator.units import parse_quantity, quantity

PROFILE_DIR = os.path.join(os.path.dirname(__file__), "profiles")
SCHEMA = "trainplan-device/1"
# Op classes a profile gives an efficiency for (relative to its GEMM throughput).
OP_CLASSES = ("gemm", "conv", "elementwise", "optimizer")
# (document path, dimension) of every quantity a profile must give.
_QUANTITIES = (
    ("ram", "bytes"), ("reserved", "bytes"),
    ("compute.gemm_throughput", "flops"), ("compute.memory_bandwidth", "bandwidth"),
    ("storage.read_bandwidth", "bandwidth"), ("storage.write_bandwidth", "bandwidth"),
    ("storage.read_latency", "time"), ("storage.write_latency", "time"),
)


def roofline_seconds(flops, nbytes, gather_rows, seconds_per_flop, bandwidth, row_s,
                     overhead_s):
    """The simulator's time of ops, scalars or numpy arrays alike: the slower of arithmetic
    (``flops × seconds_per_flop``) and memory traffic (``nbytes / bandwidth``), plus strided
    window rows at ``row_s`` each and a fixed per-op overhead. The one formula the engine, the
    runtime calibration and its fit share."""
    return (np.maximum(flops * seconds_per_flop, nbytes / bandwidth)
            + gather_rows * row_s + overhead_s)


@dataclass(frozen=True)
class DeviceProfile:
    """One device in SI units; ``document`` keeps the file as written (units, sources, notes).
    ``op_overhead_s``: a fixed cost every op pays on top of its roofline time (the optional
    ``compute.op_overhead`` quantity, e.g. an interpreter's dispatch; 0 when absent).
    ``gather_row_s``: the cost of one contiguous row of a strided window copy (im2col,
    col2im, pooling taps) on top of its bytes — a loop's per-row start-up, which short rows
    (small feature maps) pay many times over (the optional ``compute.gather_row``; 0 when
    absent). ``transfer_cpu_latency_s`` and ``transfer_cpu_bandwidth``: the time one
    storage transfer takes from computing (``latency + bytes / bandwidth``: system calls,
    page-cache copies, writeback, a virtual disk's emulation on a host with no core to spare;
    simulator/calibrate_storage.py measures it) — the optional ``storage.cpu_latency`` and
    ``storage.cpu_bandwidth``; absent, transfers cost the compute stream nothing.
    ``transfer_pickup_s``: the time the storage channel idles before each transfer starts,
    the swap thread taking the request up (woken, the interpreter lock regained; the optional
    ``storage.pickup``, 0 when absent)."""

    name: str
    ram_bytes: int
    reserved_bytes: int
    gemm_flops: float
    efficiency: dict[str, float]
    memory_bandwidth: float
    read_bandwidth: float
    write_bandwidth: float
    read_latency_s: float
    write_latency_s: float
    shared_channel: bool
    description: str = ""
    storage: str = ""
    document: dict = field(default_factory=dict, compare=False, repr=False)
    op_overhead_s: float = 0.0
    gather_row_s: float = 0.0
    transfer_cpu_latency_s: float = 0.0
    transfer_cpu_bandwidth: float = 0.0
    transfer_pickup_s: float = 0.0

    def transfer_cpu_seconds(self, nbytes: float) -> float:
        """The compute stream's time one transfer of ``nbytes`` takes (0 unless the profile
        says transfers share the CPU)."""
        if not self.transfer_cpu_bandwidth:
            return 0.0
        return self.transfer_cpu_latency_s + nbytes / self.transfer_cpu_bandwidth

    @property
    def available_bytes(self) -> int:
        """RAM a training process may use: total minus what the system keeps for itself."""
        return self.ram_bytes - self.reserved_bytes

    def read_seconds(self, nbytes: float) -> float:
        """Time of one read from storage: latency + bytes / bandwidth."""
        return self.read_latency_s + nbytes / self.read_bandwidth

    def write_seconds(self, nbytes: float) -> float:
        """Time of one write to storage: latency + bytes / bandwidth."""
        return self.write_latency_s + nbytes / self.write_bandwidth

    def seconds_per_flop(self, op_class: str) -> float:
        """The arithmetic time of one flop of ``op_class``: 1 / (GEMM rate × efficiency)."""
        return 1.0 / (self.gemm_flops * self.efficiency[op_class])

    def op_seconds(self, flops: float, nbytes: float, op_class: str,
                   gather_rows: int = 0) -> float:
        """Time of one op (``roofline_seconds`` on this device)."""
        return float(roofline_seconds(flops, nbytes, gather_rows, self.seconds_per_flop(op_class),
                                      self.memory_bandwidth, self.gather_row_s,
                                      self.op_overhead_s))

    def to_json(self) -> str:
        return json.dumps(self.document or profile_document(self), indent=2) + "\n"

    @staticmethod
    def from_json(text: str, origin: str = "profile") -> DeviceProfile:
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidProfile(f"{origin}: not valid JSON ({clip(str(exc), 200)})") from None
        return profile_from_dict(doc, origin)


def _get(doc: dict, path: str, origin: str):
    node = doc
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise InvalidProfile(f"{origin}: missing field {path!r}", path)
        node = node[key]
    return node


def profile_from_dict(doc: dict, origin: str = "profile") -> DeviceProfile:
    """Check a profile document and convert it to SI units; errors name the field."""
    if not isinstance(doc, dict):
        raise InvalidProfile(f"{origin}: a profile is a JSON object")
    name = _get(doc, "name", origin)
    q = {path: parse_quantity(_get(doc, path, origin), dim, f"{origin}: {path}")
         for path, dim in _QUANTITIES}
    eff = {c: _get(doc, f"compute.efficiency.{c}", origin) for c in OP_CLASSES}
    for c, v in eff.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) \
                or v <= 0:
            raise InvalidProfile(f"{origin}: compute.efficiency.{c} must be a number > 0 and "
                                 f"finite, got {clip(v)}", f"compute.efficiency.{c}")
    overhead = _optional_quantity(doc, "compute.op_overhead", "time", origin)
    gather_row = _optional_quantity(doc, "compute.gather_row", "time", origin)
    cpu_latency = _optional_quantity(doc, "storage.cpu_latency", "time", origin)
    cpu_bandwidth = _optional_quantity(doc, "storage.cpu_bandwidth", "bandwidth", origin)
    pickup = _optional_quantity(doc, "storage.pickup", "time", origin)
    if cpu_latency and not cpu_bandwidth:
        raise InvalidProfile(f"{origin}: storage.cpu_latency needs storage.cpu_bandwidth",
                             "storage.cpu_bandwidth")
    shared = _get(doc, "storage.shared_channel", origin)
    if not isinstance(shared, bool):
        raise InvalidProfile(f"{origin}: storage.shared_channel must be true or false",
                             "storage.shared_channel")
    for path in ("compute.gemm_throughput", "compute.memory_bandwidth",
                 "storage.read_bandwidth", "storage.write_bandwidth", "ram"):
        if q[path] <= 0:
            raise InvalidProfile(f"{origin}: {path} must be > 0", path)
    if q["reserved"] >= q["ram"]:
        raise InvalidProfile(f"{origin}: reserved must be below ram", "reserved")
    return DeviceProfile(
        name=str(name), ram_bytes=int(q["ram"]), reserved_bytes=int(q["reserved"]),
        gemm_flops=q["compute.gemm_throughput"], efficiency={c: float(v) for c, v in eff.items()},
        memory_bandwidth=q["compute.memory_bandwidth"],
        read_bandwidth=q["storage.read_bandwidth"], write_bandwidth=q["storage.write_bandwidth"],
        read_latency_s=q["storage.read_latency"], write_latency_s=q["storage.write_latency"],
        shared_channel=shared, description=str(doc.get("description", "")),
        storage=str(doc.get("storage", {}).get("kind", "")), document=doc,
        op_overhead_s=overhead, gather_row_s=gather_row,
        transfer_cpu_latency_s=cpu_latency, transfer_cpu_bandwidth=cpu_bandwidth,
        transfer_pickup_s=pickup,
    )


def _optional_quantity(doc: dict, path: str, dim: str, origin: str) -> float:
    """An optional quantity in SI units, 0 when the document does not give it."""
    node = doc
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return 0.0
        node = node[key]
    return parse_quantity(node, dim, f"{origin}: {path}")


def profile_document(p: DeviceProfile) -> dict:
    """A profile as a document in the units profiles use (for profiles built in code)."""
    return {
        "schema": SCHEMA, "name": p.name, "description": p.description,
        "ram": quantity(p.ram_bytes / 2**20, "MiB"),
        "reserved": quantity(p.reserved_bytes / 2**20, "MiB"),
        "compute": {"gemm_throughput": quantity(p.gemm_flops / 1e9, "GFLOP/s"),
                    "efficiency": dict(p.efficiency),
                    "memory_bandwidth": quantity(p.memory_bandwidth / 1e9, "GB/s"),
                    **({"op_overhead": quantity(p.op_overhead_s * 1e6, "us")}
                       if p.op_overhead_s else {}),
                    **({"gather_row": quantity(p.gather_row_s * 1e9, "ns")}
                       if p.gather_row_s else {})},
        "storage": {"kind": p.storage,
                    "read_bandwidth": quantity(p.read_bandwidth / 1e6, "MB/s"),
                    "write_bandwidth": quantity(p.write_bandwidth / 1e6, "MB/s"),
                    "read_latency": quantity(p.read_latency_s * 1e3, "ms"),
                    "write_latency": quantity(p.write_latency_s * 1e3, "ms"),
                    "shared_channel": p.shared_channel,
                    **({"cpu_latency": quantity(p.transfer_cpu_latency_s * 1e3, "ms"),
                        "cpu_bandwidth": quantity(p.transfer_cpu_bandwidth / 1e6, "MB/s")}
                       if p.transfer_cpu_bandwidth else {}),
                    **({"pickup": quantity(p.transfer_pickup_s * 1e6, "us")}
                       if p.transfer_pickup_s else {})},
    }


def device_names() -> list[str]:
    """Names of the shipped profiles (file names in ``profiles/`` without ``.json``)."""
    return sorted(f[:-5] for f in os.listdir(PROFILE_DIR) if f.endswith(".json"))


def load_device(name_or_path: str | DeviceProfile) -> DeviceProfile:
    """A shipped profile by name, or a profile file by path (e.g. one `calibrate` wrote)."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    path = name_or_path
    if not (path.endswith(".json") or os.path.sep in path):
        path = os.path.join(PROFILE_DIR, f"{name_or_path}.json")
        if not os.path.exists(path):
            raise UnknownName(f"unknown device {name_or_path!r}; valid: "
                              f"{', '.join(device_names())} (or a profile .json file)")
    elif not os.path.exists(path):
        raise UnknownName(f"device profile file {path!r} does not exist; shipped profiles: "
                          f"{', '.join(device_names())}")
    return DeviceProfile.from_json(read_text_file(path, "device profile"),
                                   os.path.basename(path))


def device_table() -> list[dict]:
    """One row per shipped profile, in the units people read (`trainplan devices`)."""
    rows = []
    for name in device_names():
        d = load_device(name)
        rows.append({
            "device": d.name, "ram_mib": round(d.ram_bytes / 2**20),
            "available_mib": round(d.available_bytes / 2**20),
            "gemm_gflops": round(d.gemm_flops / 1e9, 2),
            "memory_gb_s": round(d.memory_bandwidth / 1e9, 2), "storage": d.storage,
            "read_mb_s": round(d.read_bandwidth / 1e6, 1),
            "write_mb_s": round(d.write_bandwidth / 1e6, 1),
            "read_latency_ms": round(d.read_latency_s * 1e3, 4),
            "write_latency_ms": round(d.write_latency_s * 1e3, 4),
            "channel": "shared" if d.shared_channel else "separate",
        })
    return rows
