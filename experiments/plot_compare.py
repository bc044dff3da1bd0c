"""Planners side by side: bytes in use over EO per planner against the lower bound.

``planner_curves`` turns TrainingPlans into one DataFrame (one row per model, planner and EO);
``plot_compare`` draws only from that DataFrame: per model, each planner's footprint over EO
(the highest arena byte in use at that EO, whose maximum is the arena) over
the live-bytes curve (whose maximum is the lower bound), and a bar per planner of arena over
lower bound. Planners whose curves are identical share one line (and one legend entry), so the
planners that reach the bound do not hide each other.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd

from trainplan.experiments.plots import _COMMAS, MIB, axes_pair, finish
from trainplan.planner.errors import TrainplanError
from trainplan.planner.training_plan import TrainingPlan


def planner_curves(pairs: Iterable[tuple[nx.DiGraph, TrainingPlan]]) -> pd.DataFrame:
    """Rows (model, planner, eo, in_use_bytes, live_bytes, arena_bytes, lower_bound_bytes):
    ``in_use_bytes`` is the highest byte of the arena in use at each EO."""
    frames = []
    for _, plan in pairs:
        top = np.zeros(plan.n_eo + 1, dtype=np.int64)
        for b in plan.buffers:
            for p in b.pieces:
                top[p.start:p.end] = np.maximum(top[p.start:p.end], p.offset + b.nbytes)
        frames.append(pd.DataFrame({
            "model": plan.graph.model, "planner": plan.provenance.offsets,
            "eo": np.arange(plan.n_eo), "in_use_bytes": top[:plan.n_eo],
            "live_bytes": plan.live_curve(), "arena_bytes": plan.arena_bytes,
            "lower_bound_bytes": plan.bounds.lower_bound_bytes}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def same_curves(rows: pd.DataFrame) -> list[tuple[list[str], np.ndarray]]:
    """The distinct in-use curves of one model's rows, each with the planners drawing it."""
    groups: dict[bytes, tuple[list[str], np.ndarray]] = {}
    for planner, sel in rows.groupby("planner", sort=False):
        y = sel["in_use_bytes"].to_numpy()
        groups.setdefault(y.tobytes(), ([], y))[0].append(str(planner))
    return list(groups.values())


def _curves(ax, rows: pd.DataFrame, colors: dict) -> None:
    first = rows[rows["planner"] == rows["planner"].iloc[0]]
    eo = np.append(first["eo"].to_numpy(), first["eo"].iloc[-1] + 1)
    live = first["live_bytes"].to_numpy() / MIB
    ax.fill_between(eo, np.append(live, live[-1]), step="post", color="0.82",
                    label="live bytes (any plan needs them)")
    bound = first["lower_bound_bytes"].iloc[0] / MIB
    ax.axhline(bound, color="black", ls=(0, (4, 3)), lw=1.6, zorder=5,
               label=f"lower bound {bound:,.1f} MiB")
    for planners, y in same_curves(rows):
        y = y / MIB
        ax.step(eo, np.append(y, y[-1]), where="post", lw=1.3, color=colors[planners[0]],
                alpha=0.9, label=f"{' = '.join(planners)}: {y.max():,.1f} MiB")
    ax.set_xlabel("execution order (EO)")
    ax.set_ylabel("bytes in use (MiB)")
    ax.set_ylim(0, rows["in_use_bytes"].max() / MIB * 1.12)
    ax.set_xlim(0, eo[-1])
    ax.yaxis.set_major_formatter(_COMMAS)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4,
              frameon=False)
    ax.grid(axis="y", alpha=0.3)


def _bars(ax, rows: pd.DataFrame, colors: dict) -> None:
    per = rows.groupby("planner", sort=False)[["arena_bytes", "lower_bound_bytes"]].first()
    ratio = per["arena_bytes"] / per["lower_bound_bytes"]
    ypos = np.arange(len(per))[::-1]
    ax.barh(ypos, per["arena_bytes"] / MIB, color=[colors[p] for p in per.index])
    ax.axvline(per["lower_bound_bytes"].iloc[0] / MIB, color="black", ls="--", lw=1.2)
    for y, (arena, r) in zip(ypos, zip(per["arena_bytes"] / MIB, ratio, strict=True),
                             strict=True):
        ax.text(arena, y, f" {r:.3f}×", va="center", fontsize=8)
    ax.set_yticks(ypos, list(per.index), fontsize=8)
    ax.set_xlabel("arena (MiB); label: arena / lower bound")
    ax.set_xlim(0, (per["arena_bytes"] / MIB).max() * 1.25)
    ax.xaxis.set_major_formatter(_COMMAS)


def plot_compare(frame: pd.DataFrame, path: str | None = None, *, title: str | None = None,
                 ax=None):
    """One row per model: footprint over EO per planner (left), arena per planner (right).
    ``ax``: for a frame of one model, one Axes (the curves only) or two (curves, bars);
    default a new figure. Written to ``path`` when given; returns the Figure."""
    models = list(dict.fromkeys(frame["model"]))
    planners = list(dict.fromkeys(frame["planner"]))
    palette = plt.get_cmap("tab10").colors
    colors = {p: palette[i % len(palette)] for i, p in enumerate(planners)}
    given, created = axes_pair(ax)
    if created:
        fig, axes = plt.subplots(len(models), 2, figsize=(13, 5 * len(models)), squeeze=False,
                                 gridspec_kw={"width_ratios": [3, 1.2], "wspace": 0.28,
                                              "hspace": 0.62})
    elif len(models) != 1:
        raise TrainplanError(f"ax: draws one model; the frame holds {len(models)} "
                             f"({', '.join(models)}); select one or leave ax out")
    else:
        fig, axes = given[0].figure, [given]
    for row, model in zip(axes, models, strict=True):
        rows = frame[frame["model"] == model]
        _curves(row[0], rows, colors)
        row[0].set_title(f"{model}: highest byte in use at each EO, per planner", fontsize=10)
        if len(row) > 1:
            _bars(row[1], rows, colors)
            row[1].set_title(f"{model}: arena per planner", fontsize=10)
    if created:
        fig.suptitle(title or f"Offset planners compared ({', '.join(planners)})", fontsize=12)
    return finish(fig, path, created)
