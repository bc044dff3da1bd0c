"""How long a swap schedule stalls compute: one cost model for every swap planner.

EO-slot model. The iteration is a sequence of *phases*: before each EO ``e`` a boundary phase
``D_e`` (no compute), then its compute phase ``C_e`` lasting ``step_seconds[e]``; a final
boundary ``D_n`` closes the iteration. Each transfer is a job of ``latency + bytes / bandwidth``
seconds that may run, split at will, in any phase of its window; the I/O of a phase beyond its
compute time stretches it, and the stretch is stall (one shared channel: reads plus writes;
separate channels: the busier of the two; either channel keeps working during a stall). The
windows, from the EO accounting of planner/swap/schedule.py:

- a prefetch starting at EO ``p`` for its use at EO ``b`` runs in ``C_p .. D_b``: it overlaps
  the compute of EOs ``p .. b-1`` and must be done when EO ``b`` starts; what does not fit is
  stall at ``D_b`` (``p = b``: all of it);
- a write evicting after EO ``a`` runs from ``D_{a+1}`` on and must be done before the next
  prefetch of the same buffer starts (at ``p``: by the end of ``C_{p-1}``), or, with no next
  prefetch in the iteration, by ``D_n``.

Not modelled: the simulator's delay in reusing the bytes an eviction frees until its write has
finished (the slot model frees them at ``a + 1``, as the budget accounting does), and overlap of
I/O across the iteration boundary (the iteration starts and ends with idle channels). Given the
jobs, the stall is the least total stretch that lets every job meet its deadline: an interval
covering problem, which ``min_stall`` solves exactly by earliest-deadline-first per channel,
stretching a phase only by what its due jobs still lack (the latest phase of an interval covers
the most later intervals), the other channel using the stretch too.

>>> s = StorageModel(read_bytes_per_s=1e6, write_bytes_per_s=1e6, read_latency_s=0.0,
...                  write_latency_s=0.0, shared_channel=False)
>>> jobs = [Job("read", release=compute_phase(1), deadline=boundary_phase(3), amount=0.005)]
>>> round(min_stall(jobs, phase_capacities([0.001] * 4), shared=False), 6)  # 5 ms over 2 ms
0.003
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from trainplan.planner.swap.schedule import SwapSchedule


@dataclass(frozen=True)
class StorageModel:
    """Storage bandwidths (bytes/s) and latencies (s); ``shared_channel``: reads and writes
    queue on one channel (half-duplex eMMC, SD) instead of two (full-duplex UFS)."""

    read_bytes_per_s: float
    write_bytes_per_s: float
    read_latency_s: float
    write_latency_s: float
    shared_channel: bool = False

    def read_seconds(self, nbytes: int) -> float:
        return self.read_latency_s + nbytes / self.read_bytes_per_s

    def write_seconds(self, nbytes: int) -> float:
        return self.write_latency_s + nbytes / self.write_bytes_per_s


#: A UFS 3.1 phone: 2100 MB/s read, 1200 MB/s write, 0.1 ms latency, full duplex.
UFS_PHONE = StorageModel(2100e6, 1200e6, 1e-4, 1e-4, shared_channel=False)
#: Compute time of an EO when the caller gives none.
DEFAULT_STEP_SECONDS = 1e-3


@dataclass(frozen=True)
class Job:
    """One transfer: ``amount`` of I/O time on ``channel`` ("read" or "write"), to run in
    phases ``release .. deadline`` (indices from ``boundary_phase`` / ``compute_phase``)."""

    channel: str
    release: int
    deadline: int
    amount: float
    tensor: str = ""


def boundary_phase(eo: int) -> int:
    """Index of ``D_eo``, the stall-only phase before EO ``eo`` (``eo = n_eo``: the end)."""
    return 2 * eo


def compute_phase(eo: int) -> int:
    """Index of ``C_eo``, the phase in which EO ``eo`` computes."""
    return 2 * eo + 1


def phase_capacities(step_seconds: list[float]) -> list[float]:
    """Compute time of every phase: 0 for boundaries, ``step_seconds[e]`` for ``C_e``."""
    caps = [0.0] * (2 * len(step_seconds) + 1)
    for e, s in enumerate(step_seconds):
        caps[compute_phase(e)] = s
    return caps


def schedule_jobs(schedule: SwapSchedule, storage: StorageModel) -> list[Job]:
    """The transfers of ``schedule`` as jobs with their windows (see the module doc)."""
    starts: dict[str, list[int]] = {}
    for p in schedule.prefetches:
        starts.setdefault(p.tensor, []).append(p.start_eo)
    jobs = []
    for p in schedule.prefetches:
        if p.read:
            due = boundary_phase(p.use_eo)
            release = compute_phase(p.start_eo) if p.start_eo < p.use_eo else due
            jobs.append(Job("read", release, due, storage.read_seconds(p.nbytes), p.tensor))
    for ev in schedule.evictions:
        if ev.write:
            later = [s for s in starts.get(ev.tensor, []) if s > ev.after_eo]
            due = compute_phase(min(later) - 1) if later else boundary_phase(schedule.n_eo)
            release = min(boundary_phase(ev.after_eo + 1), due)
            jobs.append(Job("write", release, due, storage.write_seconds(ev.nbytes), ev.tensor))
    return jobs


def estimate_stall(schedule: SwapSchedule, step_seconds: list[float] | None = None,
                   storage: StorageModel | None = None) -> float:
    """Seconds the schedule's I/O stalls compute in one iteration (module doc's slot model).

    ``step_seconds``: compute time of each EO (default 1 ms each); ``storage``: default
    ``UFS_PHONE``.
    """
    steps = default_steps(schedule.n_eo, step_seconds)
    storage = storage or UFS_PHONE
    return float(min_stall(schedule_jobs(schedule, storage), phase_capacities(steps),
                           storage.shared_channel))


def default_steps(n_eo: int, step_seconds: list[float] | None) -> list[float]:
    """``step_seconds`` checked against ``n_eo``, or 1 ms for every EO."""
    if step_seconds is None:
        return [DEFAULT_STEP_SECONDS] * n_eo
    if len(step_seconds) != n_eo:
        raise ValueError(f"step_seconds has {len(step_seconds)} entries for {n_eo} EOs")
    return list(step_seconds)


def min_stall(jobs: list[Job], caps: list[float], shared: bool) -> float:
    """Least total stall that lets every job meet its deadline (lazy earliest-deadline-first)."""
    return edf(jobs, caps, shared)[0]


def edf(jobs: list[Job], caps: list, shared: bool) -> tuple[float, list[dict[int, float]], list]:
    """Earliest-deadline-first per channel, stretching a phase only by what its due jobs lack.

    Returns the total stall, each job's I/O per phase and each phase's stall. Exact in integers
    when amounts and capacities are integers (the CP-SAT model's warm start uses that).
    """
    order = sorted(range(len(jobs)), key=lambda j: jobs[j].release)
    left = [j.amount for j in jobs]
    alloc: list[dict[int, float]] = [{} for _ in jobs]
    ready: dict[str, list[tuple[int, int]]] = {}
    stall = [0] * len(caps)
    nxt = 0
    for k, cap in enumerate(caps):
        while nxt < len(order) and jobs[order[nxt]].release <= k:
            j = order[nxt]
            heapq.heappush(ready.setdefault(_channel(jobs[j], shared), []), (jobs[j].deadline, j))
            nxt += 1
        due = {ch: sum(left[j] for d, j in heap if d == k) for ch, heap in ready.items()}
        stall[k] = max([0, *(d - cap for d in due.values())])
        room = cap + stall[k]
        for heap in ready.values():
            _run(heap, left, alloc, k, room)
            if heap and heap[0][0] <= k and left[heap[0][1]] > 1e-12:
                raise AssertionError(f"job {jobs[heap[0][1]]} missed its deadline")
    return sum(stall), alloc, stall


def _channel(job: Job, shared: bool) -> str:
    return "io" if shared else job.channel


def _run(heap: list, left: list, alloc: list, k: int, room) -> None:
    """Spend ``room`` of phase ``k`` on the ready jobs, earliest deadline first."""
    while heap:
        _, j = heap[0]
        if left[j] <= 1e-12:
            heapq.heappop(heap)
            continue
        if room <= 0:
            return
        step = min(room, left[j])
        alloc[j][k] = alloc[j].get(k, 0) + step
        left[j] -= step
        room -= step
