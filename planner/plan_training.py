"""Plan a training graph: one function makes the TrainingPlan every consumer reads.

Without a budget, NNTrainer's two pools are planned by an offset planner — weights and
optimizer state (live over the whole iteration), then everything else — and laid out one after
the other in one arena. Under a RAM budget a swap planner decides which buffers leave RAM in
which gaps and the offset planner places every resident piece in one arena within the budget.
The execution order, lifespans, uses and minimum budget are computed once here and travel in
the plan; the independent validator (planner/verify.py) checks the result against the graph.

>>> from trainplan.planner.build import build_training_graph
>>> from trainplan.planner.zoo import get_model
>>> g = build_training_graph(get_model("mlp", batch=4))
>>> plan = plan_training(g)
>>> plan.provenance.offsets, plan.valid, plan.arena_bytes >= plan.bounds.lower_bound_bytes
('nntrainer_v1', True, True)
>>> swapped = plan_training(g, budget=plan.bounds.min_budget_bytes)
>>> swapped.provenance.swap, swapped.valid, swapped.arena_bytes <= swapped.budget_bytes
('belady', True, True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import networkx as nx

from trainplan.planner.errors import Infeasible, TrainplanError, UnknownName
from trainplan.planner.identity import graph_identity
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.order import (
    ExecutionOrder,
    Lifespan,
    execution_order,
    lifespans,
    lower_bound,
    no_reuse_bytes,
)
from trainplan.planner.plan import Plan
from trainplan.planner.problems import problem_from_lifespans
from trainplan.planner.swap import SWAP_PLANNERS
from trainplan.planner.swap.arena import SwapArena, plan_swap_arena
from trainplan.planner.swap.stall_model import StorageModel
from trainplan.planner.swap.uses import BufferUses, buffer_uses
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.training_plan import (
    Bounds,
    Eviction,
    Piece,
    PlannedBuffer,
    Pool,
    Prefetch,
    Provenance,
    TrainingPlan,
)
from trainplan.planner.verify import verify_plan

DEFAULT_OFFSETS = "nntrainer_v1"  # NNTrainer's own default, without a budget
DEFAULT_SWAP_OFFSETS = "best"  # under a budget: the smallest arena of the greedy planners
DEFAULT_SWAP = "belady"
DEFAULT_ALIGNMENT = 64  # the runtime's SIMD-friendly boundary (runtime/layout.py)
MAX_ALIGNMENT = 2**30  # larger ones would push offsets past the bounds' int64 arithmetic


@dataclass(frozen=True)
class SwapCosts:
    """What a device tells the swap planners: its storage and the compute seconds of every EO
    (the ``optimal`` planner minimises the stall they imply)."""

    storage: StorageModel
    step_seconds: tuple[float, ...]


#: A device's costs for a given execution order (the caller knows the device; the planner
#: knows the order only once it has computed it).
CostModel = Callable[[nx.DiGraph, ExecutionOrder], SwapCosts]


def offsets_names() -> list[str]:
    """Offset planners a TrainingPlan can use: the registry plus ``best``."""
    return [*PLANNERS, DEFAULT_SWAP_OFFSETS]


def plan_training(graph: nx.DiGraph, *, order: str | ExecutionOrder = "nntrainer",
                  offsets: str | None = None, budget: int | None = None,
                  swap: str | None = None, lookahead: int = 1,
                  alignment: int | None = None, costs: CostModel | None = None,
                  time_limit: float | None = None, seed: int = 0,
                  workers: int = 2) -> TrainingPlan:
    """The TrainingPlan of ``graph`` under ``order``: offsets by ``offsets`` (default
    ``nntrainer_v1``, or under a budget ``best``), and under ``budget`` bytes a swap schedule by
    ``swap`` (default ``belady``; ``lookahead`` prefetches ``lookahead`` EOs ahead), every offset
    a multiple of ``alignment`` (default 64, what the runtime needs; 1 for a graph realised as
    NNTrainer does, whose pools are unpadded). ``costs`` gives a device's storage and compute to the
    ``optimal`` swap planner; ``time_limit``, ``seed`` and ``workers`` reach planners that
    search. Raises Infeasible (with the bytes needed) when the budget is too small."""
    began = time.perf_counter()
    if alignment is None:
        alignment = 1 if graph.graph.get("compat") else DEFAULT_ALIGNMENT
    _check_options(offsets, budget, swap, lookahead, alignment)
    # computed once, passed on
    eo = order if isinstance(order, ExecutionOrder) else execution_order(graph, order)
    spans = lifespans(graph, eo)
    uses = buffer_uses(graph, eo, spans)
    bounds = Bounds(lower_bound(spans, eo.n_eo), min_budget(uses, eo.n_eo),
                    no_reuse_bytes(spans))
    search = {"time_limit": time_limit, "seed": seed, "workers": workers}
    if budget is None:
        parts = _pools(spans, offsets or DEFAULT_OFFSETS, alignment, search)
    else:
        parts = _swapped(graph, eo, spans, uses, bounds, budget, offsets or DEFAULT_SWAP_OFFSETS,
                         swap or DEFAULT_SWAP, lookahead, alignment, costs, search)
    buffers, evictions, prefetches, pools, provenance = parts
    provenance = Provenance(**{**provenance, "solve_seconds": time.perf_counter() - began})
    arena = max((p.offset + b.nbytes for b in buffers for p in b.pieces), default=0)
    plan = TrainingPlan(graph_identity(graph), eo, buffers, evictions, prefetches, pools, arena,
                        alignment, budget, bounds, provenance)
    return replace(plan, errors=tuple(verify_plan(graph, plan)))


def _check_options(offsets, budget, swap, lookahead, alignment) -> None:
    if offsets is not None and offsets not in offsets_names():
        raise UnknownName(f"unknown offset planner {offsets!r}; valid: "
                          + ", ".join(offsets_names()))
    if swap is not None and swap not in SWAP_PLANNERS:
        raise UnknownName(f"unknown swap planner {swap!r}; valid: " + ", ".join(SWAP_PLANNERS))
    if swap is not None and budget is None:
        raise TrainplanError(f"swap planner {swap!r} needs a budget: without one nothing is "
                             "swapped; give a RAM budget (e.g. --budget 64MiB)")
    if budget is not None and budget <= 0:
        raise TrainplanError(f"budget {budget} bytes: a budget must be positive")
    if lookahead < 0:
        raise TrainplanError(f"lookahead {lookahead}: prefetch 0 or more EOs ahead")
    if alignment < 1 or alignment & (alignment - 1) or alignment > MAX_ALIGNMENT:
        raise TrainplanError(f"alignment {alignment}: use a power of two up to 2^30 (64 for "
                             "the runtime)")
    if offsets == DEFAULT_SWAP_OFFSETS and budget is None:
        raise TrainplanError("offset planner 'best' chooses among greedy planners for swapped "
                             "pieces; without a budget name a planner (see `trainplan "
                             "planners`)")


def _pools(spans: dict[str, Lifespan], offsets: str, alignment: int, search: dict):
    """NNTrainer's two pools, each planned by ``offsets``, the tensor pool after the weights."""
    plans: dict[str, Plan] = {}
    for pool in ("weight", "tensor"):
        problem = problem_from_lifespans(spans, pool, pool, alignment)
        plans[pool] = run_planner(offsets, problem, **_searching(offsets, search))
    weights = plans["weight"].arena_bytes
    base = -(-weights // alignment) * alignment
    pools = (Pool("weight", 0, weights), Pool("tensor", base, plans["tensor"].arena_bytes))
    shift = {"weight": 0, "tensor": base}
    buffers = tuple(
        PlannedBuffer(s.tensor, s.members, s.role, s.pool, s.nbytes, s.start, s.end,
                      (Piece(s.start, s.end, shift[s.pool] + plans[s.pool].offsets[s.tensor]),))
        for s in spans.values() if s.pool in shift)
    w, t = plans["weight"], plans["tensor"]
    proofs = (w.optimal, t.optimal)
    bound = None if t.best_bound is None else (w.best_bound or w.arena_bytes) + t.best_bound
    arena = base + t.arena_bytes
    provenance = {"offsets_requested": offsets, "offsets": offsets, "status": t.status,
                  "optimal": None if None in proofs else all(proofs),
                  "best_bound_bytes": bound,
                  "gap": None if bound is None or not arena else (arena - bound) / arena,
                  "options": {k: v for k, v in search.items() if v is not None}}
    return buffers, (), (), pools, provenance


def _searching(name: str, search: dict) -> dict:
    return {k: v for k, v in search.items() if v is not None} if PLANNERS[name].searches else {}


def _swapped(graph, eo: ExecutionOrder, spans: dict[str, Lifespan],
             uses: dict[str, BufferUses], bounds: Bounds, budget: int, offsets: str, swap: str,
             lookahead: int, alignment: int, costs: CostModel | None, search: dict):
    """Every resident piece of the swap schedule placed in one arena within the budget."""
    if budget < bounds.min_budget_bytes:
        raise Infeasible(f"budget {budget:,} bytes is below the minimum feasible budget: one "
                         f"EO's working set needs at least {bounds.min_budget_bytes:,} bytes",
                         bounds.min_budget_bytes)
    options = {"lookahead": lookahead, "seed": search["seed"], "workers": search["workers"]}
    if search["time_limit"] is not None:
        options["time_limit"] = search["time_limit"]
    if costs is not None:
        c = costs(graph, eo)
        options.update(storage=c.storage, step_seconds=list(c.step_seconds))
    arena = plan_swap_arena(uses, eo.n_eo, budget, swap=swap, offsets=offsets,
                            alignment=alignment, floor=bounds.min_budget_bytes, **options)
    buffers = _pieces(spans, uses, arena)
    s = arena.schedule
    evictions = tuple(Eviction(e.tensor, _piece_ending(arena, e.tensor, e.after_eo + 1),
                               e.after_eo, e.write, e.nbytes) for e in s.evictions)
    prefetches = tuple(Prefetch(p.tensor, _piece_starting(arena, p.tensor, p.start_eo),
                                p.start_eo, p.use_eo, p.read, p.nbytes) for p in s.prefetches)
    info = dict(s.options)
    used_swap = swap
    if swap == "optimal" and info.get("source") not in (None, "cpsat"):
        used_swap = info["source"]  # the warm start (or fallback) CP-SAT did not beat
    fallbacks = arena.fallbacks
    if swap == "optimal" and info.get("source") not in (None, "cpsat"):
        fallbacks += (f"CP-SAT found nothing better than the warm start {info['source']}",)
    stall = info.get("estimated_stall_seconds")
    bound = info.get("best_bound_seconds")
    provenance = {
        "offsets_requested": offsets, "offsets": arena.plan.planner,
        "swap_requested": swap, "swap": used_swap,
        "fallbacks": fallbacks, "status": info.get("status", "heuristic"),
        "optimal": info.get("proven") if swap == "optimal" else None,
        "best_bound_bytes": None,
        "gap": info.get("gap") if swap == "optimal" else None,
        "attempts": arena.attempts,
        "options": {**{k: v for k, v in info.items() if k not in ("solve_seconds",)},
                    **({"estimated_stall_seconds": stall, "best_bound_seconds": bound}
                       if stall is not None else {})},
    }
    pools = (Pool("resident", 0, arena.plan.arena_bytes),)
    return buffers, evictions, prefetches, pools, provenance


def _pieces(spans: dict[str, Lifespan], uses: dict[str, BufferUses],
            arena: SwapArena) -> tuple[PlannedBuffer, ...]:
    out = []
    for root in uses:
        s = spans[root]
        pieces = tuple(Piece(a, z, arena.offsets[(root, i)])
                       for i, (a, z) in enumerate(arena.schedule.resident[root]))
        out.append(PlannedBuffer(root, s.members, s.role, s.pool, s.nbytes, s.start, s.end,
                                 pieces))
    return tuple(out)


def _piece_ending(arena: SwapArena, buffer: str, end: int) -> int:
    return next(i for i, (_, z) in enumerate(arena.schedule.resident[buffer]) if z == end)


def _piece_starting(arena: SwapArena, buffer: str, start: int) -> int:
    return next(i for i, (a, _) in enumerate(arena.schedule.resident[buffer]) if a == start)

