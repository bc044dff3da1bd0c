"""Benchmark: how many tight problems (perfect packings) each planner fits in the time limit.

    python -m trainplan.experiments.bench_exact [--instances 50] [--time-limit 20] [--dense]
        [--deterministic] [--out results/bench_exact.json]

Instance ``i`` is ``perfect_packing(n_i, seed=i)`` with ``n_i`` spread evenly over 150..450
buffers; its capacity is the optimum (every time step is exactly full), so a planner *fits* an
instance when its arena is at most the capacity. Each planner gets the decision problem (the
capacity set), the time limit, seed 0 and ``--workers`` cores. Every plan is checked by
``validate_plan`` (without the capacity, so a plan that does not fit still gets checked).
The JSON (rewritten atomically after every instance, so a long run can be watched) holds the
settings, one row per (instance, planner) and the summary that is printed at the end: per
planner, instances fitted and mean/max seconds. ``--dense`` uses the generator's dense setting
(``perfect_packing.DENSE``: few buffers live at once), where MiniMalloc fails;
``--deterministic`` runs the searching planners on work budgets.
"""

from __future__ import annotations

import argparse
import json
import os

import pandas as pd
from tqdm import tqdm

from trainplan.planner.fileio import atomic_write_text
from trainplan.planner.offsets import run_planner
from trainplan.planner.perfect_packing import DENSE, perfect_packing
from trainplan.planner.validate import validate_plan

PLANNERS = ("exact", "cpsat", "greedy_size")


def instance_sizes(count: int, low: int = 150, high: int = 450) -> list[int]:
    """``count`` buffer counts spread evenly over ``[low, high]``.

    >>> instance_sizes(4)
    [150, 250, 350, 450]
    """
    return [low + (high - low) * i // max(1, count - 1) for i in range(count)]


def run_one(index: int, n: int, planner: str, time_limit: float, workers: int,
            dense: bool = False, deterministic: bool = False) -> dict:
    """Plan instance ``index`` with one planner; the row records fit, time, status, validity."""
    problem = perfect_packing(n, seed=index, **(DENSE if dense else {}))
    plan = run_planner(planner, problem, time_limit=time_limit, seed=0, workers=workers,
                       deterministic=deterministic)
    errors = validate_plan(problem.with_capacity(None), plan)
    return {
        "instance": index,
        "n": n,
        "planner": planner,
        "capacity": problem.capacity,
        "arena_bytes": plan.arena_bytes,
        "ratio": round(plan.ratio, 4),
        "fitted": plan.arena_bytes <= problem.capacity and not errors,
        "optimal": plan.optimal,
        "status": plan.status,
        "seconds": round(plan.solve_seconds, 3),
        "best_bound": plan.best_bound,
        "valid": not errors,
    }


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per planner: instances, how many fitted, mean/max seconds, mean arena / optimum."""
    grouped = rows.groupby("planner", sort=False)
    return pd.DataFrame({
        "instances": grouped.size(),
        "fitted": grouped["fitted"].sum(),
        "mean_s": grouped["seconds"].mean().round(2),
        "max_s": grouped["seconds"].max().round(2),
        "mean_ratio": grouped["ratio"].mean().round(4),
        "all_valid": grouped["valid"].all(),
    }).reset_index()


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--time-limit", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--planners", default=",".join(PLANNERS))
    parser.add_argument("--dense", action="store_true", help="the generator's dense setting")
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--out", default="results/bench_exact.json")
    args = parser.parse_args(argv)
    planners = [p.strip() for p in args.planners.split(",") if p.strip()]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    settings = {"instances": args.instances, "time_limit": args.time_limit,
                "workers": args.workers, "planners": planners,
                "generator": "perfect_packing(n, seed=instance), capacity 1 MiB"
                + (f", {DENSE}" if args.dense else ""), "deterministic": args.deterministic}
    rows: list[dict] = []
    pairs = [(i, n, p) for i, n in enumerate(instance_sizes(args.instances)) for p in planners]
    for index, n, planner in tqdm(pairs, desc="bench_exact"):
        rows.append(run_one(index, n, planner, args.time_limit, args.workers, args.dense,
                            args.deterministic))
        table = summary(pd.DataFrame(rows))
        atomic_write_text(args.out, json.dumps(
            {"settings": settings, "summary": table.to_dict(orient="records"), "rows": rows},
            indent=1, default=str) + "\n")
    table = summary(pd.DataFrame(rows))
    print(table.to_markdown(index=False))
    return table


if __name__ == "__main__":
    main()
