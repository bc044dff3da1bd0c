"""A swapped iteration, predicted against measured, on one time axis with its storage track.

Four tracks over the steady iteration (experiments/swap_lineup.py): compute predicted and
measured (ops as bars, stalls in red), storage predicted and measured (reads and writes, one
request at a time on the one channel). The measured tracks are one recorded iteration, the one
of median wall time, so its ops and transfers are the same iteration's. Under the tracks: the
stall per EO, predicted and measured (median over the recorded iterations). The title gives
seconds, stalls and bytes per iteration on both sides. Drawn from a Timeline and the measured
DataFrames only.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from trainplan.experiments.plots import finish
from trainplan.experiments.swap_lineup import (
    eo_lined_up,
    simulated_iteration,
    steady_iteration,
)
from trainplan.runtime.measure import bytes_per_iteration
from trainplan.simulator.timeline import Timeline

COMPUTE, STALL, READ, WRITE = "#4c72b0", "#c44e52", "#55a868", "#dd8452"
TRACKS = ("compute: predicted", "compute: measured", "storage: predicted", "storage: measured")


def _median_iteration(events: pd.DataFrame) -> int:
    ready = events["start_s"] - events["stall_s"]
    span = events.groupby("iteration")["end_s"].max() - ready.groupby(events["iteration"]).min()
    return int(span.sort_values().index[(len(span) - 1) // 2])


def _bars(ax, y: float, starts, ends, color, k: float, height: float = 0.7) -> None:
    spans = [(s * k, max((e - s) * k, 1e-9)) for s, e in zip(starts, ends, strict=True)]
    if spans:
        ax.broken_barh(spans, (y - height / 2, height), facecolors=color, linewidth=0)


def _tracks(ax, predicted: Timeline, events: pd.DataFrame, transfers: pd.DataFrame,
            k: float) -> None:
    it = steady_iteration(predicted)
    ev = predicted.events[predicted.events["iteration"] == it]
    origin = float((ev["start_s"] - ev["stall_s"]).min())
    _bars(ax, 3, ev["start_s"] - origin, ev["end_s"] - origin, COMPUTE, k)
    _bars(ax, 3, ev["start_s"] - ev["stall_s"] - origin, ev["start_s"] - origin, STALL, k)
    shown = _median_iteration(events)
    mev = events[events["iteration"] == shown]
    morigin = float((mev["start_s"] - mev["stall_s"]).min())
    _bars(ax, 2, mev["start_s"] - morigin, mev["end_s"] - morigin, COMPUTE, k)
    _bars(ax, 2, mev["start_s"] - mev["stall_s"] - morigin, mev["start_s"] - morigin, STALL, k)
    tr = predicted.transfers
    tr = tr[(tr["iteration"] == it) & ~tr["skipped"].astype(bool)]
    mtr = transfers[transfers["iteration"] == shown]
    for kind, color in (("read", READ), ("write", WRITE)):
        sel = tr[tr["kind"] == kind]
        _bars(ax, 1, sel["start_s"] - origin, sel["end_s"] - origin, color, k)
        sel = mtr[mtr["kind"] == kind]
        _bars(ax, 0, sel["start_s"] - morigin, sel["end_s"] - morigin, color, k)
    ax.set_yticks(range(4), TRACKS[::-1])
    ax.set_ylim(-0.6, 3.6)
    ax.set_xlabel("time from the iteration's start (ms)")
    ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (COMPUTE, STALL, READ, WRITE)]
    ax.legend(handles, ["op", "stall", "read", "write"], fontsize=8, ncol=4, loc="lower left",
              bbox_to_anchor=(0.0, 1.0), frameon=False)


def _stalls(ax, rows: pd.DataFrame, k: float) -> None:
    x = rows["eo"].to_numpy()
    ax.bar(x - 0.2, rows["predicted_stall_s"].fillna(0) * k, 0.4, color=COMPUTE,
           label="predicted")
    ax.bar(x + 0.2, rows["measured_stall_s"].fillna(0) * k, 0.4, color="#111111",
           label="measured (median)")
    ax.set_xlabel("execution order (EO)")
    ax.set_ylabel("stall (ms)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")


def plot_swap_overlay(predicted: Timeline, events: pd.DataFrame, transfers: pd.DataFrame,
                      path: str | None = None, *, measured_seconds: float | None = None,
                      note: str = "", title: str | None = None):
    """The storage-track overlay of a swapped run (module docstring); written to ``path``
    when given; returns the Figure."""
    k = 1e3
    sim = simulated_iteration(predicted)
    iterations = int(events["iteration"].max()) + 1 if len(events) else 0
    moved = bytes_per_iteration(transfers, iterations).median()
    walls = (events.groupby("iteration")["end_s"].max()
             - (events["start_s"] - events["stall_s"]).groupby(events["iteration"]).min())
    meas = measured_seconds if measured_seconds is not None else float(np.median(walls))
    stall = float(events.groupby("iteration")["stall_s"].sum().median())
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 7.2), height_ratios=[1.4, 1])
    _tracks(top, predicted, events, transfers, k)
    _stalls(bottom, eo_lined_up(predicted, events), k)
    s = predicted.summary
    batch = f", batch {s.batch}" if s.batch else ""
    heading = (
        (title or f"{s.model}{batch}, swap {s.swap} under {s.budget_bytes or 0:,} B · "
         f"simulator on {s.device} against the numpy runtime swapping through to storage")
        + f"\nper iteration: predicted {sim['seconds'] * k:.4g} ms, measured {meas * k:.4g} ms "
        f"(error {100 * (sim['seconds'] / meas - 1):+.1f}%); stall predicted "
        f"{sim['stall_s'] * k:.4g} ms, measured {stall * k:.4g} ms; read "
        f"{sim['bytes_read']:,} / {int(moved['bytes_read']):,} B, written "
        f"{sim['bytes_written']:,} / {int(moved['bytes_written']):,} B (predicted / measured)"
        + (f"\n{note}" if note else ""))
    fig.suptitle(heading, fontsize=10)
    fig.tight_layout()
    return finish(fig, path, True)
