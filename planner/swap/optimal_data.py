"""Data of the ``optimal`` swap model: candidate gaps, their windows, integer units, jobs.

A *candidate gap* is a stretch a buffer may spend in storage: between two consecutive uses at
least 2 EOs apart (``mid``), or, for a weight, the iteration boundary (``head``: it starts in
storage, ``tail``: it ends there; one choice for both, as schedule.py requires; a weight
pinned at the boundary stays pinned all iteration, so its ``mid`` gaps need it). Its *prefetch
window* ``lo .. before-1`` holds the EOs at which its prefetch may start (or it starts at the
use itself); its *write window* ``after+1 .. write_hi`` the slots its write may use.

Full model: every window is the whole gap; a ``mid`` write may use every slot where the buffer
is out (up to its prefetch start). Restricted model (``cover`` given): a prefetch window is the
last slots before the use whose compute covers ``cover`` times the read (at least 2, at most
24), widened by up to 8 EOs to hold a warm start's prefetch (earlier ones are moved into the
window); a write whose gap is longer than its window must finish before the window opens.
Each restriction can only add stall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainplan.planner.swap.stall_model import Job, StorageModel, boundary_phase, compute_phase
from trainplan.planner.swap.uses import BufferUses


@dataclass
class Candidate:
    """A gap the model may take: interior EOs ``after+1 .. before-1``; see the module doc."""

    key: int
    tensor: str
    nbytes: int
    after: int
    before: int
    kind: str  # "mid", "head" or "tail"
    group: int  # key of the candidate owning the ``out`` choice (a tail: its head)
    reads: bool  # the prefetch reads
    needed: bool  # the eviction writes unless storage is current
    sync: tuple[int, ...] = ()  # groups whose choice leaves storage current for this eviction
    parent: int | None = None  # a weight's head: pinned weights never leave RAM
    lo: int = 0
    write_hi: int = -1
    write_until_prefetch: bool = False  # write slots end at the prefetch start, not write_hi


@dataclass
class Units:
    """Integer data: microseconds per phase and per transfer, bytes over their common unit."""

    caps_us: list[int]
    read_us: dict[int, int]
    write_us: dict[int, int]
    unit: int


def candidates(buffers: dict[str, BufferUses], n_eo: int) -> list[Candidate]:
    """Every gap a schedule may leave a buffer out of RAM in, with its write rules."""
    out: list[Candidate] = []
    for b in buffers.values():
        uses = b.uses
        if not uses:
            continue
        head = len(out) if b.persistent else None
        if b.persistent:
            out.append(Candidate(head, b.tensor, b.nbytes, -1, uses[0].eo, "head", head,
                                 uses[0].reads, False))
        mid: dict[int, int] = {}
        for i in range(len(uses) - 1):
            if uses[i + 1].eo - uses[i].eo >= 2:
                mid[i] = len(out)
                out.append(Candidate(len(out), b.tensor, b.nbytes, uses[i].eo, uses[i + 1].eo,
                                     "mid", len(out), uses[i + 1].reads, uses[i + 1].reads,
                                     _sync(uses, i, mid, head), parent=head))
        if b.persistent:
            last = len(uses) - 1
            out.append(Candidate(len(out), b.tensor, b.nbytes, uses[last].eo, n_eo, "tail",
                                 head, False, uses[0].reads, _sync(uses, last, mid, head)))
    return out


def _sync(uses, i: int, mid: dict[int, int], head: int | None) -> tuple[int, ...]:
    """Gaps before use ``i`` whose eviction leaves storage current at use ``i``: those with no
    write-use after them up to ``i`` (the head: none since the iteration began)."""
    found = []
    for k in range(i, -1, -1):
        if uses[k].writes:
            break
        if k - 1 in mid:
            found.append(mid[k - 1])
        elif k == 0 and head is not None:
            found.append(head)
    return tuple(found)


def cells(cands: list[Candidate]) -> int:
    """EO-gap cells of the full model: its number of prefetch-start booleans, about."""
    return sum(c.before - c.after - 1 for c in cands if c.kind != "tail")


def set_windows(cands: list[Candidate], units: Units, n_eo: int, cover: float | None,
                hints: list[dict[int, int]], widen: int = 0, longest: int = 24) -> None:
    """Set every window (module doc); ``cover=None``: the full model. ``hints``: prefetch
    starts of warm starts by candidate key, kept inside the windows if at most ``widen`` EOs
    earlier; restricted windows span at most ``longest`` EOs before that."""
    done = np.concatenate([[0], np.cumsum(units.caps_us[1::2])])  # compute before EO e
    for c in cands:
        floor = c.after + 2 if c.kind == "mid" else 0
        c.lo = c.before if c.kind == "tail" else floor
        if cover is not None and c.kind != "tail":
            need, lo = cover * units.read_us.get(c.key, 0), c.before
            while lo > max(floor, c.before - longest) and (done[c.before] - done[lo] < need
                                                          or c.before - lo < 2):
                lo -= 1
            early = [h[c.key] for h in hints if c.key in h and lo - widen <= h[c.key]]
            c.lo = min([lo, *early])
        c.write_until_prefetch = c.kind == "mid" and c.lo == floor
        if c.kind == "tail":
            c.write_hi = n_eo - 1
        else:  # the last EO before the prefetch may start
            c.write_hi = c.before - 1 if c.write_until_prefetch else c.lo - 1


def make_units(cands: list[Candidate], sizes: list[int], steps: list[float],
               storage: StorageModel) -> Units:
    """Microseconds (transfers down, compute up) and the common unit of all buffer sizes."""
    caps = [0] * (2 * len(steps) + 1)
    for e, s in enumerate(steps):
        caps[compute_phase(e)] = math.ceil(s * 1e6 - 1e-6)  # the 1e-6: float noise
    read = {c.key: math.floor(storage.read_seconds(c.nbytes) * 1e6 + 1e-6)
            for c in cands if c.reads}
    write = {c.key: math.floor(storage.write_seconds(c.nbytes) * 1e6 + 1e-6)
             for c in cands if c.needed}
    return Units(caps, read, write, max(math.gcd(*sizes), 1) if sizes else 1)


def model_jobs(cands: list[Candidate], units: Units, n_eo: int, starts: dict[int, int],
               writes: set[int]) -> tuple[list[Job], list[tuple[str, int]]]:
    """Jobs (integer microseconds, the model's windows) of a choice: ``starts`` maps the key of
    each chosen head or mid gap to its prefetch start, ``writes`` holds the keys that write;
    also each job's owner, ``("read" | "write", key)``."""
    jobs, owners = [], []
    for c in cands:
        if c.reads and c.key in starts:
            p, due = starts[c.key], boundary_phase(c.before)
            jobs.append(Job("read", compute_phase(p) if p < c.before else due, due,
                            units.read_us[c.key], c.tensor))
            owners.append(("read", c.key))
        if c.key in writes:
            if c.kind == "tail":
                due = boundary_phase(n_eo)
            else:
                hi = starts[c.key] - 1 if c.write_until_prefetch else c.write_hi
                due = compute_phase(hi)
            jobs.append(Job("write", boundary_phase(c.after + 1), due, units.write_us[c.key],
                            c.tensor))
            owners.append(("write", c.key))
    return jobs, owners


def clamp_starts(cands: list[Candidate], starts: dict[int, int]) -> dict[int, int]:
    """Prefetch starts moved into their windows (later: never more RAM, maybe more stall)."""
    return {k: max(p, cands[k].lo) for k, p in starts.items()}
