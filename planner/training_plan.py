"""The TrainingPlan: the one record every consumer of a plan reads.

A TrainingPlan says, for one training graph, everything the simulator and the runtime need and
nothing they would have to derive again: the graph it was made for (a fingerprint), the
execution order, every buffer (its member tensors, role and lifespan) with its resident pieces
(``[start, end)`` EOs at an offset of the one arena), the transfers that move buffers between
RAM and storage, the arena and pool sizes, the bounds, and how it was found (the planners
actually used, fallbacks, solver status, bound, gap, wall-clock seconds). An unswapped buffer
is one piece; a swapped one has a piece per stay in RAM.

It is frozen and serialises to JSON with a schema version (``to_json`` / ``from_json``,
``save`` / ``load``); ``plan_training`` (planner/plan_training.py) makes it and
``verify_plan`` (planner/verify.py) checks it against the graph alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from trainplan.planner.curves import occupancy, peak
from trainplan.planner.errors import InvalidPlanFile
from trainplan.planner.fileio import atomic_write_text, clip, read_text_file
from trainplan.planner.order import ExecutionOrder
from trainplan.planner.plan_schema import MalformedField, typed

SCHEMA = 1  # bump when a field changes meaning; from_json refuses other versions


class BytesMoved:
    """Bytes a schedule of evictions and prefetches moves to and from storage (for the plan
    and for the swap planners' schedules alike): an eviction of a clean copy writes nothing,
    a prefetch of a value never written reads nothing."""

    @property
    def bytes_written(self) -> int:
        return sum(e.nbytes for e in self.evictions if e.write)

    @property
    def bytes_read(self) -> int:
        return sum(p.nbytes for p in self.prefetches if p.read)


@dataclass(frozen=True)
class GraphIdentity:
    """What a plan was made for: the model and the options it was built with, and a
    fingerprint of the graph's structure (tensors, ops, edges and their sizes)."""

    model: str
    batch: int
    optimizer: str
    fingerprint: str
    compat: bool = False
    inplace: bool = True
    freeze_until: str | None = None
    source: dict = field(default_factory=dict)  # how to build it again (CLI options)

    def describe(self) -> str:
        extra = [f"batch {self.batch}", f"optimizer {self.optimizer}"]
        if self.freeze_until:
            extra.append(f"frozen until {self.freeze_until}")
        if not self.inplace:
            extra.append("no in-place")
        if self.compat:
            extra.append("NNTrainer-compatible")
        return f"model {self.model!r} ({', '.join(extra)})"


@dataclass(frozen=True)
class Piece:
    """A buffer's stay in RAM: resident over EOs ``[start, end)`` at ``offset`` in the arena."""

    start: int
    end: int
    offset: int


@dataclass(frozen=True)
class PlannedBuffer:
    """An alias class of tensors sharing bytes, used over ``[start, end)``, and its pieces.

    ``live`` lists the ``[start, end)`` spans in which its bytes hold a value still to be read:
    one span, unless recomputation regenerates the value later (the bytes are dead between a
    last read and a write that does not read them).
    """

    id: str
    members: tuple[str, ...]
    role: str
    pool: str
    nbytes: int
    start: int
    end: int
    pieces: tuple[Piece, ...]
    live: tuple[tuple[int, int], ...] = ()

    @property
    def persistent(self) -> bool:
        """Weights and optimizer state live across iterations."""
        return self.pool == "weight"

    @property
    def live_spans(self) -> tuple[tuple[int, int], ...]:
        return self.live or ((self.start, self.end),)


@dataclass(frozen=True)
class Replay:
    """Forward op ``op`` runs again at EO ``eo`` (before that EO's own ops) to recompute what it
    wrote, from inputs still in RAM; it updates no running statistics and draws the same
    random numbers (dropout masks) as the first time."""

    op: str
    eo: int


@dataclass(frozen=True)
class SplitRecord:
    """The plan is for the split graph of the graph with fingerprint ``unsplit`` (its regions
    ``(first layer, last layer, chunks)`` run in chunks of the batch, its fully-connected
    ``units`` ``(layer, blocks)`` in blocks): planner/split.py rebuilds it."""

    unsplit: str
    regions: tuple[tuple[str, str, int], ...] = ()
    units: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Eviction:
    """Buffer ``buffer`` leaves RAM after EO ``after_eo`` (ending piece ``piece``); ``write``:
    its bytes go to storage (storage lacks them and they are read again)."""

    buffer: str
    piece: int
    after_eo: int
    write: bool
    nbytes: int


@dataclass(frozen=True)
class Prefetch:
    """Buffer ``buffer`` comes back from EO ``start_eo`` (starting piece ``piece``) for its use
    at ``use_eo``; ``read``: the bytes are read from storage (the use reads them)."""

    buffer: str
    piece: int
    start_eo: int
    use_eo: int
    read: bool
    nbytes: int


@dataclass(frozen=True)
class Pool:
    """A region of the arena: ``bytes`` from ``base`` (the weight and tensor pools of an
    unswapped plan, as NNTrainer plans them; one ``resident`` pool under a budget)."""

    name: str
    base: int
    bytes: int


@dataclass(frozen=True)
class Bounds:
    """Bytes no plan of this graph and order can beat: ``lower_bound`` (the most bytes live
    at one EO), ``min_budget`` (the largest working set of one EO: the smallest budget any
    swap schedule meets), ``no_reuse`` (nothing shares)."""

    lower_bound_bytes: int
    min_budget_bytes: int
    no_reuse_bytes: int


@dataclass(frozen=True)
class Provenance:
    """How the plan was found: the planners asked for and the ones whose result is used,
    fallbacks taken, the solver's status, best bound and gap, and real wall-clock seconds."""

    offsets_requested: str
    offsets: str
    swap_requested: str | None = None
    swap: str | None = None
    remat_requested: str | None = None
    remat: str | None = None
    fallbacks: tuple[str, ...] = ()
    status: str = "greedy"
    optimal: bool | None = None
    best_bound_bytes: int | None = None
    gap: float | None = None
    solve_seconds: float = 0.0
    attempts: int = 1
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingPlan(BytesMoved):
    """One graph planned: order, buffers and pieces, transfers, arena, bounds, provenance.

    ``errors`` lists what the independent validator found when the plan was made (empty when
    valid); a loaded plan is validated again by whoever runs it.
    """

    graph: GraphIdentity
    order: ExecutionOrder
    buffers: tuple[PlannedBuffer, ...]
    evictions: tuple[Eviction, ...]
    prefetches: tuple[Prefetch, ...]
    pools: tuple[Pool, ...]
    arena_bytes: int
    alignment: int
    budget_bytes: int | None
    bounds: Bounds
    provenance: Provenance
    recomputes: tuple[Replay, ...] = ()
    split: SplitRecord | None = None
    errors: tuple[str, ...] = ()
    schema: int = SCHEMA

    # --- derived views ----------------------------------------------------------------------

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def swapped(self) -> bool:
        """Whether any bytes move between RAM and storage."""
        return any(e.write for e in self.evictions) or any(p.read for p in self.prefetches)

    @property
    def n_eo(self) -> int:
        return self.order.n_eo

    def buffer(self, buffer_id: str) -> PlannedBuffer:
        return self._by_id()[buffer_id]

    def _by_id(self) -> dict[str, PlannedBuffer]:
        cached = self.__dict__.get("_index")
        if cached is None:
            cached = {b.id: b for b in self.buffers}
            object.__setattr__(self, "_index", cached)
        return cached

    def member_buffer(self) -> dict[str, str]:
        """Every planned tensor -> the id of the buffer holding its bytes."""
        return {m: b.id for b in self.buffers for m in b.members}

    def resident_curve(self) -> np.ndarray:
        """Bytes of buffers in RAM at each EO (prefetches in flight included)."""
        return occupancy(((p.start, p.end, b.nbytes) for b in self.buffers for p in b.pieces),
                         self.n_eo)

    def live_curve(self) -> np.ndarray:
        """Bytes of live buffers at each EO, wherever they are (the lower bound's curve)."""
        return occupancy(((s, e, b.nbytes) for b in self.buffers for s, e in b.live_spans),
                         self.n_eo)

    def replays_at(self) -> dict[int, list[str]]:
        """EO -> the forward ops run again before its own ops, in order."""
        out: dict[int, list[str]] = {}
        for r in self.recomputes:
            out.setdefault(r.eo, []).append(r.op)
        return out

    @property
    def peak_resident_bytes(self) -> int:
        return peak(self.resident_curve())

    @property
    def peak_live_bytes(self) -> int:
        return peak(self.live_curve())

    def pool_bytes(self, name: str) -> int | None:
        return next((p.bytes for p in self.pools if p.name == name), None)

    def record(self) -> dict:
        """The figures ``trainplan plan`` prints (one vocabulary: docs/glossary.md)."""
        prov = self.provenance
        rec = {
            "model": self.graph.model, "batch": self.graph.batch, "order": self.order.name,
            "planner": prov.offsets, "swap": prov.swap, "remat": prov.remat,
            "strategy": prov.options.get("strategy"),
            "budget_bytes": self.budget_bytes,
            "arena_bytes": self.arena_bytes, "peak_resident_bytes": self.peak_resident_bytes,
            "peak_live_bytes": self.peak_live_bytes,
            "lower_bound_bytes": self.bounds.lower_bound_bytes,
            "min_budget_bytes": self.bounds.min_budget_bytes,
            "no_reuse_bytes": self.bounds.no_reuse_bytes,
            "ratio": round(self.arena_bytes / self.bounds.lower_bound_bytes, 6)
            if self.bounds.lower_bound_bytes else 1.0,
            "weight_pool_bytes": self.pool_bytes("weight"),
            "tensor_pool_bytes": self.pool_bytes("tensor"),
            "bytes_written": self.bytes_written, "bytes_read": self.bytes_read,
            "evictions": len(self.evictions), "prefetches": len(self.prefetches),
            "recomputed_ops": len(self.recomputes),
            "split": None if self.split is None else {
                "regions": [list(r) for r in self.split.regions],
                "units": dict(self.split.units)},
            "status": prov.status, "optimal": prov.optimal,
            "best_bound_bytes": prov.best_bound_bytes,
            "gap": None if prov.gap is None else round(prov.gap, 6),
            "solve_seconds": round(prov.solve_seconds, 6), "fallbacks": list(prov.fallbacks),
            "alignment": self.alignment, "valid": self.valid,
        }
        remat = prov.options.get("remat") or {}
        if "status" in remat:  # a searching remat planner: its own status, bound and gap
            rec.update(remat_status=remat["status"], remat_proven=remat.get("proven"),
                       remat_gap=None if remat.get("gap") is None else round(remat["gap"], 6))
        if "replay_cost" in remat:
            rec.update(recompute_cost=remat["replay_cost"], recompute_cost_unit=remat.get(
                "cost_unit"))
        if self.errors:
            rec["errors"] = list(self.errors[:5])
        return rec

    def __repr__(self) -> str:
        what = f"swap {self.provenance.swap} under {self.budget_bytes:,} B" if self.swapped \
            else "no swap"
        if self.recomputes:
            what += f", {len(self.recomputes)} ops recomputed ({self.provenance.remat})"
        return (f"TrainingPlan({self.graph.model}, batch {self.graph.batch}, order "
                f"{self.order.name}, offsets {self.provenance.offsets}, {what}: arena "
                f"{self.arena_bytes:,} B, lower bound {self.bounds.lower_bound_bytes:,} B, "
                f"{len(self.buffers)} buffers, {'valid' if self.valid else 'INVALID'})")

    # --- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_json(text: str, origin: str = "plan") -> TrainingPlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidPlanFile(f"{origin} is not JSON ({exc.msg} at line {exc.lineno}); "
                                  "write one with `trainplan plan ... --out plan.json`") from None
        except RecursionError:
            raise InvalidPlanFile(f"{origin} nests JSON too deeply to be a plan; write one with "
                                  "`trainplan plan ... --out plan.json`") from None
        return plan_from_dict(data, origin)

    def save(self, path: str) -> None:
        atomic_write_text(path, self.to_json() + "\n")

    @staticmethod
    def load(path: str) -> TrainingPlan:
        return TrainingPlan.from_json(read_text_file(path, "plan"), origin=path)


def plan_from_dict(data: dict, origin: str = "plan") -> TrainingPlan:
    """A TrainingPlan from its ``to_dict`` form; InvalidPlanFile names what is wrong."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise InvalidPlanFile(f"{origin}: not a trainplan plan of schema {SCHEMA} (found "
                              f"schema {clip(found)}); make it again with `trainplan plan ... "
                              "--out`")
    try:
        plan = typed(TrainingPlan, data, "plan")
    except MalformedField as exc:
        raise InvalidPlanFile(f"{origin}: a field is missing or malformed "
                              f"({clip(str(exc), 200)}); make the plan again with `trainplan "
                              "plan ... --out`") from None
    if plan.alignment < 1 or plan.order.n_eo < 1:
        raise InvalidPlanFile(f"{origin}: alignment and the number of EOs must be positive; "
                              "make the plan again with `trainplan plan ... --out`")
    dangling = _dangling_reference(plan)
    if dangling:
        raise InvalidPlanFile(f"{origin}: {dangling}; make the plan again with `trainplan plan "
                              "... --out`")
    return plan


def _dangling_reference(plan: TrainingPlan) -> str | None:
    """The first eviction or prefetch naming a buffer or piece the plan does not hold."""
    pieces = {b.id: len(b.pieces) for b in plan.buffers}
    for kind, moves in (("eviction", plan.evictions), ("prefetch", plan.prefetches)):
        for i, move in enumerate(moves):
            if move.buffer not in pieces:
                return f"{kind} {i} names buffer {clip(move.buffer)}, which the plan lacks"
            if not 0 <= move.piece < pieces[move.buffer]:
                return (f"{kind} {i} names piece {move.piece} of {clip(move.buffer)}, which has "
                        f"{pieces[move.buffer]}")
    return None

