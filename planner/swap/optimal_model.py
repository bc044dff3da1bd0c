"""The CP-SAT model behind the ``optimal`` swap planner (planner/swap/optimal.py).

Variables, named after their tensor (``name@after``, the EO of the use the gap follows):
``out`` per candidate gap (planner/swap/optimal_data.py), and per EO ``e`` of its prefetch
window a monotone ``r[e]``, "the prefetch has started by ``e``"; the prefetch starts at the
first ``e`` with ``r[e] = 1``, or at the use itself. Residency at each EO is a 0/1 expression,
so the budget is one linear constraint per EO, with SwapSchedule.resident_curve's accounting
(in-flight prefetches held). Transfers follow build_schedule: a read per chosen gap whose use
reads; a write per chosen gap whose next use reads, unless an earlier chosen gap with no
write-use in between left the current bytes in storage.

I/O is in integer microseconds (transfers rounded down, compute up, so rounding never makes the
model overstate a choice's stall) and placed in the phases of planner/swap/stall_model.py. A
read's ``read[e]`` runs in ``C_e`` for ``e`` with ``r[e] = 1``, its rest ``late_read`` at the
use's boundary ``D_b`` (in an optimal placement no read needs another boundary). A write runs
per phase where the buffer is out before its prefetch, or, in a fixed window, per aligned
dyadic block of phases (1, 2, 4, ... phases; O(log n) variables per write): blocks form a
laminar family, so "the flows inside every block fit its phases' compute plus stall" is exactly
the condition for placing them phase by phase (Hall). A phase's stall is what its busier
channel (or the shared one) carries beyond its compute; the objective is the total stall, the
value stall_model.min_stall gives the same choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from trainplan.planner.swap.optimal_data import Candidate, Units, model_jobs
from trainplan.planner.swap.schedule import Gap
from trainplan.planner.swap.stall_model import boundary_phase, compute_phase, edf


@dataclass
class SwapModel:
    """The CP-SAT model and its variables: ``out`` by group, the rest by candidate key; flows by
    ``(channel, key)`` then phase (``flow``; phases as in stall_model) or dyadic block of
    phases ``(level, i)`` (``block_flow``); stall by phase."""

    model: cp_model.CpModel
    cands: list[Candidate]
    shared: bool
    out: dict[int, cp_model.IntVar] = field(default_factory=dict)
    r: dict[int, dict[int, cp_model.IntVar]] = field(default_factory=dict)
    write: dict[int, cp_model.IntVar] = field(default_factory=dict)
    flow: dict[tuple[str, int], dict[int, cp_model.IntVar]] = field(default_factory=dict)
    block_flow: dict[tuple[str, int], dict[int, cp_model.IntVar]] = field(default_factory=dict)
    stall_at: dict[int, cp_model.IntVar] = field(default_factory=dict)
    stall: cp_model.LinearExpr | int = 0
    moved: cp_model.LinearExpr | int = 0


def build_model(cands: list[Candidate], nogap_curve: np.ndarray, budget: int, units: Units,
                shared: bool) -> SwapModel:
    """Variables and constraints; the caller sets the objective (``stall`` or ``moved``)."""
    sm = SwapModel(cp_model.CpModel(), cands, shared)
    n_eo = len(nogap_curve)
    # variables: gap choices, prefetch starts, writes
    _decisions(sm)
    # variables: I/O of every transfer per phase or block of phases
    _transfers(sm, units, n_eo)
    # constraints: the budget at every EO, stall of every phase and block
    _budget(sm, nogap_curve, budget, units.unit)
    _stalls(sm, units)
    return sm


def _name(c: Candidate) -> str:
    return f"{c.tensor}@{c.after}"


def _decisions(sm: SwapModel) -> None:
    m = sm.model
    for c in sm.cands:
        if c.kind != "tail":
            sm.out[c.key] = m.new_bool_var(f"out[{_name(c)}]")
            sm.r[c.key] = {e: m.new_bool_var(f"r[{_name(c)}][{e}]") for e in range(c.lo, c.before)}
            for e, v in sm.r[c.key].items():
                m.add(v + sm.out[c.key] >= 1)  # not out: resident throughout
                if e + 1 in sm.r[c.key]:
                    m.add(v <= sm.r[c.key][e + 1])  # once started, the prefetch stays
            if c.parent is not None:
                m.add(sm.out[c.key] <= sm.out[c.parent])  # a pinned weight never leaves
    for c in sm.cands:
        if c.needed:
            w = sm.write[c.key] = m.new_bool_var(f"write[{_name(c)}]")
            m.add(w <= sm.out[c.group])
            m.add(w >= sm.out[c.group] - sum(sm.out[g] for g in c.sync))


def _transfers(sm: SwapModel, units: Units, n_eo: int) -> None:
    m, moved = sm.model, []
    for c in sm.cands:
        size, out = c.nbytes // units.unit, sm.out[c.group]
        if c.reads:  # in compute phases once started, the rest at the use's boundary
            t, rs = units.read_us[c.key], sm.r[c.key]
            xs = sm.flow["read", c.key] = {
                compute_phase(e): m.new_int_var(0, t, f"read[{_name(c)}][{e}]") for e in rs}
            for e, v in rs.items():
                m.add(xs[compute_phase(e)] <= t * v)
            xs[boundary_phase(c.before)] = m.new_int_var(0, t, f"late_read[{_name(c)}]")
            m.add(sum(xs.values()) == t * out)
            moved.append(size * out)
        if c.needed:
            moved.append(size * sm.write[c.key])
            _write_flows(sm, c, units.write_us[c.key], n_eo)
    sm.moved = sum(moved)


def _write_flows(sm: SwapModel, c: Candidate, t: int, n_eo: int) -> None:
    """A write's I/O from ``D_{after+1}`` on: per phase while the buffer is out before its
    prefetch, or per dyadic block of a fixed window (a tail's ends at ``D_n``)."""
    m, rs = sm.model, sm.r.get(c.key, {})
    lo = boundary_phase(c.after + 1)
    hi = boundary_phase(n_eo) if c.kind == "tail" else compute_phase(c.write_hi)
    blocks = ([(0, k) for k in range(lo, hi + 1)] if c.write_until_prefetch
              else dyadic(lo, hi))
    xs = sm.flow["write", c.key] = {k: m.new_int_var(0, t, f"write[{_name(c)}][{k}]")
                                    for level, k in blocks if level == 0}
    bs = sm.block_flow["write", c.key] = {
        (level, i): m.new_int_var(0, t, f"write[{_name(c)}][{level}:{i}]")
        for level, i in blocks if level > 0}
    for k, x in xs.items():
        if k // 2 in rs:
            m.add(x + t * rs[k // 2] <= t)  # only while the buffer is out
    m.add(sum(xs.values()) + sum(bs.values()) == t * sm.write[c.key])


def dyadic(lo: int, hi: int) -> list[tuple[int, int]]:
    """Slots ``lo .. hi`` as the fewest aligned blocks ``(level, i)`` = ``i*2^level ..
    (i+1)*2^level - 1``; blocks of all windows form a laminar family."""
    out, e = [], lo
    while e <= hi:
        level = 0
        while e % (2 << level) == 0 and e + (2 << level) - 1 <= hi:
            level += 1
        out.append((level, e >> level))
        e += 1 << level
    return out


def _budget(sm: SwapModel, nogap_curve: np.ndarray, budget: int, unit: int) -> None:
    """Resident bytes at every EO: the no-swap curve, minus each chosen gap's bytes where the
    buffer is out (before its window: ``out``; in it: until ``r``)."""
    n_eo = len(nogap_curve)
    terms: list[list] = [[] for _ in range(n_eo)]
    for c in sm.cands:
        size, out, rs = c.nbytes // unit, sm.out[c.group], sm.r.get(c.key, {})
        for e in range(c.after + 1, min(c.before, n_eo)):
            terms[e].append(size * rs[e] - size if e in rs else -size * out)
    for e in range(n_eo):
        if nogap_curve[e] > budget:  # else met whatever leaves RAM
            sm.model.add(int(nogap_curve[e]) // unit + sum(terms[e]) <= budget // unit)


def _stalls(sm: SwapModel, units: Units) -> None:
    """Stall of a phase: its load beyond compute on each channel. A dyadic block's writes may
    go anywhere in it, so every block holding some must fit all flows inside it into its
    phases' compute plus stall (Hall's condition, exact for a laminar family)."""
    load: dict[int, dict[str, list]] = {}
    inside: dict[tuple[int, int], dict[str, list]] = {}
    for (kind, _), xs in sm.flow.items():
        for k, x in xs.items():
            load.setdefault(k, {}).setdefault("io" if sm.shared else kind, []).append(x)
    top = max([level for bs in sm.block_flow.values() for level, _ in bs], default=0)
    for (kind, _), bs in sm.block_flow.items():
        for (level, i), x in bs.items():
            for up in range(level, top + 1):
                inside.setdefault((up, i >> (up - level)), {}).setdefault(
                    "io" if sm.shared else kind, []).append(x)
    phases = set(load) | {k for level, i in inside for k in _span(level, i, units)}
    total = sum(units.read_us.values()) + sum(units.write_us.values())
    caps = units.caps_us
    for k in sorted(phases):
        sm.stall_at[k] = sm.model.new_int_var(0, total, f"stall[{k}]")
    for k, by_channel in load.items():
        for xs in by_channel.values():
            sm.model.add(sm.stall_at[k] >= sum(xs) - caps[k])
    for (level, i), by_channel in inside.items():
        span = _span(level, i, units)
        for ch, xs in by_channel.items():
            leaves = [x for k in span for x in load.get(k, {}).get(ch, [])]
            sm.model.add(sum(sm.stall_at[k] for k in span)
                         >= sum(xs) + sum(leaves) - sum(caps[k] for k in span))
    sm.stall = sum(sm.stall_at.values())


def _span(level: int, i: int, units: Units) -> range:
    return range(i << level, min((i + 1) << level, len(units.caps_us)))


def add_hint(sm: SwapModel, units: Units, n_eo: int, starts: dict[int, int],
             writes: set[int]) -> int:
    """Hint every variable with a choice (see optimal_data.model_jobs), its I/O placed earliest
    deadline first; returns the choice's stall in the model (microseconds)."""
    m = sm.model
    m.clear_hints()
    for key, out in sm.out.items():
        m.add_hint(out, int(key in starts))  # ints: protobuf 5+ refuses bools
        for e, v in sm.r[key].items():
            m.add_hint(v, int(key not in starts or e >= starts[key]))
    for key, w in sm.write.items():
        m.add_hint(w, int(key in writes))
    jobs, owners = model_jobs(sm.cands, units, n_eo, starts, writes)
    total, alloc, stall = edf(jobs, units.caps_us, sm.shared)
    placed = dict(zip(owners, alloc))
    for owner, xs in sm.flow.items():
        for k, x in xs.items():
            m.add_hint(x, int(placed.get(owner, {}).get(k, 0)))
    for owner, bs in sm.block_flow.items():
        got = placed.get(owner, {})
        for (level, i), x in bs.items():
            m.add_hint(x, int(sum(got.get(k, 0) for k in _span(level, i, units))))
    for k, v in sm.stall_at.items():
        m.add_hint(v, int(stall[k]))
    return int(total)


def extract(sm: SwapModel, solver: cp_model.CpSolver, n_eo: int) -> list[Gap]:
    """Gap choices of the solver's solution (call only after OPTIMAL or FEASIBLE)."""
    gaps = []
    for c in sm.cands:
        if not solver.boolean_value(sm.out[c.group]):
            continue
        if c.kind == "tail":
            gaps.append(Gap(c.tensor, c.after, n_eo, n_eo))
            continue
        started = [e for e, v in sm.r[c.key].items() if solver.boolean_value(v)]
        gaps.append(Gap(c.tensor, c.after, c.before, min(started, default=c.before)))
    return gaps
