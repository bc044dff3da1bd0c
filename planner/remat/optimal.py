"""The ``optimal`` remat planner: the least recomputation that keeps live bytes within a
budget, in CP-SAT, with each value's retention as intervals (as MOCCASIN does).

Data: the candidate groups (planner/remat/groups.py), the buffers their forward ops write and
the buffers their replays read, every use of those buffers, and the bytes of everything else
at each EO (a fixed profile).

Variables, O(n) in the number of groups: per group and per candidate EO τ (its own first
backward need, or the need of one of the next few groups, so that replays can chain) a boolean
``at[g, τ]``, at most one true (the group runs again at τ); per buffer the end of its first
retention interval. A written buffer is retained from its first use to that end, then — when its
group runs again at τ — from τ to its last use or the last replay reading it; a buffer a replay
reads stays until that replay unless its own group runs again no later.

Constraints: the intervals with their bytes, plus the fixed profile, never exceed the budget
(one cumulative; an overflow variable keeps the model feasible and is minimised first).

Objective: overflow, then the seconds (or flops) of the ops run again.

The warm start is the √n planner's replays. The result is checked the way plan_training will
place it (planner/remat/evaluate.py) and by the version check (planner/remat/replays.py); the
planner never returns more recomputation than √n when √n fits the budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import networkx as nx
import numpy as np
from ortools.sat.python import cp_model

from trainplan.planner.graph import alias_root, replay_edges
from trainplan.planner.order import ExecutionOrder, lifespans
from trainplan.planner.remat.evaluate import live_with
from trainplan.planner.remat.groups import Group
from trainplan.planner.remat.replays import conflicts
from trainplan.planner.remat.sqrt import plan_sqrt
from trainplan.planner.swap.uses import BufferUses, buffer_uses

CHAIN = 8  # later groups whose need a group's replay may join
RESOLUTION = 10**6  # the costliest group's cost in the integer objective
# With two or three workers CP-SAT's default portfolio may run no worker that proves bounds
SMALL_PORTFOLIO = ("default_lp", "max_lp", "core")


@dataclass
class _Model:
    model: cp_model.CpModel
    at: dict[tuple[int, int], cp_model.IntVar]  # (group index, EO) -> runs again there
    ran: list[cp_model.IntVar]
    overflow: cp_model.IntVar
    times: list[list[int]]
    costs: list[int]  # integer cost per group (RESOLUTION for the costliest)
    kept_until: dict[str, cp_model.IntVar]  # buffer -> end of its first retention


def plan_optimal_remat(graph: nx.DiGraph, eo: ExecutionOrder, groups: list[Group], *,
                       budget: int | None = None, time_limit: float | None = None,
                       seed: int = 0, workers: int = 2, deterministic: bool = False,
                       info: dict | None = None, **_) -> list[tuple[str, int]]:
    """Replays (op, EO) of the least cost keeping live bytes within ``budget`` (None: within
    the √n planner's peak, i.e. the same memory for less recomputation); ``deterministic``
    makes ``time_limit`` CP-SAT's deterministic time; ``info`` receives the status, bound, gap
    and the model's size."""
    began = time.perf_counter()
    info = {} if info is None else info
    warm = plan_sqrt(graph, eo, groups)
    warm_peak = int(live_with(graph, eo, warm).max(initial=0))
    target = warm_peak if budget is None else budget
    if not groups:
        info.update(status="NO_CANDIDATES")
        return []
    uses = buffer_uses(graph, eo, lifespans(graph, eo))
    m = _build(graph, eo, groups, uses, target)
    _hint(m, groups, warm)
    solver = cp_model.CpSolver()
    limit = 30.0 if time_limit is None else time_limit
    if deterministic:  # CP-SAT's own work units: the same answer under any load
        solver.parameters.max_deterministic_time = limit
    else:
        solver.parameters.max_time_in_seconds = max(0.1, limit - (time.perf_counter() - began))
    solver.parameters.random_seed = seed
    solver.parameters.num_workers = workers
    if workers <= len(SMALL_PORTFOLIO):  # a few workers: make sure some of them bound
        solver.parameters.num_workers = max(workers, 1)
        solver.parameters.subsolvers.extend(SMALL_PORTFOLIO[:max(workers, 1)])
    code = solver.solve(m.model)
    info.update(status=solver.status_name(code), budget_bytes=target,
                variables=len(m.model.proto.variables),
                constraints=len(m.model.proto.constraints))
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return warm
    replays = _extract(solver, m, groups)
    overflow = solver.value(m.overflow)
    weight = sum(m.costs) + 1
    info.update(overflow_bytes=overflow,
                best_bound=max(0.0, solver.best_objective_bound - overflow * weight))
    return _checked(graph, eo, groups, m.costs, replays, warm, target, info)


def _candidate_times(groups: list[Group]) -> list[list[int]]:
    """Per group: its own need and those of the next CHAIN groups (no later than its own)."""
    out = []
    for i, g in enumerate(groups):
        later = [h.backward_eo for h in groups[i + 1:i + 1 + CHAIN]]
        out.append(sorted({g.backward_eo, *(t for t in later if t <= g.backward_eo)}))
    return out


def _build(graph: nx.DiGraph, eo: ExecutionOrder, groups: list[Group],
           uses: dict[str, BufferUses], budget: int) -> _Model:
    # data
    n_eo = eo.n_eo
    writer = {b: i for i, g in enumerate(groups) for b in g.writes if b in uses
              and not uses[b].persistent}
    readers: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        for op in g.forward_ops:
            for t in replay_edges(graph, op)[0]:
                b = alias_root(graph, t)
                if b in uses and not uses[b].persistent and writer.get(b) != i:
                    readers.setdefault(b, []).append(i)
    moving = set(writer) | set(readers)
    fixed = np.zeros(n_eo + 1, dtype=np.int64)
    for b, u in uses.items():
        if b not in moving:
            start, end = (0, n_eo) if u.persistent else (u.start, u.end)
            fixed[start] += u.nbytes
            fixed[end] -= u.nbytes
    fixed = np.cumsum(fixed)[:n_eo]
    times = _candidate_times(groups)
    model = cp_model.CpModel()
    # variables
    at = {(i, t): model.new_bool_var(f"run_{groups[i].layers[0]}_at_{t}")
          for i in range(len(groups)) for t in times[i]}
    ran = []
    for i in range(len(groups)):
        x = model.new_bool_var(f"run_{groups[i].layers[0]}")
        model.add(sum(at[i, t] for t in times[i]) == x)
        ran.append(x)
    top = int(sum(u.nbytes for u in uses.values()))
    overflow = model.new_int_var(0, top, "overflow")
    # constraints: retention intervals and the budget
    intervals, demands = _fixed_profile(model, fixed)
    kept_until = {}
    for b in sorted(moving):
        u = uses[b]
        ends = kept_until[b] = _first_interval_end(model, b, u, writer.get(b),
                                                   readers.get(b, []), at, times, ran)
        kept = model.new_int_var(1, n_eo, f"keep_size_{b}")
        model.add(kept == ends - u.start)
        intervals.append(model.new_interval_var(u.start, kept, ends, f"keep_{b}"))
        demands.append(u.nbytes)
        if b in writer:
            i = writer[b]
            start = model.new_int_var(0, n_eo, f"again_start_{b}")
            end = model.new_int_var(0, n_eo, f"again_end_{b}")
            model.add(start == sum(t * at[i, t] for t in times[i]))
            size = model.new_int_var(0, n_eo, f"again_size_{b}")
            for t in times[i]:
                model.add(end >= max(u.end, t + 1)).only_enforce_if(at[i, t])
            for h in readers.get(b, []):  # replays reading it after its own recomputation
                for t in times[h]:
                    early = model.new_bool_var(f"again_{b}_by_{t}")
                    model.add(early == sum(at[i, s] for s in times[i] if s <= t))
                    model.add(end >= t + 1).only_enforce_if([at[h, t], early])
            model.add(size == end - start)
            intervals.append(model.new_optional_interval_var(start, size, end, ran[i],
                                                             f"again_{b}"))
            demands.append(u.nbytes)
    capacity = max(0, budget)
    model.add_cumulative(intervals, demands, capacity + overflow)
    _covers(model, groups, uses, writer, times, ran, overflow, budget, n_eo)
    # objective: overflow first, then the cost of recomputation
    biggest = max((g.cost for g in groups), default=0.0) or 1.0
    costs = [round(g.cost / biggest * RESOLUTION) for g in groups]
    model.minimize(overflow * (sum(costs) + 1)
                   + sum(c * ran[i] for i, c in enumerate(costs)))
    return _Model(model, at, ran, overflow, times, costs, kept_until)


def _covers(model, groups, uses, writer, times, ran, overflow, budget: int, n_eo: int) -> None:
    """Redundant cuts for a useful bound: at every EO whose live bytes exceed the budget, the
    groups run again must free at least the excess, and a group frees at most the bytes of its
    buffers that could be out of RAM then (between their last use before its earliest replay
    and its latest replay)."""
    base = np.zeros(n_eo + 1, dtype=np.int64)
    for u in uses.values():
        start, end = (0, n_eo) if u.persistent else (u.start, u.end)
        base[start] += u.nbytes
        base[end] -= u.nbytes
    base = np.cumsum(base)[:n_eo]
    frees = [np.zeros(n_eo + 1, dtype=np.int64) for _ in groups]
    for b, i in writer.items():
        u = uses[b]
        lo = max([x.eo for x in u.uses if x.eo < times[i][0]], default=u.start) + 1
        hi = min(times[i][-1], u.end)
        if lo < hi:
            frees[i][lo] += u.nbytes
            frees[i][hi] -= u.nbytes
    frees = [np.cumsum(f)[:n_eo] for f in frees]
    for e in np.flatnonzero(base > budget):
        terms = [(int(f[e]), ran[i]) for i, f in enumerate(frees) if f[e] > 0]
        model.add(sum(c * x for c, x in terms) + overflow >= int(base[e]) - budget)


def _fixed_profile(model: cp_model.CpModel, fixed: np.ndarray) -> tuple[list, list]:
    """The bytes not modelled as variable intervals, as fixed intervals over runs of EOs."""
    intervals, demands = [], []
    start = 0
    for e in range(1, len(fixed) + 1):
        if e == len(fixed) or fixed[e] != fixed[start]:
            if fixed[start] > 0:
                intervals.append(model.new_fixed_size_interval_var(start, e - start,
                                                                  f"fixed_{start}"))
                demands.append(int(fixed[start]))
            start = e
    return intervals, demands


def _first_interval_end(model, b: str, u: BufferUses, writer: int | None, readers: list[int],
                        at, times, ran):
    """The end of the buffer's first retention: its whole life unless its group runs again;
    then past every use before the replay, and past every replay reading it before."""
    end = model.new_int_var(u.start + 1, u.end if not readers else max(
        u.end, max(t for i in readers for t in times[i]) + 1), f"keep_end_{b}")
    reads = [x.eo for x in u.uses if x.reads or x.writes]
    if writer is None:
        model.add(end >= u.end)
    else:
        model.add(end >= u.end).only_enforce_if(ran[writer].Not())
        for t in times[writer]:
            before = [q for q in reads if q < t]
            last = max(before, default=u.start) + 1
            model.add(end >= last).only_enforce_if(at[writer, t])
            model.add(end <= t).only_enforce_if(at[writer, t])
    for i in readers:
        for t in times[i]:
            if writer is None:
                model.add(end >= t + 1).only_enforce_if(at[i, t])
            else:  # kept until the reading replay, unless the writer ran again no later
                early = [at[writer, s] for s in times[writer] if s <= t]
                model.add(end >= t + 1).only_enforce_if([at[i, t], *[x.Not() for x in early]])
    return end


def _hint(m: _Model, groups: list[Group], replays: list[tuple[str, int]]) -> None:
    when = {op: e for op, e in replays}
    for i, g in enumerate(groups):
        t = when.get(g.forward_ops[0])
        m.model.add_hint(m.ran[i], int(t is not None))
        for s in m.times[i]:
            m.model.add_hint(m.at[i, s], int(s == t))


def _extract(solver: cp_model.CpSolver, m: _Model, groups: list[Group]
             ) -> list[tuple[str, int]]:
    out = []
    for i, g in enumerate(groups):  # topological order: replays of one EO run in it
        for t in m.times[i]:
            if solver.value(m.at[i, t]):
                out += [(op, t) for op in g.forward_ops]
    return sorted(out, key=lambda r: r[1])


def _checked(graph, eo, groups, costs, replays, warm, target, info) -> list[tuple[str, int]]:
    """The solver's replays unless they change a value or overflow where √n does not; never
    more cost than √n when √n fits."""
    first = {g.forward_ops[0]: c for g, c in zip(groups, costs, strict=True)}

    def price(rs):
        return sum(first.get(op, 0) for op, _ in rs)

    def peak(rs):
        return int(live_with(graph, eo, rs).max(initial=0))
    fits = [(rs, name) for rs, name in ((replays, "cpsat"), (warm, "sqrt"))
            if not conflicts(graph, eo, rs) and peak(rs) <= target]
    if fits:
        best, source = min(fits, key=lambda f: price(f[0]))
    else:  # nothing fits: the least peak
        best, source = min(((replays, "cpsat"), (warm, "sqrt")),
                           key=lambda f: (bool(conflicts(graph, eo, f[0])), peak(f[0])))
    bound, objective = info.get("best_bound"), price(best)
    info.update(source=source, objective=objective, peak_live_bytes=peak(best),
                gap=0.0 if objective <= 0 else max(0.0, (objective - bound) / objective),
                proven=(info.get("status") == "OPTIMAL" and source == "cpsat"
                        and info.get("overflow_bytes") == 0) or objective <= 0)
    return best
