"""Timelines as Chrome trace-event JSON, for Perfetto (ui.perfetto.dev) and chrome://tracing.

A simulated Timeline becomes one process: a ``compute`` track with one complete slice (``ph``
``X``) per op (category: its step) and one per stall (category ``stall``, the wait before the
op), a storage track per channel (``storage``, or ``read`` and ``write``) with one slice per
transfer that moves bytes (category ``read`` or ``write``), and counters (``ph`` ``C``) sampled
at every op: ``memory`` (resident, live and held bytes: docs/glossary.md) and ``resident by
group`` (resident bytes per role or layer). A measured timeline (the runtime's EO rows,
``trainplan.runtime.measure``) becomes another process: its EO slices and stalls on a
``compute`` track and counters of the process's RSS and of the bytes the swap file moved
during each EO (the runtime does not time its transfers one by one); given the plan it ran,
also the plan's resident, live and held bytes at each EO. Times are microseconds from the
start of the first iteration.

>>> from trainplan.simulator.device import load_device
>>> from trainplan.simulator.engine import Step
>>> from trainplan.simulator.timeline import simulate_events
>>> tl = simulate_events([Step(0, flops=4e9), Step(1, flops=4e9)], [],
...                      load_device("raspberry-pi-4"), held=[100, 300],
...                      resident={"activation": [100, 200]})
>>> trace = timeline_trace(tl)
>>> [e["ph"] for e in trace["traceEvents"] if e["ph"] != "M"]
['X', 'C', 'C', 'X', 'C', 'C']
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from trainplan.planner.fileio import atomic_write_text
from trainplan.planner.training_plan import TrainingPlan
from trainplan.simulator.timeline import RESIDENT, Timeline

US = 1e6  # trace-event times are microseconds
COMPUTE_TID = 1


def _meta(pid: int, process: str, threads: dict[int, str]) -> list[dict]:
    events = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
               "args": {"name": process}},
              {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
               "args": {"sort_index": pid}}]
    for tid, name in threads.items():
        events += [{"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                    "args": {"name": name}},
                   {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                    "args": {"sort_index": tid}}]
    return events


def _slice(pid: int, tid: int, name: str, cat: str, start_s: float, end_s: float,
           args: dict) -> dict:
    return {"ph": "X", "pid": pid, "tid": tid, "name": name, "cat": cat,
            "ts": round(start_s * US, 3), "dur": round(max(0.0, end_s - start_s) * US, 3),
            "args": args}


def _counter(pid: int, name: str, at_s: float, values: dict) -> dict:
    return {"ph": "C", "pid": pid, "tid": 0, "name": name, "ts": round(at_s * US, 3),
            "args": {k: int(v) for k, v in values.items()}}


def _ops(pid: int, ev: pd.DataFrame, extra: tuple[str, ...]) -> list[dict]:
    """An op (or EO) slice and its stall slice per row, and per ``(name, columns)`` of
    ``extra`` a counter of those columns sampled when the row becomes ready."""
    out = []
    for row in ev.itertuples(index=False):
        ready = row.start_s - row.stall_s
        if row.stall_s > 0:
            out.append(_slice(pid, COMPUTE_TID, f"stall before {row.op}", "stall", ready,
                              row.start_s, {"eo": int(row.eo), "iteration": int(row.iteration)}))
        args = {"eo": int(row.eo), "iteration": int(row.iteration), "layer": row.layer}
        for key in ("op_class", "flops", "bytes_touched", "cpu_s"):
            if hasattr(row, key):
                value = getattr(row, key)
                args[key] = value.item() if hasattr(value, "item") else value
        out.append(_slice(pid, COMPUTE_TID, str(row.op), str(row.step), row.start_s,
                          row.end_s, args))
        for name, columns in extra:
            out.append(_counter(pid, name, ready, {c: getattr(row, c) for c in columns}))
    return out


def timeline_events(tl: Timeline, pid: int = 1, label: str | None = None) -> list[dict]:
    """The trace events of a simulated Timeline, as process ``pid``."""
    s = tl.summary
    ev = tl.events.copy()
    groups = {c: c[len(RESIDENT):] for c in tl.resident_columns()}
    ev["resident_bytes"] = ev[list(groups)].sum(axis=1) if groups else 0
    ev = ev.rename(columns=groups)
    moved = tl.transfers[~tl.transfers["skipped"].astype(bool)] if len(tl.transfers) \
        else tl.transfers
    channels = sorted(set(moved["channel"])) if len(moved) else []
    tracks = {COMPUTE_TID: "compute", **{COMPUTE_TID + 1 + i: f"storage {c}"
                                         for i, c in enumerate(channels)}}
    tid_of = {c: COMPUTE_TID + 1 + i for i, c in enumerate(channels)}
    swap = f" + {s.swap} swap" if s.swap else ""
    name = label or f"simulated: {s.model} · {s.planner}{swap} · {s.device}"
    counters = [("memory", ("resident_bytes", "live_bytes", "held_bytes"))]
    if groups:
        counters.append(("resident by group", tuple(groups.values())))
    out = _meta(pid, name, tracks) + _ops(pid, ev, tuple(counters))
    for t in moved.itertuples(index=False):
        out.append(_slice(pid, tid_of[t.channel], str(t.tensor), str(t.kind), t.start_s,
                          t.end_s, {"bytes": int(t.nbytes), "issue_eo": int(t.issue_eo),
                                    "iteration": int(t.iteration),
                                    "deadline_eo": None if pd.isna(t.deadline_eo)
                                    else int(t.deadline_eo)}))
    return out


def measured_events(events: pd.DataFrame, plan: TrainingPlan | None = None, pid: int = 2,
                    label: str = "measured: the numpy runtime") -> list[dict]:
    """The trace events of a measured timeline (``Measurement.events``), as process ``pid``;
    with the ``plan`` it ran, also the plan's resident, live and held bytes at each EO."""
    ev = events.copy()
    counters = [("process", ("rss_bytes",)), ("swap file", ("bytes_read", "bytes_written"))]
    if plan is not None:
        from trainplan.simulator.simulate import held_curve

        eo = ev["eo"].to_numpy()
        ev["resident_bytes"] = plan.resident_curve()[eo]
        ev["live_bytes"] = plan.live_curve()[eo]
        ev["held_bytes"] = np.asarray(held_curve(plan))[eo]
        counters.insert(0, ("memory", ("resident_bytes", "live_bytes", "held_bytes")))
    return _meta(pid, label, {COMPUTE_TID: "compute"}) + _ops(pid, ev, tuple(counters))


def trace_document(events: list[dict], **other) -> dict:
    """A trace-event JSON document (``traceEvents`` plus ``otherData``)."""
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": other}


def timeline_trace(tl: Timeline) -> dict:
    """A simulated Timeline as a trace-event document."""
    s = tl.summary
    return trace_document(timeline_events(tl), model=s.model, planner=s.planner, swap=s.swap,
                          device=s.device, iterations=s.iterations)


def write_trace(document: dict, path: str) -> None:
    """Write a trace-event document atomically (open it in ui.perfetto.dev)."""
    atomic_write_text(path, json.dumps(document, separators=(",", ":")) + "\n")
