"""Memory-timeline figures (matplotlib) drawn from a Timeline alone.

The upper panel stacks resident bytes (buffers in RAM) by tensor role (or layer) over time or
over execution order, with the arena bytes held, the budget and the device's RAM as lines,
prefetches (▲) and evictions (▼) marked and stalls shaded; the strip under it is a Gantt chart
of the compute and storage streams. Every plot function draws into the Axes it is given (or a
new figure), returns the Figure, and writes it atomically when given a path. No backend is
chosen at import: a notebook keeps its own; the command line calls ``use_file_backend``.
"""

from __future__ import annotations

import io
import os

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import atomic_write_bytes
from trainplan.planner.graph import ROLES, STEPS
from trainplan.simulator.timeline import RESIDENT, Timeline

MIB = 2**20
FORMATS = ("png", "svg", "pdf")
ROLE_COLORS = dict(zip(ROLES, plt.get_cmap("tab10").colors, strict=False))
# whole-iteration pools at the bottom of the stack, then the tensors that come and go
STACK_ORDER = ("weight", "optimizer_state", "input", "label", "activation", "derivative",
               "gradient", "workspace")
STEP_COLORS = dict(zip(STEPS, ("#4c72b0", "#dd8452", "#55a868", "#8172b3"), strict=True))
KIND_COLORS = {"read": "#2a9d8f", "write": "#e76f51"}
STALL = "#d62728"
_COMMAS = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 10 else f"{v:g}")


def use_file_backend() -> None:
    """Draw off screen (Agg): for commands that only write figure files."""
    plt.switch_backend("Agg")


def save_figure(fig, path: str, *, close: bool = True) -> None:
    """Render ``fig`` in the format its suffix names and write it atomically (its directory
    created when missing); with ``close``, release it from pyplot afterwards."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    try:
        if fmt not in FORMATS:
            raise TrainplanError(f"figure {path!r}: use a .png, .svg or .pdf file name")
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=130, bbox_inches="tight")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    finally:
        if close:
            plt.close(fig)


def finish(fig, path: str | None, created: bool):
    """Write ``fig`` to ``path`` when given (releasing a figure made here from pyplot, so a
    command drawing many leaks none); return it."""
    if path is not None:
        save_figure(fig, path, close=created)
    return fig


def axes_pair(ax, n: int = 2) -> tuple[list, bool]:
    """``ax`` (None, one Axes, or a sequence or array of up to ``n``) as a list, and whether
    the caller must make the figure (``ax`` is None)."""
    if ax is None:
        return [], True
    axes = list(np.ravel(np.asarray(ax, dtype=object)))
    if not 1 <= len(axes) <= n:
        raise TrainplanError(f"ax: give one Axes or {n}, not {len(axes)}")
    return axes, False


def _time_unit(seconds: float) -> tuple[str, float]:
    return ("ms", 1e3) if seconds < 60 else ("s", 1.0)


def _stack(frame: pd.DataFrame, top: int) -> dict[str, np.ndarray]:
    """Resident-bytes columns in MiB; beyond ``top`` groups the smallest peaks join 'other'."""
    n = len(RESIDENT)
    cols = [c for c in frame.columns if c.startswith(RESIDENT)]
    order = {r: i for i, r in enumerate(STACK_ORDER)}
    cols.sort(key=lambda c: (order.get(c[n:], len(order)), -frame[c].max()))
    if len(cols) > top + 1:
        cols.sort(key=lambda c: -frame[c].max())
        rest = frame[cols[top:]].sum(axis=1)
        out = {c[n:]: frame[c].to_numpy() / MIB for c in cols[:top]}
        out["other"] = rest.to_numpy() / MIB
        return out
    return {c[n:]: frame[c].to_numpy() / MIB for c in cols}


def _axis(tl: Timeline, x: str):
    """x positions of events, of the memory curve, and a time->x mapping for transfers."""
    ev, s = tl.events, tl.summary
    if x == "eo":
        g_eo = (ev["iteration"] * s.n_eo + ev["eo"]).to_numpy(float)
        knots_t = np.column_stack([ev["start_s"], ev["end_s"]]).ravel()
        knots_x = np.column_stack([g_eo, g_eo + 1]).ravel()
        mem = tl.by_eo
        mem_x = np.append(mem["g_eo"].to_numpy(float), s.n_eo * s.iterations)
        return (g_eo, g_eo + 1), mem, mem_x, (lambda t: np.interp(t, knots_t, knots_x)), \
            "execution order (EO)"
    unit, k = _time_unit(s.total_seconds)
    ready = (ev["start_s"] - ev["stall_s"]).to_numpy() * k
    mem_x = np.append(ready, ev["end_s"].iloc[-1] * k if len(ev) else 0.0)
    return (ev["start_s"].to_numpy() * k, ev["end_s"].to_numpy() * k), ev, mem_x, \
        (lambda t: np.asarray(t) * k), f"time ({unit})"


def _memory_panel(ax, tl: Timeline, mem: pd.DataFrame, mem_x, to_x, stack_top: int) -> None:
    s = tl.summary
    layers = _stack(mem, stack_top)
    colors = [ROLE_COLORS.get(k) for k in layers]
    if None in colors:
        colors = list(plt.get_cmap("tab20").colors[: len(layers)])
    ys = [np.append(v, v[-1] if len(v) else 0) for v in layers.values()]
    ax.stackplot(mem_x, *ys, labels=list(layers), colors=colors, step="post", alpha=0.85)
    held = mem["held_bytes"].to_numpy() / MIB
    ax.step(mem_x, np.append(held, held[-1] if len(held) else 0), where="post", color="black",
            lw=1.4, label="arena held (pages touched)")
    top = max(s.arena_bytes, s.peak_resident_bytes, s.budget_bytes or 0) / MIB * 1.18
    top = max(top, 1e-3)
    if s.budget_bytes is not None:
        ax.axhline(s.budget_bytes / MIB, color="#ff7f0e", ls="--", lw=1.3,
                   label=f"budget {s.budget_bytes / MIB:,.1f} MiB")
    for value, style, name in ((s.available_bytes, "--", "available RAM"),
                               (s.ram_bytes, ":", "device RAM")):
        if value / MIB <= top * 1.5:
            ax.axhline(value / MIB, color=STALL, ls=style, lw=1.3,
                       label=f"{name} {value / MIB:,.0f} MiB")
            top = max(top, value / MIB * 1.05)
    if s.available_bytes / MIB > top:
        ax.annotate(f"▲ device RAM {s.ram_bytes / MIB:,.0f} MiB, {s.available_bytes / MIB:,.0f}"
                    " MiB available: above this plot", xy=(0.995, 0.985),
                    xycoords="axes fraction", ha="right", va="top", fontsize=8, color=STALL)
    ax.set_ylim(0, top)
    _mark_transfers(ax, tl, to_x)
    if s.out_of_ram:
        o = s.out_of_ram
        hit = tl.events[(tl.events["iteration"] == o["iteration"]) & (tl.events["eo"] >= o["eo"])]
        if len(hit):
            xo = float(to_x(hit["start_s"].iloc[0]))
            ax.axvline(xo, color=STALL, lw=1.5)
            ax.annotate(f"out of RAM at EO {o['eo']}\n{o['layer']} {o['step']}\n"
                        f"{o['short_bytes'] / MIB:,.1f} MiB short", (xo, 0.5),
                        xycoords=ax.get_xaxis_transform(), color=STALL, fontsize=8,
                        ha="left", va="center", xytext=(4, 0), textcoords="offset points",
                        zorder=10, bbox={"facecolor": "white", "edgecolor": STALL,
                                         "alpha": 0.9, "boxstyle": "round,pad=0.3"})
    ax.set_ylabel("memory (MiB)")
    ax.yaxis.set_major_formatter(_COMMAS)
    ax.grid(axis="y", alpha=0.3)


def _mark_transfers(ax, tl: Timeline, to_x) -> None:
    tr = tl.transfers[~tl.transfers["skipped"].astype(bool)] if len(tl.transfers) else None
    if tr is None:
        return
    trans = ax.get_xaxis_transform()
    for kind, marker, label in (("read", "^", "prefetch (read) starts"),
                                ("write", "v", "eviction (write) starts")):
        sel = tr[tr["kind"] == kind]
        if len(sel):
            ax.plot(to_x(sel["start_s"].to_numpy()), np.full(len(sel), 0.02), marker,
                    transform=trans, color=KIND_COLORS[kind], ms=5, ls="none", label=label)


def _shade_stalls(axes, tl: Timeline, spans, to_x, x: str) -> None:
    """Shade the waits: in time, the stall before each stalled op; in EO, the op's EO slot."""
    ev = tl.events
    stalled = ev["stall_s"].to_numpy() > 0
    if not stalled.any():
        return
    lo, hi = spans
    if x == "time":
        start = ev["start_s"].to_numpy()
        lo, hi = to_x(start - ev["stall_s"].to_numpy()), to_x(start)
    for ax in axes:
        ax.broken_barh(list(zip(lo[stalled], (hi - lo)[stalled], strict=True)), (0, 1),
                       transform=ax.get_xaxis_transform(), color=STALL, alpha=0.15, lw=0,
                       label="stall (an op waits for its data)" if ax is axes[0] else None)


def _gantt(ax, tl: Timeline, bars, to_x, xlabel: str) -> None:
    ev, tr, s = tl.events, tl.transfers, tl.summary
    start, end = bars
    rows = ["compute"] + (["storage"] if _shared(tl) else ["read", "write"])
    y = {name: len(rows) - 1 - i for i, name in enumerate(rows)}
    for kind, color in STEP_COLORS.items():
        sel = (ev["step"] == kind).to_numpy()
        if sel.any():
            ax.broken_barh(list(zip(start[sel], (end - start)[sel], strict=True)),
                           (y["compute"] - 0.4, 0.8), color=color, label=kind)
    if len(tr):
        moved = tr[~tr["skipped"].astype(bool)]
        for kind, color in KIND_COLORS.items():
            sel = moved[moved["kind"] == kind]
            row = "storage" if "storage" in y else kind
            a, b = to_x(sel["start_s"].to_numpy()), to_x(sel["end_s"].to_numpy())
            ax.broken_barh(list(zip(a, b - a, strict=True)), (y[row] - 0.4, 0.8), color=color,
                           label=f"{kind} transfer" if len(sel) else None)
    else:
        ax.text(0.5, (len(rows) - 1.5) / len(rows), "storage idle: no swap schedule",
                transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.4")
    for it in range(1, s.iterations):
        b = ev[ev["iteration"] == it]
        if len(b):
            ax.axvline(float(start[b.index[0]]), color="0.3", lw=0.8, ls="--")
    ax.set_yticks(list(y.values()), list(y))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_formatter(_COMMAS)
    ax.legend(loc="upper right", fontsize=7, ncol=6, framealpha=0.9,
              bbox_to_anchor=(1.0, -0.35))


def _shared(tl: Timeline) -> bool:
    tr = tl.transfers
    return (not len(tr)) or "storage" in set(tr["channel"])


def plot_timeline(tl: Timeline, path: str | None = None, *, x: str = "time",
                  stack_top: int = 9, title: str | None = None, ax=None):
    """Resident memory over ``x`` ("time" or "eo") stacked by role or layer, plus a Gantt
    strip of the streams. ``ax``: one Axes (the memory panel only) or two (memory, Gantt);
    default a new figure with both. Written to ``path`` (.png/.svg/.pdf) when given; returns
    the Figure."""
    if x not in ("time", "eo"):
        raise TrainplanError(f"--x {x!r}: use time or eo")
    s = tl.summary
    bars, mem, mem_x, to_x, xlabel = _axis(tl, x)
    axes, created = axes_pair(ax)
    if created:
        fig, axes = plt.subplots(2, 1, figsize=(12, 7.2), sharex=True,
                                 gridspec_kw={"height_ratios": [4, 1.3], "hspace": 0.08})
    ax, fig = axes[0], axes[0].figure
    _memory_panel(ax, tl, mem, mem_x, to_x, stack_top)
    if len(axes) > 1:
        _gantt(axes[1], tl, bars, to_x, xlabel)
    else:
        ax.set_xlabel(xlabel)
    _shade_stalls(axes, tl, bars, to_x, x)
    ax.legend(loc="upper left", fontsize=7, ncol=3, framealpha=0.9)
    unit, k = _time_unit(s.total_seconds)
    batch = f", batch {s.batch}" if s.batch else ""
    swap = f" · swap {s.swap} under {s.budget_bytes / MIB:,.1f} MiB" if s.swap else ""
    heading = f"{s.model}{batch} · planner {s.planner}{swap} · device {s.device}"
    verdict = "fits" if s.fits else "DOES NOT FIT"
    figures = (f"iteration {s.iteration_seconds * k:,.1f} {unit} (stalls "
               f"{s.total_stall_seconds * k / s.iterations:,.1f} {unit} per iteration) · arena "
               f"{s.arena_bytes / MIB:,.1f} MiB of {s.available_bytes / MIB:,.0f} MiB "
               f"available: {verdict} · peak resident {s.peak_resident_bytes / MIB:,.1f} MiB")
    if created:
        fig.suptitle(title or heading, fontsize=12, y=0.985)
        ax.set_title(f"{figures} · order {s.order}"
                     + (f" · {s.iterations} iterations" if s.iterations > 1 else ""),
                     fontsize=9)
    else:  # a panel of someone else's figure: the heading, and the figures wrapped under it
        ax.set_title(f"{title or heading}\n{figures.replace(' · arena', chr(10) + 'arena')}",
                     fontsize=8)
    ax.set_xlim(left=0)
    return finish(fig, path, created)
