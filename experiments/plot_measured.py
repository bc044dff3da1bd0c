"""Predicted against measured: one figure overlaying a simulated iteration and a measured one.

Drawn from a Timeline (the prediction) and a DataFrame of measured events with the simulator's
columns (``runtime.measure``; one iteration, seconds from its start). Left, per EO: the time of
each op, predicted (bars, coloured by step) and measured (dots), on a log scale, and under it
the cumulative time over the iteration. Right: seconds by op class, predicted against measured.
The title gives both totals and their ratio.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.plots import STEP_COLORS, save_figure
from simulator.timeline import Timeline

PREDICTED, MEASURED = "#4c72b0", "#111111"


def _unit(seconds: float) -> tuple[str, float]:
    """Milliseconds below 2 s, seconds above."""
    return ("ms", 1e3) if seconds < 2 else ("s", 1.0)


def lined_up(predicted: Timeline, measured: pd.DataFrame) -> pd.DataFrame:
    """One row per EO with ops: step, layer, op class, predicted and measured seconds and
    their cumulative ends (measured stalls count in, as the wall clock sees them)."""
    ev = predicted.events[predicted.events["iteration"] == 0]
    pred = ev.groupby("eo").agg(step=("step", "first"), layer=("layer", "first"),
                                op_class=("op_class", "first"),
                                predicted_s=("end_s", "max"), start=("start_s", "min"),
                                stall=("stall_s", "sum"))
    pred["predicted_s"] = pred["predicted_s"] - pred["start"] + pred["stall"]
    meas = measured.assign(measured_s=measured["end_s"] - measured["start_s"]
                           + measured["stall_s"]).groupby("eo")["measured_s"].sum()
    out = pred.join(meas, how="outer").drop(columns=["start", "stall"]).fillna(
        {"predicted_s": 0.0, "measured_s": 0.0})
    out["predicted_end_s"] = out["predicted_s"].cumsum()
    out["measured_end_s"] = out["measured_s"].cumsum()
    return out.reset_index()


def _per_eo(ax, rows: pd.DataFrame) -> None:
    ms = 1e3
    for step, color in STEP_COLORS.items():
        sel = rows[rows["step"] == step]
        if len(sel):
            ax.bar(sel["eo"], sel["predicted_s"] * ms, width=0.9, color=color, alpha=0.55,
                   label=f"predicted: {step}")
    ax.plot(rows["eo"], rows["measured_s"] * ms, "o", ms=2.6, color=MEASURED,
            label="measured (median iteration)")
    ax.set_yscale("log")
    ax.set_ylabel("time per EO (ms, log scale)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=3, loc="upper right", framealpha=0.9)


def _cumulative(ax, rows: pd.DataFrame, unit: str, k: float) -> None:
    ax.step(rows["eo"], rows["predicted_end_s"] * k, where="post", color=PREDICTED, lw=1.6,
            label="predicted")
    ax.step(rows["eo"], rows["measured_end_s"] * k, where="post", color=MEASURED, lw=1.6,
            label="measured")
    ax.set_xlabel("execution order (EO)")
    ax.set_ylabel(f"cumulative time ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")


def _by_class(ax, rows: pd.DataFrame, unit: str, k: float) -> None:
    totals = rows.groupby("op_class")[["predicted_s", "measured_s"]].sum().sort_values(
        "measured_s")
    y = np.arange(len(totals))
    ax.barh(y + 0.2, totals["predicted_s"] * k, 0.4, color=PREDICTED, label="predicted")
    ax.barh(y - 0.2, totals["measured_s"] * k, 0.4, color=MEASURED, label="measured")
    ax.set_yticks(y, totals.index)
    ax.set_xlabel(f"time per iteration ({unit})")
    ax.set_title("by op class", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def plot_overlay(predicted: Timeline, measured: pd.DataFrame, path: str, *,
                 measured_seconds: float | None = None, note: str = "",
                 title: str | None = None) -> pd.DataFrame:
    """Write the overlay of one predicted and one measured iteration to ``path``
    (.png/.svg/.pdf); ``measured_seconds`` (e.g. the median over iterations) heads the title,
    else the measured events' span. Returns the lined-up rows."""
    s = predicted.summary
    rows = lined_up(predicted, measured)
    meas = measured_seconds if measured_seconds is not None else float(measured["end_s"].max())
    unit, k = _unit(max(s.iteration_seconds, meas))
    fig = plt.figure(figsize=(13, 7.2))
    grid = fig.add_gridspec(2, 2, width_ratios=[3.2, 1], height_ratios=[1.3, 1],
                            hspace=0.08, wspace=0.22)
    ax = fig.add_subplot(grid[0, 0])
    cx = fig.add_subplot(grid[1, 0], sharex=ax)
    _per_eo(ax, rows)
    ax.tick_params(labelbottom=False)
    _cumulative(cx, rows, unit, k)
    _by_class(fig.add_subplot(grid[:, 1]), rows, unit, k)
    ratio = s.iteration_seconds / meas if meas else float("nan")
    batch = f", batch {s.batch}" if s.batch else ""
    fig.suptitle(title or f"{s.model}{batch} · simulator on {s.device} against the numpy runtime",
                 fontsize=12, y=0.985)
    ax.set_title(f"per iteration: predicted {s.iteration_seconds * k:,.3g} {unit}, measured "
                 f"{meas * k:,.3g} {unit} · predicted / measured = {ratio:.3f} "
                 f"(error {100 * (ratio - 1):+.1f}%)" + (f" · {note}" if note else ""),
                 fontsize=9)
    save_figure(fig, path)
    return rows
