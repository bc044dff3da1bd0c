"""The discrete-event core: one compute stream and storage streams, walked EO by EO.

Inputs are plain records, so a swap schedule plugs in as a list of transfers:

- a ``Step`` is one compute item at an EO (an op): flops and bytes touched give its roofline
  time, ``reads``/``writes`` name the buffers it needs;
- a ``Transfer`` moves one tensor between RAM and storage. A *read* (prefetch) starts when the
  compute stream reaches EO ``issue_eo`` and must finish before the first step of EO
  ``deadline_eo`` (else that step stalls). A *write* (eviction) starts once the steps of EO
  ``issue_eo`` are done; its bytes are reused from EO ``deadline_eo`` on, so steps of that EO
  and reads issued from then wait for it ("a region freed by an eviction can be reused only once
  its write has finished"). A write is skipped when storage already holds a valid copy (the
  tensor was written or read since the last step that changed it).

Transfers take ``latency + bytes / bandwidth`` and queue FIFO on their channel: one shared
channel when the device says reads and writes share it (SD, eMMC), a read and a write channel
otherwise (UFS); each waits ``DeviceProfile.transfer_pickup_s`` before it starts (the swap
thread taking the next request up between two). On a device whose transfers take CPU time
from the compute stream (``DeviceProfile.transfer_cpu_seconds``: the submission, the swap
thread's hand-offs of the interpreter lock, system calls on a host with no core to spare),
that time lengthens the step that follows the transfer's issue, stalled or not: measured on
this host, swapping lenet5 slowed its ops by three quarters of the calibrated toll although
two thirds of the iteration was stalled. State (channels, valid copies) carries over between
iterations; a read may be issued in the previous iteration with a negative ``issue_eo``.

>>> from trainplan.simulator.device import load_device
>>> pi = load_device("raspberry-pi-4")
>>> run = run_engine([Step(0, flops=8e9), Step(1, reads=("w",))],
...                  [Transfer("w", "read", 91_000_000, issue_eo=0, deadline_eo=1)], pi)
>>> [round(float(x), 7) for x in (run.end[0], run.stall[1])]  # 1 s of compute; a 2 s read
[1.0, 1.0000051]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trainplan.simulator.device import DeviceProfile, roofline_seconds
from trainplan.simulator.errors import InvalidSchedule

KINDS = ("read", "write")


@dataclass(frozen=True)
class Step:
    """One compute item (an op) at execution order ``eo``."""

    eo: int
    kind: str = "forward"
    layer: str = ""
    op_class: str = "gemm"
    flops: float = 0.0
    bytes_touched: int = 0
    gather_rows: int = 0
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    name: str = ""
    recompute: bool = False  # a forward op run again to recompute its results


@dataclass(frozen=True)
class Transfer:
    """One tensor moved between RAM and storage (see the module docstring for the EO rules)."""

    tensor: str
    kind: str
    nbytes: int
    issue_eo: int
    deadline_eo: int | None = None


@dataclass(frozen=True)
class EngineRun:
    """Times of every step instance (iteration-major) and one row per transfer instance."""

    steps: tuple[Step, ...]
    n_eo: int
    iterations: int
    start: np.ndarray
    end: np.ndarray
    stall: np.ndarray
    transfers: list[dict]


def horizon(steps: Sequence[Step], transfers: Sequence[Transfer]) -> int:
    """EO slots needed to hold every step and transfer."""
    eos = [s.eo for s in steps] + [t.issue_eo for t in transfers]
    eos += [t.deadline_eo for t in transfers if t.kind == "read" and t.deadline_eo is not None]
    return max(eos, default=-1) + 1


def check_schedule(steps: Sequence[Step], transfers: Sequence[Transfer], n_eo: int) -> None:
    """Reject, at the door, steps and transfers the engine cannot place; errors name the item."""
    for s in steps:
        if not 0 <= s.eo < n_eo or s.flops < 0 or s.bytes_touched < 0:
            raise InvalidSchedule(f"step {s.name or s.eo!r}: needs 0 <= eo < {n_eo} and "
                                  f"flops, bytes >= 0 (eo={s.eo})")
    for i, t in enumerate(transfers):
        where = f"transfer {i} ({t.kind} of {t.tensor!r})"
        if t.kind not in KINDS:
            raise InvalidSchedule(f"{where}: kind must be read or write")
        if t.nbytes < 0:
            raise InvalidSchedule(f"{where}: nbytes must be >= 0")
        if t.kind == "read" and (t.deadline_eo is None
                                 or not -n_eo < t.issue_eo <= t.deadline_eo < n_eo):
            raise InvalidSchedule(f"{where}: a read needs -{n_eo} < issue_eo <= deadline_eo < "
                                  f"{n_eo} (got {t.issue_eo}, {t.deadline_eo})")
        if t.kind == "write" and (not 0 <= t.issue_eo < n_eo or (
                t.deadline_eo is not None and t.deadline_eo <= t.issue_eo)):
            raise InvalidSchedule(f"{where}: a write needs 0 <= issue_eo < {n_eo} and "
                                  f"deadline_eo > issue_eo (got {t.issue_eo}, {t.deadline_eo})")


def step_seconds(steps: Sequence[Step], device: DeviceProfile) -> np.ndarray:
    """Roofline time of every step: max(flops / (GEMM rate x efficiency), bytes / bandwidth),
    plus its strided window rows at the device's cost per row and the device's fixed per-op
    overhead (both 0 for the shipped profiles)."""
    unknown = {s.op_class for s in steps} - set(device.efficiency)
    if unknown:
        raise InvalidSchedule(f"op class(es) {', '.join(sorted(unknown))} have no efficiency in "
                              f"device {device.name!r}; valid: {', '.join(device.efficiency)}")
    def column(values) -> np.ndarray:
        return np.fromiter(values, float, len(steps))

    return roofline_seconds(column(s.flops for s in steps),
                            column(s.bytes_touched for s in steps),
                            column(s.gather_rows for s in steps),
                            column(device.seconds_per_flop(s.op_class) for s in steps),
                            device.memory_bandwidth, device.gather_row_s, device.op_overhead_s)


class _Streams:
    """Mutable state of one run: stream clocks, pending waits, valid copies in storage."""

    def __init__(self, device: DeviceProfile, transfers: Sequence[Transfer]):
        self.device = device
        self.transfers = transfers
        self.compute = 0.0
        self.channel = {"storage": 0.0} if device.shared_channel else {"read": 0.0, "write": 0.0}
        self.reads_due: dict[int, float] = {}   # abs EO -> end of the reads it waits for
        self.reuse_due: dict[int, float] = {}   # abs EO -> end of the writes freeing its bytes
        self.reads_max = self.reuse_max = 0.0
        self.tensor_ready: dict[str, float] = {}  # tensor -> end of its latest read
        self.write_end: dict[str, float] = {}     # tensor -> end of its latest write
        self.valid: set[str] = set()              # tensors whose storage copy is current
        self.tracked = {t.tensor for t in transfers if t.kind == "write"}
        self.rows: list[dict] = []
        self.toll = 0.0  # CPU seconds of the transfers issued since the last step began

    def _submit(self, kind: str, nbytes: int, ready: float) -> tuple[str, float, float]:
        name = "storage" if "storage" in self.channel else kind
        start = max(ready, self.channel[name]) + self.device.transfer_pickup_s
        seconds = (self.device.read_seconds if kind == "read" else self.device.write_seconds)
        end = start + seconds(nbytes)
        self.channel[name] = end
        self.toll += self.device.transfer_cpu_seconds(nbytes)
        return name, start, end

    def read(self, it: int, idx: int, n_eo: int, reach: float) -> None:
        t = self.transfers[idx]
        ready = max(reach, self.reuse_max, self.write_end.get(t.tensor, 0.0))
        channel, start, end = self._submit("read", t.nbytes, ready)
        due = it * n_eo + t.deadline_eo
        self.reads_due[due] = max(self.reads_due.get(due, 0.0), end)
        self.tensor_ready[t.tensor] = end
        self.valid.add(t.tensor)
        self._row(it, idx, channel, ready, start, end, t.nbytes, False)

    def write(self, it: int, idx: int, n_eo: int) -> None:
        t = self.transfers[idx]
        ready = self.compute
        if t.tensor in self.valid:
            channel, start, end, nbytes, skipped = "", ready, ready, 0, True
        else:
            channel, start, end = self._submit("write", t.nbytes, ready)
            nbytes, skipped = t.nbytes, False
            self.valid.add(t.tensor)
            self.write_end[t.tensor] = end
        if t.deadline_eo is not None:
            due = it * n_eo + t.deadline_eo
            self.reuse_due[due] = max(self.reuse_due.get(due, 0.0), end)
        self._row(it, idx, channel, ready, start, end, nbytes, skipped)

    def _row(self, it, idx, channel, ready, start, end, nbytes, skipped) -> None:
        t = self.transfers[idx]
        self.rows.append({"iteration": it, "transfer": idx, "tensor": t.tensor, "kind": t.kind,
                          "nbytes": nbytes, "issue_eo": t.issue_eo, "deadline_eo": t.deadline_eo,
                          "channel": channel, "ready_s": ready, "start_s": start, "end_s": end,
                          "skipped": skipped})

    def fold(self, g: int) -> None:
        """Waits that fall due at absolute EO ``g`` join the running maxima."""
        if self.reuse_due:
            self.reuse_max = max(self.reuse_max, self.reuse_due.pop(g, 0.0))
        if self.reads_due:
            self.reads_max = max(self.reads_max, self.reads_due.pop(g, 0.0))

    def take_toll(self) -> float:
        """The CPU time of the transfers issued since the last step began, which the step
        starting now pays."""
        toll, self.toll = self.toll, 0.0
        return toll

    def step_start(self, step: Step) -> float:
        """When a step may start: compute free, its prefetches in, the bytes it reuses free."""
        wait = max(self.compute, self.reads_max, self.reuse_max)
        if self.tensor_ready:
            for name in step.reads + step.writes:
                wait = max(wait, self.tensor_ready.get(name, 0.0))
        if self.tracked:
            self.valid.difference_update(step.writes)
        return wait


def _buckets(transfers: Sequence[Transfer], n_eo: int, iterations: int, kind: str) -> dict:
    """Absolute issue EO -> [(iteration, transfer index)]; early reads clamp to EO 0."""
    out: dict[int, list[tuple[int, int]]] = {}
    for it in range(iterations):
        for idx, t in enumerate(transfers):
            if t.kind == kind:
                out.setdefault(max(0, it * n_eo + t.issue_eo), []).append((it, idx))
    return out


def run_engine(steps: Sequence[Step], transfers: Sequence[Transfer], device: DeviceProfile, *,
               n_eo: int | None = None, iterations: int = 1,
               op_seconds: Mapping[str, float] | None = None) -> EngineRun:
    """Simulate ``iterations`` iterations of ``steps`` with ``transfers`` on ``device``;
    ``op_seconds`` (step name -> seconds) replaces the device's time of the steps it names
    (e.g. measured op times, to judge the storage model alone)."""
    steps = tuple(sorted(steps, key=lambda s: s.eo))
    transfers = tuple(transfers)
    n_eo = horizon(steps, transfers) if n_eo is None else n_eo
    check_schedule(steps, transfers, n_eo)
    if iterations < 1:
        raise InvalidSchedule(f"iterations must be >= 1, got {iterations}")
    seconds = step_seconds(steps, device)
    if op_seconds:
        seconds = np.array([op_seconds.get(s.name, t) for s, t in zip(steps, seconds,
                                                                      strict=True)])
    reads_at = _buckets(transfers, n_eo, iterations, "read")
    writes_at = _buckets(transfers, n_eo, iterations, "write")
    state = _Streams(device, transfers)
    total = len(steps) * iterations
    start, end, stall = np.empty(total), np.empty(total), np.empty(total)
    k = 0
    for it in range(iterations):
        p = 0
        for e in range(n_eo):
            g = it * n_eo + e
            reach = state.compute
            state.fold(g)  # region reuse first: reads issued at g wait for it too
            for r_it, idx in reads_at.get(g, ()):
                state.read(r_it, idx, n_eo, reach)
            state.fold(g)
            while p < len(steps) and steps[p].eo == e:
                begin = state.step_start(steps[p])
                start[k], stall[k] = begin, begin - state.compute
                state.compute = end[k] = begin + seconds[p] + state.take_toll()
                p, k = p + 1, k + 1
            for w_it, idx in writes_at.get(g, ()):
                state.write(w_it, idx, n_eo)
    return EngineRun(steps, n_eo, iterations, start, end, stall, state.rows)
