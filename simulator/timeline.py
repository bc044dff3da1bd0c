"""A Timeline: one row per simulated event (op), the transfers, bytes per EO, and a summary.

``simulate_events`` runs the engine on plain steps and transfers and assembles the Timeline;
``trainplan.simulator.simulate.simulate`` derives those steps from a training graph and its
plan. Memory columns come from the caller, per EO: ``held`` (bytes of the arena the process
holds; pages, once touched, stay held) and ``resident`` (bytes of buffers in RAM per role or
layer, for stacked plots). The words follow docs/glossary.md. Plots and reports read only a
Timeline.

>>> from trainplan.simulator.device import load_device
>>> from trainplan.simulator.engine import Step
>>> tl = simulate_events([Step(0, flops=4e9), Step(1, flops=4e9)], [],
...                      load_device("raspberry-pi-4"), held=[100, 300],
...                      resident={"activation": [100, 200]})
>>> s = tl.summary
>>> s.iteration_seconds, s.arena_bytes, s.peak_resident_bytes, s.fits
(1.0, 300, 200, True)
>>> s
Summary(1 iteration of 2 ops on raspberry-pi-4: 1 s per iteration, 0 s stalled; arena 300 B, peak resident 200 B, peak live 200 B, fits)
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from trainplan.planner.resources import require_memory
from trainplan.simulator.device import DeviceProfile
from trainplan.simulator.engine import EngineRun, Step, Transfer, run_engine
from trainplan.simulator.errors import InvalidSchedule

RESIDENT = "resident:"  # prefix of the resident-bytes columns (resident:activation, ...)
TRANSFER_COLUMNS = ["iteration", "transfer", "tensor", "kind", "nbytes", "issue_eo",
                    "deadline_eo", "channel", "ready_s", "start_s", "end_s", "skipped"]


@dataclass(frozen=True)
class Summary:
    """Figures of a run of ``iterations`` iterations. ``iteration_seconds`` is one iteration's
    time (the compute stream's, averaged over the iterations); every ``total_*`` figure covers
    all ``iterations`` (``total_seconds``: until the last op or transfer ends). ``arena_bytes``
    is the most arena bytes held (the plan's arena), ``peak_resident_bytes`` the most bytes of
    buffers in RAM at once, ``peak_live_bytes`` the most bytes of live buffers at once (in RAM
    or in storage). ``out_of_ram`` says where held bytes first exceeded the device's available
    RAM (None when the run fits)."""

    model: str
    planner: str
    swap: str | None
    remat: str | None
    device: str
    order: str
    batch: int | None
    iterations: int
    n_eo: int
    ops: int
    iteration_seconds: float
    total_seconds: float
    total_compute_seconds: float
    total_recompute_seconds: float
    total_stall_seconds: float
    arena_bytes: int
    peak_resident_bytes: int
    peak_live_bytes: int
    ram_bytes: int
    available_bytes: int
    budget_bytes: int | None
    total_bytes_read: int
    total_bytes_written: int
    fits: bool
    within_budget: bool | None
    out_of_ram: dict | None

    def to_dict(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:
        its = f"{self.iterations} iteration{'s' if self.iterations > 1 else ''}"
        verdict = "fits" if self.fits else "DOES NOT FIT"
        return (f"Summary({its} of {self.ops} ops on {self.device}: "
                f"{self.iteration_seconds:.3g} s per iteration, {self.total_stall_seconds:.3g} s "
                f"stalled; arena {self.arena_bytes:,} B, peak resident "
                f"{self.peak_resident_bytes:,} B, peak live {self.peak_live_bytes:,} B, "
                f"{verdict})")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Summary:
        return Summary(**json.loads(text))


@dataclass(frozen=True)
class Timeline:
    """``events``: one row per op instance; ``transfers``: one row per transfer instance;
    ``by_eo``: held, live and resident bytes at every EO slot (empty EOs included)."""

    events: pd.DataFrame
    transfers: pd.DataFrame
    by_eo: pd.DataFrame
    summary: Summary

    def __repr__(self) -> str:
        return (f"Timeline({len(self.events)} events, {len(self.transfers)} transfers, "
                f"{len(self.by_eo)} EO rows; {self.summary!r})")

    def resident_columns(self) -> list[str]:
        return [c for c in self.events.columns if c.startswith(RESIDENT)]

    def to_json(self) -> str:
        frames = {k: json.loads(getattr(self, k).to_json(orient="split", index=False))
                  for k in ("events", "transfers", "by_eo")}
        return json.dumps({"summary": self.summary.to_dict(), **frames})

    @staticmethod
    def from_json(text: str) -> Timeline:
        data = json.loads(text)
        frames = {k: pd.read_json(io.StringIO(json.dumps(data[k])), orient="split")
                  for k in ("events", "transfers", "by_eo")}
        return Timeline(summary=Summary(**data["summary"]), **frames)


EVENT_COLUMNS = 14  # besides one per resident group (see _events)
BY_EO_COLUMNS = 4


def timeline_bytes(n_steps: int, n_transfers: int, n_eo: int, iterations: int,
                   groups: int) -> int:
    """About the bytes a Timeline of ``iterations`` takes while it is assembled: 8 per cell of
    its events, per-EO and transfer tables, each held about three times over (the engine's
    arrays, the columns, the frame)."""
    cells = (n_steps * (EVENT_COLUMNS + 2 * groups) + n_eo * (BY_EO_COLUMNS + groups)
             + n_transfers * len(TRANSFER_COLUMNS))
    return 3 * 8 * cells * iterations


def _require_memory(n_steps: int, n_transfers: int, n_eo: int, iterations: int,
                    groups: int) -> None:
    needed = timeline_bytes(n_steps, n_transfers, n_eo, iterations, groups)
    require_memory(needed, f"a timeline of {iterations:,} iterations ({n_steps * iterations:,} "
                   f"events of {EVENT_COLUMNS + 2 * groups} columns)",
                   "simulate fewer iterations (swap state settles after two or three)")


def _per_eo(values, n_eo: int) -> np.ndarray:
    if values is None:
        return np.zeros(n_eo, dtype=np.int64)
    if np.isscalar(values):
        return np.full(n_eo, int(values), dtype=np.int64)
    arr = np.asarray(values, dtype=np.int64)
    if arr.shape != (n_eo,):
        raise InvalidSchedule(f"per-EO memory values need {n_eo} entries, got {arr.shape}")
    return arr


def _memory_frames(run: EngineRun, held: np.ndarray, live: np.ndarray,
                   resident: dict[str, np.ndarray]):
    """Per-event and per-EO memory columns; after iteration 0 every touched page stays."""
    n, iters = run.n_eo, run.iterations
    held = np.concatenate([held] + [np.full(n, held.max(initial=0))] * (iters - 1))
    by_eo = pd.DataFrame({"iteration": np.repeat(np.arange(iters), n),
                          "eo": np.tile(np.arange(n), iters),
                          "held_bytes": held, "live_bytes": np.tile(live, iters)})
    by_eo["g_eo"] = by_eo["iteration"] * n + by_eo["eo"]
    for key, curve in resident.items():
        by_eo[RESIDENT + key] = np.tile(curve, iters)
    eos = np.fromiter((s.eo for s in run.steps), np.int64, len(run.steps))
    rows = np.concatenate([eos + it * n for it in range(iters)]) if len(eos) else eos
    return by_eo, by_eo.iloc[rows].reset_index(drop=True)


def _events(run: EngineRun, memory: pd.DataFrame, transfers: pd.DataFrame) -> pd.DataFrame:
    steps, iters = run.steps, run.iterations
    ev = pd.DataFrame({
        "iteration": np.repeat(np.arange(iters), len(steps)),
        "eo": np.tile([s.eo for s in steps], iters),
        "step": np.tile([s.kind for s in steps], iters),
        "layer": np.tile([s.layer for s in steps], iters),
        "op": np.tile([s.name for s in steps], iters),
        "op_class": np.tile([s.op_class for s in steps], iters),
        "flops": np.tile([float(s.flops) for s in steps], iters),
        "bytes_touched": np.tile([int(s.bytes_touched) for s in steps], iters),
        "recompute": np.tile([s.recompute for s in steps], iters),
        "start_s": run.start, "end_s": run.end, "stall_s": run.stall,
    })
    ev["held_bytes"] = memory["held_bytes"].to_numpy()
    ev["live_bytes"] = memory["live_bytes"].to_numpy()
    for kind, col in (("read", "bytes_read"), ("write", "bytes_written")):
        counts = np.zeros(len(ev), dtype=np.int64)
        sel = transfers[transfers["kind"] == kind]
        if len(ev) and len(sel):
            # a transfer counts in the event during which it starts (stall included)
            at = np.searchsorted(run.start - run.stall, sel["start_s"].to_numpy(), "right") - 1
            np.add.at(counts, at.clip(0), sel["nbytes"].to_numpy(dtype=np.int64))
        ev[col] = counts
    for c in memory.columns:
        if c.startswith(RESIDENT):
            ev[c] = memory[c].to_numpy()
    return ev


def _out_of_ram(by_eo: pd.DataFrame, events: pd.DataFrame, available: int) -> dict | None:
    over = by_eo.index[by_eo["held_bytes"].to_numpy() > available]
    if not len(over):
        return None
    row = by_eo.loc[over[0]]
    it, eo = int(row["iteration"]), int(row["eo"])
    hit = events[(events["iteration"] == it) & (events["eo"] >= eo)].head(1)
    return {"iteration": it, "eo": eo,
            "layer": str(hit["layer"].iloc[0]) if len(hit) else "",
            "step": str(hit["step"].iloc[0]) if len(hit) else "",
            "held_bytes": int(row["held_bytes"]), "available_bytes": int(available),
            "short_bytes": int(row["held_bytes"]) - int(available)}


def simulate_events(steps: Sequence[Step], transfers: Sequence[Transfer], device: DeviceProfile,
                    *, iterations: int = 1, n_eo: int | None = None, held=None, live=None,
                    resident: Mapping[str, Sequence[int]] | None = None,
                    budget_bytes: int | None = None, meta: Mapping | None = None,
                    op_seconds: Mapping[str, float] | None = None) -> Timeline:
    """Run the engine and assemble the Timeline; ``held`` and ``live`` (a number or one per
    EO; live defaults to the resident bytes) and ``resident`` (per group, one per EO) as in the
    module docstring; ``meta`` may name the model, planner (offsets), swap (planner), order and batch;
    ``op_seconds`` as ``run_engine`` takes it."""
    _require_memory(len(steps), len(transfers), n_eo or 0, iterations, len(resident or {}))
    run = run_engine(steps, transfers, device, n_eo=n_eo, iterations=iterations,
                     op_seconds=op_seconds)
    held = _per_eo(held, run.n_eo)
    resident = {k: _per_eo(v, run.n_eo) for k, v in (resident or {}).items()}
    total = sum(resident.values()) if resident else np.zeros(run.n_eo, dtype=np.int64)
    live = total if live is None else _per_eo(live, run.n_eo)
    by_eo, memory = _memory_frames(run, held, live, resident)
    transfers_df = pd.DataFrame(run.transfers, columns=TRANSFER_COLUMNS)
    events = _events(run, memory, transfers_df)
    meta = dict(meta or {})
    peak = int(by_eo["held_bytes"].max()) if len(by_eo) else 0
    peak_resident = int(np.max(total, initial=0))
    ends = [float(run.end[-1]) if len(run.end) else 0.0]
    ends += [float(transfers_df["end_s"].max())] if len(transfers_df) else []
    summary = Summary(
        model=str(meta.get("model", "")), planner=str(meta.get("planner", "")),
        swap=meta.get("swap"), remat=meta.get("remat"),
        device=device.name, order=str(meta.get("order", "")), batch=meta.get("batch"),
        iterations=iterations, n_eo=run.n_eo, ops=len(run.steps),
        iteration_seconds=ends[0] / iterations, total_seconds=max(ends),
        total_compute_seconds=float((run.end - run.start).sum()),
        total_recompute_seconds=float(
            (run.end - run.start)[events["recompute"].to_numpy()].sum()),
        total_stall_seconds=float(run.stall.sum()),
        arena_bytes=peak, peak_resident_bytes=peak_resident,
        peak_live_bytes=int(np.max(live, initial=0)),
        ram_bytes=device.ram_bytes, available_bytes=device.available_bytes,
        budget_bytes=budget_bytes, total_bytes_read=int(events["bytes_read"].sum()),
        total_bytes_written=int(events["bytes_written"].sum()),
        fits=peak <= device.available_bytes,
        within_budget=None if budget_bytes is None else peak <= budget_bytes,
        out_of_ram=_out_of_ram(by_eo, events, device.available_bytes),
    )
    return Timeline(events, transfers_df, by_eo, summary)
