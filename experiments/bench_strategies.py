"""Benchmark: memory strategies side by side — swap, recompute, both — over RAM budgets.

    python -m trainplan.experiments.bench_strategies [--models resnet18_cifar,mobilenetv2_cifar,transformer]
        [--devices phone-ufs31,raspberry-pi-4] [--points 5] [--time-limit 20]
        [--out results/bench_strategies.json] [--plot docs/figures/strategies.png]

For every model (batch 32) and device, budgets run from the model's lower bound (no swap, no
recomputation needed) down to its minimum feasible budget; at each, every strategy plans and the
simulator times the plan on the device, next to the same model without a budget:

- ``swap``: the best of the swap planners (lookahead, belady, CP-SAT optimal) by simulated time;
- ``recompute``: CP-SAT recomputation down to the budget, nothing through storage (a point only
  where recomputation alone fits);
- ``joint_greedy`` and ``joint``: keep, swap or recompute each value (planner/strategies.py).

Every CP-SAT run is deterministic on one worker (``--time-limit`` is deterministic seconds per
run), so a row does not depend on the machine's load and the joint strategies, which plan the
swap-only and recompute-only ends among their combinations, are never slower than either: the
printed ``gap`` columns (joint / best single - 1) show it.

Rows (JSON) give the slowdown and what moved; the figure draws, per model and device, the
slowdown over the budget per strategy: the Pareto front of budget against time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import networkx as nx
import numpy as np
import pandas as pd
from tqdm import tqdm

from trainplan.experiments.device_costs import device_costs, device_score
from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import Infeasible
from trainplan.planner.fileio import write_json
from trainplan.planner.plan_training import plan_training
from trainplan.planner.swap import SWAP_PLANNERS
from trainplan.planner.training_plan import TrainingPlan
from trainplan.planner.zoo import get_model

MIB = 2**20
#: Every CP-SAT run deterministic on one worker: a row does not depend on the load, and the
#: strategies' swap-only and recompute-only combinations are exactly the single runs' plans.
SEARCH = {"deterministic": True, "workers": 1, "seed": 0}


def _swap(graph, budget, device, limit) -> TrainingPlan | None:
    score, best = device_score(device), None
    for swap in SWAP_PLANNERS:
        try:
            plan = plan_training(graph, budget=budget, swap=swap, costs=device_costs(device),
                                 **SEARCH, time_limit=limit)
        except Infeasible:
            continue
        if plan.valid and (best is None or score(graph, plan) < score(graph, best)):
            best = plan
    return best


def _recompute(graph, budget, device, limit) -> TrainingPlan | None:
    plan = plan_training(graph, budget=budget, remat="optimal", costs=device_costs(device),
                         **SEARCH, time_limit=limit)
    return plan if plan.valid and not plan.swapped else None


def _strategy(name: str) -> Callable:
    def run(graph, budget, device, limit):
        return plan_training(graph, budget=budget, swap=name, costs=device_costs(device),
                             score=device_score(device), **SEARCH, time_limit=limit)
    return run


STRATEGIES: dict[str, Callable[[nx.DiGraph, int, str, float], TrainingPlan | None]] = {
    "swap": _swap, "recompute": _recompute, "joint_greedy": _strategy("joint_greedy"),
    "joint": _strategy("joint"),
}


def budgets(high: int, low: int, points: int) -> list[int]:
    """``points`` budgets from ``high`` down to ``low``, evenly spaced in log scale."""
    return sorted({int(b) for b in np.geomspace(high, low, points)}, reverse=True)


def sweep(model: str, batch: int, devices: list[str], strategies: list[str], points: int,
          limit: float, progress: bool = True) -> list[dict]:
    graph = build_training_graph(get_model(model, batch=batch))
    free = plan_training(graph, offsets="greedy_size")
    base = {d: device_score(d)(graph, free) for d in devices}
    rows = []
    cases = [(b, d, s) for b in budgets(free.bounds.lower_bound_bytes,
                                        free.bounds.min_budget_bytes, points)
             for d in devices for s in strategies]
    for budget, device, name in tqdm(cases, desc=model, disable=not progress, leave=False):
        began = time.perf_counter()
        try:
            plan = STRATEGIES[name](graph, budget, device, limit)
        except Infeasible:
            plan = None
        row = {"model": model, "batch": batch, "device": device, "strategy": name,
               "budget_bytes": budget,
               "budget_over_lower_bound": round(budget / free.bounds.lower_bound_bytes, 4),
               "planning_seconds": round(time.perf_counter() - began, 3), "fits": plan is not None}
        if plan is not None:
            seconds = device_score(device)(graph, plan)
            rec = plan.record()
            row.update(seconds=round(seconds, 6), slowdown=round(seconds / base[device], 4),
                       swap=rec["swap"], remat=rec["remat"], recomputed_ops=len(plan.recomputes),
                       bytes_moved=plan.bytes_read + plan.bytes_written,
                       **{k: rec[k] for k in ("arena_bytes", "peak_resident_bytes", "valid")})
        rows.append(row)
    return rows


def strategy_gaps(shown: pd.DataFrame) -> pd.DataFrame:
    """Per row of slowdowns, each joint strategy's time over the best of swap-only and
    recompute-only, less 1 (0 or below: never slower)."""
    singles = shown[[c for c in ("swap", "recompute") if c in shown]].min(axis=1)
    return pd.DataFrame({f"{name} gap": shown[name] / singles - 1
                         for name in ("joint", "joint_greedy") if name in shown})


def plot(frame: pd.DataFrame, path: str) -> None:
    import matplotlib.pyplot as plt

    from trainplan.experiments.plots import save_figure

    models = list(dict.fromkeys(frame["model"]))
    devices = list(dict.fromkeys(frame["device"]))
    fig, axes = plt.subplots(len(devices), len(models), squeeze=False,
                             figsize=(4.6 * len(models), 3.6 * len(devices)))
    for i, device in enumerate(devices):
        for j, model in enumerate(models):
            ax = axes[i][j]
            part = frame[(frame["model"] == model) & (frame["device"] == device) & frame["fits"]]
            for name, g in part.groupby("strategy", sort=False):
                ax.plot(g["budget_bytes"] / MIB, g["slowdown"], "o-", label=name, alpha=0.85)
            ax.set_title(f"{model} on {device}", fontsize=10)
            ax.set_xlabel("RAM budget (MiB)")
            ax.set_ylabel("simulated time / no budget")
            ax.invert_xaxis()
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("Memory strategies: simulated iteration time over the RAM budget "
                 "(lower bound down to the minimum feasible budget)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18_cifar,mobilenetv2_cifar,transformer")
    parser.add_argument("--devices", default="phone-ufs31,raspberry-pi-4")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--time-limit", type=float, default=20.0,
                        help="CP-SAT's deterministic seconds per planning run (joint plans each "
                        "of its combinations with it)")
    parser.add_argument("--out", default="results/bench_strategies.json")
    parser.add_argument("--plot", default=None, help="write the figure (PNG)")
    args = parser.parse_args(argv)
    strategies = args.strategies.split(",")
    rows = []
    for model in tqdm(args.models.split(","), desc="models"):
        rows += sweep(model, args.batch, args.devices.split(","), strategies, args.points,
                      args.time_limit)
    write_json(args.out, rows)
    frame = pd.DataFrame(rows)
    shown = frame[frame["fits"]].pivot_table(
        index=["model", "device", "budget_over_lower_bound"], columns="strategy",
        values="slowdown")
    gaps = strategy_gaps(shown)
    print(pd.concat([shown, gaps], axis=1).to_markdown())
    if args.plot:
        plot(frame, args.plot)
    return frame


if __name__ == "__main__":
    main()
