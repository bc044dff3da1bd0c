"""Plan a training graph: one function makes the TrainingPlan every consumer reads.

Without a budget, NNTrainer's two pools are planned by an offset planner — weights and
optimizer state (live over the whole iteration), then everything else — and laid out one after
the other in one arena. With recomputation (``remat``) some forward ops run again before the
backward steps that need their results, so those values leave RAM after their last forward use
and every value's span is placed as its own piece. Under a RAM budget a swap planner decides
which values leave RAM in which gaps and the offset planner places every resident piece in one
arena within the budget. The execution order, lifespans, uses and minimum budget are computed
once here and travel in the plan; the independent validator (planner/verify.py) checks the
result against the graph.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import networkx as nx

from trainplan.planner.curves import peak
from trainplan.planner.errors import Infeasible, TrainplanError, UnknownName
from trainplan.planner.identity import fingerprint, graph_identity
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.order import (
    ExecutionOrder,
    Lifespan,
    execution_order,
    lifespans,
    no_reuse_bytes,
)
from trainplan.planner.plan import Plan
from trainplan.planner.problems import problem_from_lifespans
from trainplan.planner.remat import REMAT_PLANNERS, plan_remat
from trainplan.planner.remat.evaluate import value_curve
from trainplan.planner.remat.replays import expand_order
from trainplan.planner.split import resplit
from trainplan.planner.split_auto import auto_splits
from trainplan.planner.strategies import STRATEGIES
from trainplan.planner.swap import SWAP_PLANNERS, SwapSchedule
from trainplan.planner.swap.arena import SwapArena, place_pieces, plan_swap_arena
from trainplan.planner.swap.stall_model import StorageModel
from trainplan.planner.swap.uses import BufferUses, buffer_uses, value_segments
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.training_plan import (
    Bounds,
    Eviction,
    Piece,
    PlannedBuffer,
    Pool,
    Prefetch,
    Provenance,
    Replay,
    SplitRecord,
    TrainingPlan,
)
from trainplan.planner.verify import verify_plan

DEFAULT_OFFSETS = "nntrainer_v1"  # NNTrainer's own default, without a budget
DEFAULT_SWAP_OFFSETS = "best"  # pieces (budget, remat): the smallest arena of the greedy ones
DEFAULT_SWAP = "belady"
DEFAULT_ALIGNMENT = 64  # the runtime's SIMD-friendly boundary (runtime/layout.py)
MAX_ALIGNMENT = 2**30  # larger ones would push offsets past the bounds' int64 arithmetic


@dataclass(frozen=True)
class SwapCosts:
    """What a device tells the planners: its storage, the compute seconds of every EO (the
    ``optimal`` swap planner minimises the stall they imply) and of every op (what running it
    again costs)."""

    storage: StorageModel
    step_seconds: tuple[float, ...]
    op_seconds: Mapping[str, float] = field(default_factory=dict)


#: A device's costs for a given execution order (the caller knows the device; the planner
#: knows the order only once it has computed it).
CostModel = Callable[[nx.DiGraph, ExecutionOrder], SwapCosts]


@dataclass(frozen=True)
class _Values:
    """The values to place: per buffer its uses, cut into segments where recomputation lets a
    value die, and the table from a segment back to (buffer, index)."""

    spans: dict[str, Lifespan]
    uses: dict[str, BufferUses]
    segments: dict[str, BufferUses]
    owner: dict[str, tuple[str, int]]


def offsets_names() -> list[str]:
    """Offset planners a TrainingPlan can use: the registry plus ``best``."""
    return [*PLANNERS, DEFAULT_SWAP_OFFSETS]


#: A plan's iteration time on a device (the simulator's), for strategies that compare plans.
Score = Callable[[nx.DiGraph, TrainingPlan], float]


def plan_training(graph: nx.DiGraph, *, order: str | ExecutionOrder = "nntrainer",
                  offsets: str | None = None, budget: int | None = None,
                  swap: str | None = None, lookahead: int = 1, remat: str | None = None,
                  remat_budget: int | None = None, alignment: int | None = None,
                  costs: CostModel | None = None, score: Score | None = None,
                  time_limit: float | None = None, seed: int = 0,
                  workers: int = 2, deterministic: bool = False,
                  split: str | int | None = None) -> TrainingPlan:
    """The TrainingPlan of ``graph`` under ``order``: offsets by ``offsets`` (default
    ``nntrainer_v1``, or under a budget or with recomputation ``best``), recomputation by
    ``remat`` (``sqrt``, ``greedy``, ``optimal``; default none), and under ``budget`` bytes a
    swap schedule by ``swap`` (default
    ``belady``; ``lookahead`` prefetches ``lookahead`` EOs ahead), every offset a multiple of
    ``alignment`` (default 64, what the runtime needs; 1 for a graph realised as NNTrainer does,
    whose pools are unpadded). ``swap`` may also name a joint strategy (planner/strategies.py:
    keep, swap or recompute each value), which compares whole plans by ``score``, each planned
    with ``time_limit``.
    ``remat_budget``: the live bytes recomputation aims at (default the budget). ``costs``
    gives a device's storage and compute to the ``optimal`` planners; ``time_limit``, ``seed``
    and ``workers`` reach planners that search, and ``deterministic`` makes ``time_limit``
    CP-SAT's deterministic time where a planner offers it (with ``workers=1``: the same plan
    under any load). ``split`` (``auto`` or a chunk count) first runs the steps whose working
    set exceeds the budget over the batch in chunks (planner/split_auto.py): the plan is then
    the split graph's and records how to rebuild it (``planner.split.graph_for``). Raises
    Infeasible (with the bytes needed) when the budget is too small."""
    began = time.perf_counter()
    if split not in (None, "off"):
        record = _split(graph, split, order, budget)
        graph = resplit(graph, record)
        plan = plan_training(graph, order=order, offsets=offsets, budget=budget, swap=swap,
                             lookahead=lookahead, remat=remat, remat_budget=remat_budget,
                             alignment=alignment, costs=costs, score=score,
                             time_limit=time_limit, seed=seed, workers=workers,
                             deterministic=deterministic)
        return replace(plan, split=record, provenance=replace(
            plan.provenance, solve_seconds=time.perf_counter() - began))
    if swap in STRATEGIES:
        return _strategy(graph, order, offsets, budget, swap, lookahead, alignment, costs,
                         score, time_limit, seed, workers, deterministic, began)
    if alignment is None:
        alignment = 1 if graph.graph.get("compat") else DEFAULT_ALIGNMENT
    _check_options(offsets, budget, swap, lookahead, remat, alignment)
    search = {"time_limit": time_limit, "seed": seed, "workers": workers,
              "deterministic": deterministic or None}
    # computed once, passed on
    eo = order if isinstance(order, ExecutionOrder) else execution_order(graph, order)
    device = costs(graph, eo) if costs is not None else None
    replays, remat_info = _replays(graph, eo, remat, remat_budget or budget, device, search)
    if replays:  # every recomputed op gets an EO of its own before the EO that needs it
        wider, replays = expand_order(eo, replays)
        device = _widened(device, eo, wider, replays)
        eo = wider
    values = _values(graph, eo, replays)
    bounds = Bounds(peak(value_curve(values.segments, eo.n_eo)),
                    min_budget(values.segments, eo.n_eo),
                    no_reuse_bytes(values.spans))
    if budget is None and not replays:
        parts = _pools(values.spans, offsets or DEFAULT_OFFSETS, alignment, search)
    elif budget is None:
        parts = _segmented(values, eo.n_eo, offsets or DEFAULT_SWAP_OFFSETS, alignment, search)
    else:
        parts = _swapped(values, eo.n_eo, bounds, budget, offsets or DEFAULT_SWAP_OFFSETS,
                         swap or DEFAULT_SWAP, lookahead, alignment, device, search)
    buffers, evictions, prefetches, pools, provenance = parts
    if remat not in (None, "none"):
        provenance.update(remat_requested=remat, remat=remat if replays else "none",
                          options={**provenance.get("options", {}), "remat": remat_info})
    provenance = Provenance(**{**provenance, "solve_seconds": time.perf_counter() - began})
    arena = max((p.offset + b.nbytes for b in buffers for p in b.pieces), default=0)
    plan = TrainingPlan(graph_identity(graph), eo, buffers, evictions, prefetches, pools, arena,
                        alignment, budget, bounds, provenance,
                        recomputes=tuple(Replay(op, e) for op, e in replays))
    return replace(plan, errors=tuple(verify_plan(graph, plan)))


def _check_options(offsets, budget, swap, lookahead, remat, alignment) -> None:
    if offsets is not None and offsets not in offsets_names():
        raise UnknownName(f"unknown offset planner {offsets!r}; valid: "
                          + ", ".join(offsets_names()))
    if swap is not None and swap not in SWAP_PLANNERS:
        raise UnknownName(f"unknown swap planner {swap!r}; valid: "
                          + ", ".join([*SWAP_PLANNERS, *STRATEGIES]))
    if remat is not None and remat not in REMAT_PLANNERS:
        raise UnknownName(f"unknown remat planner {remat!r}; valid: "
                          + ", ".join(REMAT_PLANNERS))
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
    if offsets == DEFAULT_SWAP_OFFSETS and budget is None and remat in (None, "none"):
        raise TrainplanError("offset planner 'best' chooses among greedy planners for pieces; "
                             "without a budget or recomputation name a planner (see `trainplan "
                             "planners`)")


def _replays(graph: nx.DiGraph, eo: ExecutionOrder, remat: str | None, budget: int | None,
             device: SwapCosts | None, search: dict) -> tuple[list[tuple[str, int]], dict]:
    if remat in (None, "none"):
        return [], {}
    return plan_remat(remat, graph, eo, op_cost=dict(device.op_seconds) if device else None,
                      budget=budget, **{k: v for k, v in search.items() if v is not None})


def _widened(device: SwapCosts | None, eo: ExecutionOrder, wider: ExecutionOrder,
             replays: list[tuple[str, int]]) -> SwapCosts | None:
    """The device's seconds per EO under the widened order: each EO's as before, each
    recomputation's its op's."""
    if device is None:
        return None
    seconds = [0.0] * wider.n_eo
    for old, new in _eo_map(eo, wider).items():
        seconds[new] = device.step_seconds[old]
    for op, e in replays:
        seconds[e] = device.op_seconds.get(op, 0.0)
    return replace(device, step_seconds=tuple(seconds))


def _eo_map(eo: ExecutionOrder, wider: ExecutionOrder) -> dict[int, int]:
    return {eo.op_eo[op]: wider.op_eo[op] for op in eo.op_eo}


def _values(graph: nx.DiGraph, eo: ExecutionOrder, replays: list[tuple[str, int]]) -> _Values:
    spans = lifespans(graph, eo, replays)
    uses = buffer_uses(graph, eo, spans, replays)
    if not replays:
        return _Values(spans, uses, uses, {k: (k, 0) for k in uses})
    segments, owner = value_segments(uses)
    return _Values(spans, uses, segments, owner)


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
    # the tensor pool starts at the aligned end of the weight pool, in the bound as in the arena
    bound = None if t.best_bound is None else \
        -(-(w.best_bound or w.arena_bytes) // alignment) * alignment + t.best_bound
    arena = base + t.arena_bytes
    provenance = {"offsets_requested": offsets, "offsets": offsets, "status": t.status,
                  "optimal": None if None in proofs else all(proofs),
                  "best_bound_bytes": bound,
                  "gap": None if bound is None or not arena else (arena - bound) / arena,
                  "options": {k: v for k, v in search.items() if v is not None}}
    return buffers, (), (), pools, provenance


def _searching(name: str, search: dict) -> dict:
    return {k: v for k, v in search.items() if v is not None} if PLANNERS[name].searches else {}


def _segmented(values: _Values, n_eo: int, offsets: str, alignment: int, search: dict):
    """With recomputation and no budget: every value's span one piece, all in one arena."""
    resident = {k: ((0, n_eo) if s.persistent else (s.start, s.end),)
                for k, s in values.segments.items()}
    schedule = SwapSchedule("none", 0, n_eo, resident,
                            {k: s.nbytes for k, s in values.segments.items()})
    arena = place_pieces(schedule, values.segments, offsets, alignment, search)
    buffers, _, _ = _planned(values, arena)
    plan = arena.plan
    provenance = {"offsets_requested": offsets, "offsets": plan.planner, "status": plan.status,
                  "optimal": plan.optimal, "best_bound_bytes": plan.best_bound,
                  "gap": plan.gap, "options": {k: v for k, v in search.items() if v is not None}}
    return buffers, (), (), (Pool("resident", 0, plan.arena_bytes),), provenance


def _swapped(values: _Values, n_eo: int, bounds: Bounds, budget: int, offsets: str, swap: str,
             lookahead: int, alignment: int, device: SwapCosts | None, search: dict):
    """Every resident piece of the swap schedule placed in one arena within the budget."""
    if budget < bounds.min_budget_bytes:
        raise Infeasible(f"budget {budget:,} bytes is below the minimum feasible budget: one "
                         f"EO's working set needs at least {bounds.min_budget_bytes:,} bytes",
                         bounds.min_budget_bytes)
    options = {"lookahead": lookahead, "seed": search["seed"], "workers": search["workers"]}
    if search["deterministic"]:
        options["deterministic"] = True
    if search["time_limit"] is not None:
        options["time_limit"] = search["time_limit"]
    if device is not None:
        options.update(storage=device.storage, step_seconds=list(device.step_seconds))
    arena = plan_swap_arena(values.segments, n_eo, budget, swap=swap, offsets=offsets,
                            alignment=alignment, floor=bounds.min_budget_bytes, **options)
    buffers, evictions, prefetches = _planned(values, arena)
    info = dict(arena.schedule.options)
    used_swap = swap
    if swap == "optimal" and info.get("source") not in (None, "cpsat"):
        used_swap = info["source"]  # the warm start (or fallback) CP-SAT did not beat
    fallbacks = arena.fallbacks
    if swap == "optimal" and info.get("source") not in (None, "cpsat"):
        fallbacks += (f"CP-SAT found nothing better than the warm start {info['source']}",)
    stall = info.get("estimated_stall_seconds")
    provenance = {
        "offsets_requested": offsets, "offsets": arena.plan.planner,
        "swap_requested": swap, "swap": used_swap,
        "fallbacks": fallbacks, "status": info.get("status", "heuristic"),
        "optimal": info.get("proven") if swap == "optimal" else None,
        "best_bound_bytes": None,
        "gap": info.get("gap") if swap == "optimal" else None,
        "attempts": arena.attempts,
        "options": {**{k: v for k, v in info.items() if k not in ("solve_seconds",)},
                    **({"estimated_stall_seconds": stall,
                        "best_bound_seconds": info.get("best_bound_seconds")}
                       if stall is not None else {})},
    }
    pools = (Pool("resident", 0, arena.plan.arena_bytes),)
    return buffers, evictions, prefetches, pools, provenance


def _planned(values: _Values, arena: SwapArena):
    """Buffers with their pieces (every segment's, in EO order) and the transfers, naming
    each piece by its index in its buffer."""
    placed: dict[str, list[tuple[int, int, int, str, int]]] = {}
    for key, pieces in arena.schedule.resident.items():
        buffer, _ = values.owner[key]
        for i, (a, z) in enumerate(pieces):
            placed.setdefault(buffer, []).append((a, z, arena.offsets[(key, i)], key, i))
    index, buffers = {}, []
    for root in values.uses:
        rows = sorted(placed.get(root, []))
        index.update({(key, i): n for n, (_, _, _, key, i) in enumerate(rows)})
        s = values.spans[root]
        live = tuple((seg.start, seg.end) for key, seg in values.segments.items()
                     if values.owner[key][0] == root) if len(rows) > 1 else ()
        buffers.append(PlannedBuffer(
            root, s.members, s.role, s.pool, s.nbytes, s.start, s.end,
            tuple(Piece(a, z, off) for a, z, off, _, _ in rows),
            tuple(sorted(live)) if len(live) > 1 else ()))
    s = arena.schedule
    evictions = tuple(Eviction(values.owner[e.tensor][0],
                               index[e.tensor, _piece_ending(s, e.tensor, e.after_eo + 1)],
                               e.after_eo, e.write, e.nbytes) for e in s.evictions)
    prefetches = tuple(Prefetch(values.owner[p.tensor][0],
                                index[p.tensor, _piece_starting(s, p.tensor, p.start_eo)],
                                p.start_eo, p.use_eo, p.read, p.nbytes) for p in s.prefetches)
    return tuple(buffers), evictions, prefetches


def _piece_ending(schedule: SwapSchedule, key: str, end: int) -> int:
    return next(i for i, (_, z) in enumerate(schedule.resident[key]) if z == end)


def _piece_starting(schedule: SwapSchedule, key: str, start: int) -> int:
    return next(i for i, (a, _) in enumerate(schedule.resident[key]) if a == start)


def _strategy(graph, order, offsets, budget, name, lookahead, alignment, costs, score,
              time_limit, seed, workers, deterministic, began) -> TrainingPlan:
    """Every combination the strategy proposes, planned in full as a single run would be (the
    same ``time_limit`` per planning run, seed, workers and ``deterministic``); the one with
    the least score (iteration seconds on the device). Deterministic with one worker, the
    swap-only and recompute-only combinations are exactly those single runs' plans, so the
    strategy is never slower than either."""
    if budget is None:
        raise TrainplanError(f"strategy {name!r} keeps training within a budget; give one "
                             "(e.g. --budget 64MiB)")
    if score is None:
        raise TrainplanError(f"strategy {name!r} compares plans by their simulated time: give "
                             "a device (e.g. --device phone-ufs31)")
    combos = STRATEGIES[name][0]()
    eo = order if isinstance(order, ExecutionOrder) else execution_order(graph, order)
    bound = peak(value_curve(_values(graph, eo, []).segments, eo.n_eo))
    tried, best = [], None
    for c in combos:
        target = int(bound - c.fraction * max(0, bound - budget))
        try:
            plan = plan_training(graph, order=eo, offsets=offsets, budget=budget,
                                 swap=c.swap, lookahead=lookahead, remat=c.remat,
                                 remat_budget=target, alignment=alignment, costs=costs,
                                 time_limit=time_limit, seed=seed, workers=workers,
                                 deterministic=deterministic)
        except Infeasible:
            continue
        if not plan.valid:
            continue
        seconds = score(graph, plan)
        tried.append({"remat": c.remat, "remat_budget_bytes": target, "swap": c.swap,
                      "seconds": seconds})
        if best is None or seconds < best[0]:
            best = (seconds, plan)
    if best is None:
        raise Infeasible(f"no combination of {name!r} fits the budget {budget:,} bytes; raise "
                         "it", budget)
    seconds, plan = best
    provenance = replace(plan.provenance, swap_requested=name,
                         solve_seconds=time.perf_counter() - began,
                         options={**plan.provenance.options, "strategy": name,
                                  "tried": tried, "seconds": seconds})
    return replace(plan, provenance=provenance)


def _split(graph: nx.DiGraph, split: str | int, order, budget: int | None
           ) -> SplitRecord | None:
    """What to split (auto_splits) for ``budget``: None when nothing needs it."""
    chunks = None if split == "auto" else _chunk_count(split)
    if budget is None:
        raise TrainplanError("splitting runs steps in chunks until they fit a budget; give one "
                             "(e.g. --budget 100MiB)")
    name = order.name if isinstance(order, ExecutionOrder) else order
    choice = auto_splits(graph, budget, name, chunks=chunks)
    if not choice.splits and not choice.units:
        return None
    return SplitRecord(fingerprint(graph),
                       tuple((a, b, k) for (a, b), k in choice.splits.items()),
                       tuple(choice.units.items()))


def _chunk_count(split) -> int:
    try:
        chunks = int(split)
    except (TypeError, ValueError):
        raise UnknownName(f"unknown split {split!r}: use off, auto or a chunk count of 2 or "
                          "more") from None
    if chunks < 2:
        raise TrainplanError(f"split {chunks}: a chunk count is 2 or more (or use off)")
    return chunks
