"""Benchmark: swap planners swept over RAM budgets, simulated on a UFS phone and a Raspberry Pi.

    python -m trainplan.experiments.bench_swap [--models resnet18,mobilenetv2,transformer] [--points 6]
        [--time-limit 10] [--out results/bench_swap.json]

For every model (batch 32) the budget runs from the no-swap lower bound down to the minimum
feasible budget; every registered swap planner plans each budget (lookahead only where its own
peak fits) and the simulator runs the plan on each device, next to the same model without
swapping. Also the paper's headline: the smallest budget against the no-reuse footprint.
Writes JSON rows, a Markdown table and a figure (``--plot``).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from tqdm import tqdm

from trainplan.experiments.device_costs import device_costs
from trainplan.experiments.plots import save_figure
from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import Infeasible
from trainplan.planner.fileio import write_json
from trainplan.planner.plan_training import plan_training
from trainplan.planner.swap import SWAP_PLANNERS
from trainplan.planner.zoo import get_model
from trainplan.simulator.simulate import simulate

DEVICES = ("phone-ufs31", "raspberry-pi-4")


def budgets(high: int, low: int, points: int) -> list[int]:
    """``points`` budgets from ``high`` down to ``low``, evenly spaced in log scale."""
    return sorted({int(b) for b in np.geomspace(high, low, points)}, reverse=True)


def sweep_model(name: str, batch: int, points: int, time_limit: float) -> list[dict]:
    graph = build_training_graph(get_model(name, batch=batch))
    unswapped = plan_training(graph, offsets="greedy_size")
    bounds = unswapped.bounds
    bound, basic, low = bounds.lower_bound_bytes, bounds.no_reuse_bytes, bounds.min_budget_bytes
    base = {d: simulate(graph, unswapped, d).summary for d in DEVICES}
    costs = device_costs(DEVICES[0])  # optimal plans for the phone's storage and compute
    rows = []
    for budget in budgets(bound, low, points):
        for swap in SWAP_PLANNERS:
            try:
                plan = plan_training(graph, budget=budget, swap=swap, time_limit=time_limit,
                                     costs=costs)
            except Infeasible:
                continue
            rec = plan.record()
            row = {"model": name, "batch": batch, "budget_bytes": budget, "swap": swap,
                   "budget_over_lower_bound": round(budget / bound, 4),
                   "basic_over_peak": round(basic / rec["peak_resident_bytes"], 2),
                   **{k: rec[k] for k in ("arena_bytes", "peak_resident_bytes",
                                          "bytes_written", "bytes_read", "valid")}}
            for d in DEVICES:
                s = simulate(graph, plan, d).summary
                row[f"{d}_stall_s"] = round(s.total_stall_seconds, 4)
                row[f"{d}_slowdown"] = round(s.total_seconds / base[d].total_seconds, 3)
            rows.append(row)
    return rows


def headline(rows: list[dict]) -> pd.DataFrame:
    """Per model and swap planner: the smallest budget planned, against the no-reuse bytes."""
    frame = pd.DataFrame(rows)
    best = frame.loc[frame.groupby(["model", "swap"])["peak_resident_bytes"].idxmin()]
    return best[["model", "swap", "peak_resident_bytes", "basic_over_peak"]
                + [c for c in frame.columns if c.endswith("_slowdown")]]


def plot(frame: pd.DataFrame, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(frame["model"]))
    fig, axes = plt.subplots(3, len(models), figsize=(5 * len(models), 10), squeeze=False)
    for j, model in enumerate(models):
        part = frame[frame["model"] == model]
        for swap, g in part.groupby("swap"):
            mib = g["budget_bytes"] / 2**20
            axes[0][j].plot(mib, (g["bytes_read"] + g["bytes_written"]) / 2**20, "o-",
                            label=swap)
            for i, d in enumerate(DEVICES, start=1):
                axes[i][j].plot(mib, g[f"{d}_stall_s"] * 1e3, "o-", label=swap)
        axes[0][j].set_title(f"{model}, batch {part['batch'].iloc[0]}")
        axes[0][j].set_ylabel("bytes moved per iteration (MiB)")
        for i, d in enumerate(DEVICES, start=1):
            axes[i][j].set_ylabel(f"simulated stall on {d} (ms)")
        for ax in axes[:, j]:
            ax.set_xlabel("RAM budget (MiB)")
            ax.invert_xaxis()
            ax.grid(alpha=0.3)
            ax.legend()
    fig.suptitle("Swap planners over RAM budgets\n(no-swap lower bound down to the minimum "
                 "feasible budget)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenetv2,transformer")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--out", default="results/bench_swap.json")
    parser.add_argument("--plot", default=None, help="write the figure (PNG)")
    args = parser.parse_args(argv)
    rows = []
    for name in tqdm(args.models.split(","), desc="models"):
        rows += sweep_model(name, args.batch, args.points, args.time_limit)
    write_json(args.out, rows)
    frame = pd.DataFrame(rows)
    print(frame.to_markdown(index=False))
    print()
    print(headline(rows).to_markdown(index=False))
    if args.plot:
        plot(frame, args.plot)
    return frame


if __name__ == "__main__":
    main()
