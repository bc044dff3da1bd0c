"""The ``optimal`` swap planner: least stall under a RAM budget, then fewest bytes moved.

CP-SAT chooses which gaps each buffer spends in storage and when each prefetch starts
(planner/swap/optimal_model.py), with the budget at every EO and the stall of
planner/swap/stall_model.py as objective; a second solve keeps that stall and minimises the
bytes moved (70% of the remaining time limit for the first, the rest for the second). The warm
start is the best heuristic schedule by the same estimate (lookahead with k = 1, 0, 2 where it
fits, belady, belady evicting in every gap), and the planner never returns anything worse: if
CP-SAT finds nothing better in time, the heuristic's gaps come back (``source`` names it) and
``proven`` is False.

Small problems get the full model: every prefetch start in every gap, so an OPTIMAL status
proves the least stall of the slot model (mlp, lenet5, lstm, tacotron2: up to ~6 500 variables).
Past ``max_cells`` EO-gap cells (default 4 000; vgg16_cifar's 9 252 already spend 10 s in
presolve) the model is restricted (planner/swap/optimal_data.py: prefetch windows of ``cover``
times the read, at most 24 EOs; writes of long gaps done before the window) and searched by
large neighbourhoods only, without presolve; its bound is then the restricted model's
(``bound_scope``), not one of the problem: a stall of 0 is the only proof there.

>>> from trainplan.planner.swap.uses import BufferUses, Use
>>> bufs = {"a": BufferUses("a", 100, "activation", 0, 4, (Use(0, False, True), Use(3, True, False)),
...                         False),
...         "b": BufferUses("b", 100, "activation", 1, 3, (Use(1, False, True), Use(2, True, False)),
...                         False)}
>>> s = plan_optimal(bufs, 4, 100, time_limit=5)  # "a" must leave RAM while "b" lives
>>> s.peak_resident_bytes, s.options["status"], s.bytes_written, s.bytes_read
(100, 'OPTIMAL', 100, 100)
>>> round(s.options["estimated_stall_seconds"], 6)  # read at the use: 0.1 ms latency + 100 B
0.0001
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ortools.sat.python import cp_model

from trainplan.planner.errors import Infeasible, TrainplanError
from trainplan.planner.swap.belady import belady_gaps
from trainplan.planner.swap.lookahead import lookahead_gaps
from trainplan.planner.swap.optimal_data import (
    Candidate,
    Units,
    candidates,
    cells,
    clamp_starts,
    make_units,
    set_windows,
)
from trainplan.planner.swap.optimal_model import SwapModel, add_hint, build_model, extract
from trainplan.planner.swap.schedule import Gap, SwapSchedule, build_schedule
from trainplan.planner.swap.stall_model import (
    UFS_PHONE,
    StorageModel,
    default_steps,
    estimate_stall,
)
from trainplan.planner.swap.uses import BufferUses
from trainplan.planner.swap.working_set import min_budget

_TOL = 1e-9  # seconds: float noise when comparing stalls
_WIDEN = 8  # EOs a restricted window may grow to keep a warm start's earlier prefetch


@dataclass(frozen=True)
class _Setup:
    """One call's data and options, passed whole to the solve phases."""

    buffers: dict[str, BufferUses]
    n_eo: int
    budget: int
    steps: list[float]
    storage: StorageModel
    seed: int
    workers: int
    max_cells: int
    cover: float
    deterministic: bool = False  # time limits in CP-SAT's deterministic seconds, not wall time

    def score(self, gaps: list[Gap]) -> tuple[float, int]:
        """(estimated stall in seconds, bytes moved) of a gap choice: what the planner ranks."""
        s = build_schedule("optimal", self.buffers, gaps, self.n_eo, self.budget)
        return estimate_stall(s, self.steps, self.storage), s.bytes_written + s.bytes_read


class SolvedGaps(list):
    """Gap choices plus ``info``, the report ``optimal_gaps`` gives (for the registry)."""

    def __init__(self, gaps: list[Gap], info: dict):
        super().__init__(gaps)
        self.info = info


def plan_optimal(buffers: dict[str, BufferUses], n_eo: int, budget: int, *,
                 step_seconds: list[float] | None = None, storage: StorageModel | None = None,
                 time_limit: float = 10.0, seed: int = 0, workers: int = 2,
                 max_cells: int = 4_000, cover: float = 3.0,
                 deterministic: bool = False) -> SwapSchedule:
    """The schedule with least estimated stall (then fewest bytes moved) found in ``time_limit``
    seconds; ``options`` carry status, best bound, gap and the estimate (see ``optimal_gaps``)."""
    gaps, info = optimal_gaps(buffers, n_eo, budget, step_seconds=step_seconds, storage=storage,
                              time_limit=time_limit, seed=seed, workers=workers,
                              max_cells=max_cells, cover=cover, deterministic=deterministic)
    return build_schedule("optimal", buffers, gaps, n_eo, budget, info)


def optimal_gaps(buffers: dict[str, BufferUses], n_eo: int, budget: int, *,
                 step_seconds: list[float] | None = None, storage: StorageModel | None = None,
                 time_limit: float = 10.0, seed: int = 0, workers: int = 2,
                 max_cells: int = 4_000, cover: float = 3.0,
                 floor: int | None = None,
                 deterministic: bool = False) -> tuple[list[Gap], dict]:
    """Gap choices and a report: ``status`` (CP-SAT's, of the stall solve), ``proven`` (least
    stall proven: no stall, or OPTIMAL on the full model), ``source`` (``cpsat`` or the warm start returned),
    ``estimated_stall_seconds``, ``bytes_moved``, ``best_bound_seconds``, ``gap`` (estimate vs
    bound, relative), ``restricted``, the model's size and the warm starts' stalls.

    ``max_cells``: EO-gap cells past which windows are restricted; ``cover``: a restricted
    prefetch window's compute over its read time (planner/swap/optimal_data.py); ``floor``:
    the minimum budget when the caller knows it already; ``deterministic``: ``time_limit`` in
    CP-SAT's deterministic seconds (with one worker and a seed, the same answer under any load).
    """
    began = time.perf_counter()
    need = min_budget(buffers, n_eo) if floor is None else floor
    if budget < need:
        raise Infeasible(f"budget {budget} bytes is below the minimum feasible budget: needs "
                         f"at least {need} bytes (the largest working set of one EO)", need)
    setup = _Setup(buffers, n_eo, budget, default_steps(n_eo, step_seconds),
                   storage or UFS_PHONE, seed, workers, max_cells, cover, deterministic)
    warm = warm_starts(buffers, n_eo, budget, setup.score, need)
    source = min(warm, key=lambda name: warm[name][1], default=None)
    best_gaps, best = warm[source] if source is not None else (None, None)
    left = time_limit if deterministic else time_limit - (time.perf_counter() - began)
    found, info = _solve(setup, warm, left)
    scored = setup.score(found) if found is not None else None
    if scored is not None and (best is None or _better(scored, best)):
        best_gaps, best, source = found, scored, "cpsat"
    if best_gaps is None:
        raise Infeasible(f"no schedule within {budget} bytes found in {time_limit} s", need)
    info["warm_starts"] = {name: round(v[1][0], 9) for name, v in warm.items()}
    info["source"] = source
    info.update(_report(info, best))
    return best_gaps, info


def _better(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """Less stall, or no more stall and fewer bytes moved."""
    return a[0] < b[0] - _TOL or (a[0] <= b[0] + _TOL and a[1] < b[1])


def warm_starts(buffers: dict[str, BufferUses], n_eo: int, budget: int, score,
                floor: int | None = None) -> dict[str, tuple[list[Gap], tuple[float, int]]]:
    """The heuristics' gaps that fit ``budget``, each with its (stall, bytes moved)."""
    makers = {f"lookahead{k}": (lambda k=k: lookahead_gaps(buffers, n_eo, k)) for k in (1, 0, 2)}
    makers["belady"] = lambda: belady_gaps(buffers, n_eo, budget, floor=floor)
    makers["belady_evict_all"] = lambda: belady_gaps(buffers, n_eo, budget, evict_all=True,
                                                     floor=floor)
    out = {}
    for name, make in makers.items():
        try:
            gaps = make()
        except (TrainplanError, AssertionError):  # a heuristic that fails is no warm start
            continue
        if build_schedule(name, buffers, gaps, n_eo, budget).peak_resident_bytes <= budget:
            out[name] = (gaps, score(gaps))
    return out


def _solve(setup: _Setup, warm: dict, time_left: float) -> tuple[list[Gap] | None, dict]:
    """Build the model, hint it with the best warm start, minimise stall then bytes moved."""
    deadline = time.perf_counter() + max(time_left, 0.0)
    # data, variables, constraints
    sm, units, info, choices = _model(setup, warm)
    if choices:  # warm start: the choice the model itself prices lowest
        costs = [add_hint(sm, units, setup.n_eo, *ch) for ch in choices]
        add_hint(sm, units, setup.n_eo, *choices[costs.index(min(costs))])
    # objective: stall
    sm.model.minimize(sm.stall)
    # solve
    # deterministic: a fixed split of the time, whatever the clock says meanwhile
    first = 0.7 * (time_left if setup.deterministic else deadline - time.perf_counter())
    solver = _solver(first, setup, info["restricted"])
    code = solver.solve(sm.model)
    info["status"] = solver.status_name(code)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, info
    # extract
    info["best_bound_seconds"] = solver.best_objective_bound / 1e6
    info["model_stall_seconds"] = solver.objective_value / 1e6
    gaps = extract(sm, solver, setup.n_eo)
    # objective: bytes moved at no more stall, from that solution; solve; extract
    _hint_solution(sm, solver)
    sm.model.add(sm.stall <= round(solver.objective_value))
    sm.model.minimize(sm.moved)
    rest = 0.3 * time_left if setup.deterministic else deadline - time.perf_counter()
    second = _solver(rest, setup, info["restricted"])
    code = second.solve(sm.model)
    info["bytes_status"] = second.status_name(code)
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        gaps = extract(sm, second, setup.n_eo)
    return gaps, info


def _model(setup: _Setup, warm: dict) -> tuple[SwapModel, Units, dict, list]:
    """Candidates, windows (full or restricted), the model, and the warm starts as choices."""
    cands = candidates(setup.buffers, setup.n_eo)
    units = make_units(cands, [b.nbytes for b in setup.buffers.values()], setup.steps,
                       setup.storage)
    index = {(c.tensor, c.after): c for c in cands}
    choices = [ch for gaps, _ in warm.values()
               if (ch := _choice(index, setup.buffers, setup.n_eo, gaps)) is not None]
    size = cells(cands)
    restricted = size > setup.max_cells
    set_windows(cands, units, setup.n_eo, setup.cover if restricted else None,
                [starts for starts, _ in choices], _WIDEN)
    choices = [(clamp_starts(cands, starts), writes) for starts, writes in choices]
    nogap = build_schedule("none", setup.buffers, [], setup.n_eo, 0).resident_curve()
    sm = build_model(cands, nogap, setup.budget, units, setup.storage.shared_channel)
    info = {"status": "NOT_SOLVED", "restricted": restricted, "cells": size,
            "candidates": len(cands), "variables": len(sm.model.proto.variables),
            "constraints": len(sm.model.proto.constraints), "best_bound_seconds": 0.0,
            "rounding_slack_seconds": 1e-6 * (len(units.read_us) + len(units.write_us))}
    return sm, units, info, choices


def _solver(seconds: float, setup: _Setup, restricted: bool) -> cp_model.CpSolver:
    """A time limit, a seed and a worker count. A restricted model is searched by large
    neighbourhoods only, without presolve: presolve can eat the whole time limit, and its
    bound would not bound the problem anyway."""
    solver = cp_model.CpSolver()
    if setup.deterministic:
        solver.parameters.max_deterministic_time = max(seconds, 0.01)
    else:
        solver.parameters.max_time_in_seconds = max(seconds, 0.01)
    solver.parameters.random_seed = setup.seed
    solver.parameters.num_workers = setup.workers
    solver.parameters.cp_model_presolve = not restricted
    solver.parameters.use_lns_only = restricted
    return solver


def _hint_solution(sm: SwapModel, solver: cp_model.CpSolver) -> None:
    """Hint every variable with its value in ``solver``'s solution."""
    sm.model.clear_hints()
    for var in [*sm.out.values(), *sm.write.values(), *sm.stall_at.values(),
                *(v for rs in sm.r.values() for v in rs.values()),
                *(v for xs in sm.flow.values() for v in xs.values()),
                *(v for bs in sm.block_flow.values() for v in bs.values())]:
        sm.model.add_hint(var, solver.value(var))


def _choice(index: dict[tuple[str, int], Candidate], buffers: dict[str, BufferUses],
            n_eo: int, gaps: list[Gap]) -> tuple[dict[int, int], set[int]] | None:
    """A heuristic's gaps as the model's choice (prefetch starts by key, writing keys), or
    None when the model cannot express them."""
    starts, tails = {}, set()
    index_by_key = {c.key: c for c in index.values()}
    for g in gaps:
        c = index.get((g.tensor, g.after))
        if c is None or c.before != g.before:
            return None
        if c.kind == "tail":
            tails.add(c.group)
        elif (c.after + 2 if c.kind == "mid" else 0) <= g.prefetch <= c.before:
            starts[c.key] = g.prefetch
        else:
            return None
    heads = {k for k in starts if index_by_key[k].kind == "head"}
    if tails != heads or any(index_by_key[k].parent not in (None, *heads) for k in starts):
        return None  # a weight must start and end the iteration in storage to leave RAM
    s = build_schedule("hint", buffers, gaps, n_eo, 0)
    return starts, {index[ev.tensor, ev.after_eo].key for ev in s.evictions if ev.write}


def _report(info: dict, best: tuple[float, int]) -> dict:
    """The returned schedule's figures; ``gap`` is signed: below 0 only for a restricted model
    whose optimum a warm start beats (its bound is then no bound of the problem)."""
    stall, bound = best[0], info["best_bound_seconds"]
    proven = stall <= _TOL or (info["status"] == "OPTIMAL" and not info["restricted"]
                               and stall <= bound + info["rounding_slack_seconds"])
    gap = (stall - bound) / stall if stall > _TOL else min(0.0, -bound)
    return {"estimated_stall_seconds": round(stall, 9), "bytes_moved": best[1],
            "gap": round(gap, 6), "proven": proven,
            "bound_scope": "restricted model" if info["restricted"] else "problem"}
