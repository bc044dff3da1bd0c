"""Figures from a sweep's rows (a DataFrame from ``load_sweep`` or a ``--query``): Pareto
fronts of memory against simulated time per model and strategy, bytes moved against the
budget, planners side by side, memory reduction and slowdown per device.

Each function draws from a DataFrame alone; those that draw one axes take ``ax=`` (a new
figure when None) and every function returns the Figure (``plots.save_figure`` writes it).

>>> import pandas as pd
>>> rows = pd.DataFrame({"x": [1, 2, 3, 4], "y": [5.0, 3.0, 4.0, 1.0]})
>>> pareto_front(rows, "x", "y").to_dict("list")
{'x': [1, 2, 4], 'y': [5.0, 3.0, 1.0]}
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from trainplan.experiments.plots import _COMMAS, MIB

NO_SWAP = "no swap"


def strategy(frame: pd.DataFrame) -> pd.Series:
    """A row's memory strategy: the swap planner asked for, or ``no swap`` without a budget."""
    swap = frame["swap"].where(frame["swap"].notna(), "belady")  # plan_training's default
    return swap.where(frame["budget_bytes"].notna(), NO_SWAP)


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The points no other point beats on both ``x`` and ``y`` (smaller is better), by ``x``."""
    ordered = points.sort_values([x, y], kind="stable")
    best_before = ordered[y].astype(float).cummin().shift(fill_value=math.inf)
    return ordered[ordered[y] < best_before].reset_index(drop=True)


def _axes(ax, size=(6.4, 4.2)):
    if ax is None:
        fig, ax = plt.subplots(figsize=size, constrained_layout=True)
        return fig, ax
    return ax.figure, ax


def _colors(names) -> dict:
    palette = plt.get_cmap("tab10").colors
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}


def draw_pareto(rows: pd.DataFrame, ax=None, *, x: str = "peak_resident_bytes",
                y: str = "sim_total_seconds"):
    """One model's plans as points (memory in RAM against simulated seconds per iteration),
    one colour per strategy, each strategy's Pareto front as a step line."""
    fig, ax = _axes(ax)
    rows = rows[rows[x].notna() & rows[y].notna()].assign(strategy=lambda f: strategy(f))
    colors = _colors(sorted(rows["strategy"].unique(), key=lambda s: (s != NO_SWAP, s)))
    unit, scale = ("ms", 1e3) if rows[y].max() < 1 else ("s", 1.0)
    for name, color in colors.items():
        sel = rows[rows["strategy"] == name]
        ax.scatter(sel[x] / MIB, sel[y] * scale, s=14, color=color, alpha=0.45, lw=0)
        front = pareto_front(sel, x, y)
        ax.step(front[x] / MIB, front[y] * scale, where="post", color=color, lw=1.6,
                marker="o", ms=3, label=f"{name} ({len(sel)} plans)")
    ax.set_xlabel("peak resident memory (MiB)")
    ax.set_ylabel(f"simulated time per iteration ({unit})")
    ax.xaxis.set_major_formatter(_COMMAS)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return fig


def plot_pareto(frame: pd.DataFrame, *, device: str | None = None):
    """Pareto fronts of every model and batch (one axes each) on one device (default: the most
    common)."""
    device = device or frame["device"].mode().iloc[0]
    rows = frame[frame["device"] == device]
    rows = rows.assign(panel=rows["model"] + " b" + rows["batch"].astype(str))
    models = list(dict.fromkeys(rows["panel"]))
    cols = min(3, len(models))
    nrows = math.ceil(len(models) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.8 * nrows), squeeze=False,
                             constrained_layout=True)
    for ax, model in zip(axes.flat, models, strict=False):
        draw_pareto(rows[rows["panel"] == model], ax)
        ax.set_title(model, fontsize=10)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    fig.suptitle(f"Memory against simulated time per strategy on {device}", fontsize=11)
    return fig


def plot_bytes_moved(frame: pd.DataFrame, ax=None):
    """Bytes moved to and from storage per iteration against the budget (a fraction of the
    lower bound), one line per model and swap planner."""
    fig, ax = _axes(ax)
    rows = frame[frame["budget_bytes"].notna() & frame["bytes_read"].notna()].copy()
    rows["fraction"] = rows["budget_bytes"] / rows["lower_bound_bytes"]
    rows["moved"] = (rows["bytes_read"] + rows["bytes_written"]) / MIB
    rows["strategy"] = strategy(rows)
    colors = _colors(list(dict.fromkeys(rows["model"])))
    styles = dict(zip(sorted(rows["strategy"].unique()), ("-", "--", ":", "-."), strict=False))
    for (model, swap), sel in rows.groupby(["model", "strategy"], sort=False):
        sel = sel.groupby("fraction")["moved"].min()
        ax.plot(sel.index, sel.to_numpy(), marker="o", ms=3, color=colors[model],
                ls=styles.get(swap, "-"), label=f"{model} · {swap}")
    ax.set_xlabel("budget / lower bound")
    ax.set_ylabel("bytes moved per iteration (MiB)")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, frameon=False, ncol=2)
    return fig


def planner_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Offset planners side by side without a budget: per model (and batch: ``lenet5 b32``)
    and planner the arena, its ratio to the lower bound, whether it is proven optimal, the
    solve seconds (median)."""
    rows = frame[frame["budget_bytes"].isna() & frame["arena_bytes"].notna()]
    table = rows.groupby(["model", "batch", "offsets_used"], sort=False).agg(
        arena_bytes=("arena_bytes", "min"), lower_bound_bytes=("lower_bound_bytes", "first"),
        optimal=("optimal", "first"), solve_seconds=("solve_seconds", "median"),
        rows=("task_hash", "count")).reset_index()
    table["ratio"] = (table["arena_bytes"] / table["lower_bound_bytes"]).round(4)
    table["model"] = table["model"] + " b" + table["batch"].astype(str)
    return table.drop(columns="batch").rename(columns={"offsets_used": "planner"})


def plot_planner_table(table: pd.DataFrame, ax=None):
    """Arena over lower bound per planner (bars), grouped by model."""
    fig, ax = _axes(ax, size=(7.5, 4.2))
    _grouped_bars(ax, table, "planner", "ratio", legend_columns=3)
    ax.set_ylabel("arena / lower bound")
    top = table["ratio"].max()
    ax.set_ylim(0.9, max(1.1, min(top, 3.0) * 1.05))
    return fig


def _grouped_bars(ax, table: pd.DataFrame, series: str, value: str, *,
                  legend_columns: int) -> None:
    """``value`` per model (groups along x) and ``series`` (one coloured bar each), with the
    line at 1.0 that the ratios are read against."""
    models = list(dict.fromkeys(table["model"]))
    names = list(dict.fromkeys(table[series]))
    colors = _colors(names)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        sel = table[table[series] == name].set_index("model").reindex(models)
        ax.bar(np.arange(len(models)) + i * width, sel[value], width, color=colors[name],
               label=name)
    ax.axhline(1.0, color="black", ls="--", lw=1)
    ax.set_xticks(np.arange(len(models)) + 0.4 - width / 2, models, fontsize=8, rotation=20)
    ax.legend(fontsize=7, frameon=False, ncol=legend_columns)
    ax.grid(axis="y", alpha=0.3)


def plot_memory_reduction(table: pd.DataFrame, ax=None):
    """Per model: the conventional footprint (no reuse), the planned arena and the smallest
    swapped peak, on a log scale, each bar labelled with its reduction from the first."""
    fig, ax = _axes(ax, size=(7.5, 4.2))
    bars = (("no_reuse_bytes", "no reuse (conventional)", "#8c8c8c"),
            ("planned_bytes", "planned (nntrainer_v1)", "#4c72b0"),
            ("swapped_bytes", "planned + swapped (least)", "#dd8452"))
    x = np.arange(len(table))
    for i, (column, label, color) in enumerate(bars):
        values = table[column].to_numpy(dtype=float) / MIB
        ax.bar(x + (i - 1) * 0.27, values, 0.27, color=color, label=label)
        for xi, v, base in zip(x, values, table["no_reuse_bytes"] / MIB, strict=True):
            if i and np.isfinite(v) and v > 0:
                ax.text(xi + (i - 1) * 0.27, v, f"1/{base / v:.1f}", ha="center", va="bottom",
                        fontsize=6)
    ax.set_yscale("log")
    ax.set_xticks(x, table["model"], fontsize=8, rotation=20)
    ax.set_ylabel("bytes (MiB, log)")
    ax.legend(fontsize=7, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_slowdown(table: pd.DataFrame, ax=None):
    """Simulated slowdown (seconds per iteration swapped / unswapped) at the smallest budget,
    per model (groups) and device (bars)."""
    fig, ax = _axes(ax, size=(7.5, 4.2))
    _grouped_bars(ax, table, "device", "slowdown", legend_columns=2)
    ax.set_yscale("log")
    ax.set_ylabel("simulated slowdown at the smallest budget (×, log)")
    return fig


def plot_personalisation(table: pd.DataFrame, ax=None):
    """Fine-tuning against full training: test accuracy against peak resident memory, one
    marker per kind of training, each point labelled with its simulated seconds per
    iteration."""
    fig, ax = _axes(ax)
    colors = _colors(list(dict.fromkeys(table["training"])))
    for kind, sel in table.groupby("training", sort=False):
        ax.scatter(sel["peak_resident_bytes"] / MIB, sel["train_test_accuracy"] * 100,
                   color=colors[kind], label=kind, s=30)
        for _, r in sel.iterrows():
            ax.annotate(f"{r['sim_total_seconds']:.3g} s", (r["peak_resident_bytes"] / MIB,
                        r["train_test_accuracy"] * 100), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("peak resident memory (MiB)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return fig

