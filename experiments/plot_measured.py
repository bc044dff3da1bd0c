"""Predicted against measured: one figure overlaying a simulated iteration and a measured one.

Drawn from a Timeline (the prediction) and a DataFrame of measured events with the simulator's
columns and an ``iteration`` column (``trainplan.runtime.measure``: every recorded iteration). Left, per
EO: the time of each op, predicted (bars, coloured by step) and measured (dots: the median over
the recorded iterations; whiskers: their fastest and slowest), on a log scale; under it the
cumulative time over the iteration, predicted, measured (per-EO medians) and the measured
iteration of median wall time (preemptions by other processes show as jumps). Right: seconds
by op class. The title gives the totals and the ratio predicted / measured.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from trainplan.experiments.plots import STEP_COLORS, axes_pair, finish
from trainplan.simulator.timeline import Timeline

PREDICTED, MEASURED = "#4c72b0", "#111111"


def _unit(seconds: float) -> tuple[str, float]:
    """Milliseconds below 1 s, seconds above."""
    return ("ms", 1e3) if seconds < 1 else ("s", 1.0)


def lined_up(predicted: Timeline, measured: pd.DataFrame) -> pd.DataFrame:
    """One row per EO with ops: step, layer, op class, predicted seconds, measured seconds
    (median, min, max over iterations; stalls count in, as the wall clock sees them) and the
    cumulative ends of the predicted and median times; the predicted iteration is the last
    simulated one (a swapping plan's steady state)."""
    ev = predicted.events[predicted.events["iteration"] == predicted.summary.iterations - 1]
    pred = ev.groupby("eo").agg(step=("step", "first"), layer=("layer", "first"),
                                op_class=("op_class", "first"),
                                predicted_s=("end_s", "max"), start=("start_s", "min"),
                                stall=("stall_s", "sum"))
    pred["predicted_s"] = pred["predicted_s"] - pred["start"] + pred["stall"]
    took = measured["end_s"] - measured["start_s"] + measured["stall_s"]
    per_it = took.groupby([measured["iteration"], measured["eo"]]).sum().groupby("eo")
    meas = pd.DataFrame({"measured_s": per_it.median(), "measured_min_s": per_it.min(),
                         "measured_max_s": per_it.max()})
    if "cpu_s" in measured:
        cpu = measured.groupby(["iteration", "eo"])["cpu_s"].sum().groupby("eo").median()
        meas["measured_cpu_s"] = cpu
    out = pred.join(meas, how="outer").drop(columns=["start", "stall"]).fillna(0.0)
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
    ax.vlines(rows["eo"], rows["measured_min_s"] * ms, rows["measured_max_s"] * ms,
              color="0.55", lw=0.8, label="measured: fastest to slowest")
    ax.plot(rows["eo"], rows["measured_s"] * ms, "o", ms=2.6, color=MEASURED,
            label="measured: median")
    ax.set_yscale("log")
    ax.set_ylabel("time per EO (ms, log scale)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=3, loc="lower left", bbox_to_anchor=(0.0, 1.01),
              frameon=False, handlelength=1.2, columnspacing=1.2)


def _cumulative(ax, rows: pd.DataFrame, typical: pd.DataFrame, unit: str, k: float) -> None:
    ax.step(rows["eo"], rows["predicted_end_s"] * k, where="post", color=PREDICTED, lw=1.6,
            label="predicted")
    ax.step(rows["eo"], rows["measured_end_s"] * k, where="post", color=MEASURED, lw=1.6,
            label="measured: per-EO medians")
    ax.step(typical["eo"], typical["end_s"] * k, where="post", color="0.55", lw=1.0,
            label="measured: the iteration of median wall time")
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


def median_wall_iteration(measured: pd.DataFrame) -> pd.DataFrame:
    """The measured iteration whose last EO ends at the median time, times from its start."""
    ready = measured["start_s"] - measured["stall_s"]
    first = ready.groupby(measured["iteration"]).min()
    span = measured.groupby("iteration")["end_s"].max() - first
    it = span.sort_values().index[(len(span) - 1) // 2]
    rows = measured[measured["iteration"] == it]
    return rows.assign(end_s=rows["end_s"] - first[it])


def plot_overlay(predicted: Timeline, measured: pd.DataFrame, path: str | None = None, *,
                 measured_seconds: float | None = None, note: str = "",
                 title: str | None = None, ax=None, transfers: pd.DataFrame | None = None):
    """The overlay of a predicted iteration and the measured ones; ``measured_seconds`` (the
    median wall time per iteration) heads the title, else the sum of the per-EO medians.
    ``ax``: one Axes (time per EO only), two (and the cumulative time) or three (and by op
    class); default a new figure with all three. Written to ``path`` (.png/.svg/.pdf) when
    given; returns the Figure (``lined_up`` gives the rows it draws). With the measured
    ``transfers`` of a swapped run (and no ``ax``): the storage-track overlay instead
    (experiments/plot_swap.py)."""
    if transfers is not None and len(transfers) and ax is None:
        from trainplan.experiments.plot_swap import plot_swap_overlay

        return plot_swap_overlay(predicted, measured, transfers, path,
                                 measured_seconds=measured_seconds, note=note, title=title)
    s = predicted.summary
    rows = lined_up(predicted, measured)
    meas = measured_seconds if measured_seconds is not None else float(rows["measured_s"].sum())
    unit, k = _unit(max(s.iteration_seconds, meas))
    axes, created = axes_pair(ax, 3)
    if created:
        fig = plt.figure(figsize=(13, 7.2))
        grid = fig.add_gridspec(2, 2, width_ratios=[3.2, 1], height_ratios=[1.3, 1],
                                hspace=0.08, wspace=0.3, top=0.83)
        top = fig.add_subplot(grid[0, 0])
        axes = [top, fig.add_subplot(grid[1, 0], sharex=top), fig.add_subplot(grid[:, 1])]
    fig = axes[0].figure
    _per_eo(axes[0], rows)
    if len(axes) > 1:
        axes[0].tick_params(labelbottom=False)
        _cumulative(axes[1], rows, median_wall_iteration(measured), unit, k)
    else:
        axes[0].set_xlabel("execution order (EO)")
    if len(axes) > 2:
        _by_class(axes[2], rows, unit, k)
    predicted_s = float(rows["predicted_s"].sum())
    ratio = predicted_s / meas if meas else float("nan")
    batch = f", batch {s.batch}" if s.batch else ""
    medians = float(rows["measured_s"].sum())
    cpu = ""
    if "measured_cpu_s" in rows:
        c = float(rows["measured_cpu_s"].sum())
        cpu = f", CPU {c * k:.3g} {unit} (error {100 * (predicted_s / c - 1):+.1f}%)"
    heading = (
        (title or f"{s.model}{batch} · simulator on {s.device} against the numpy runtime")
        + f"\nper iteration: predicted {predicted_s * k:.3g} {unit}, measured "
        f"{meas * k:.3g} {unit} (median wall time): predicted / measured = {ratio:.3f}, "
        f"error {100 * (ratio - 1):+.1f}%\nsums of the per-EO medians: wall {medians * k:.3g} "
        f"{unit} (error {100 * (predicted_s / medians - 1):+.1f}%){cpu}"
        + (f"\n{note}" if note else ""))
    if created:
        fig.suptitle(heading, fontsize=10, y=1.01)
    return finish(fig, path, created)
