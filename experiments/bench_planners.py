"""Benchmark: every offset planner on every zoo model (batch 32), arena / lower bound.

    python -m trainplan.experiments.bench_planners [--batch 32] [--time-limit 60]
        [--out results/bench_planners.json]

Writes one row per (model, planner) as JSON, and a pivot table (arena / lower bound, with
NNTrainer's default planner and TFLite's rule as reference columns) as Markdown.
"""

from __future__ import annotations

import argparse
import os

import pandas as pd

from trainplan.experiments.compare import compare_frame, compare_plans
from trainplan.experiments.output import save_frame
from trainplan.planner.build import build_training_graph
from trainplan.planner.offsets import PLANNERS
from trainplan.planner.zoo import MODELS, get_model


def pivot(frame: pd.DataFrame) -> pd.DataFrame:
    """Arena / lower bound per model (rows) and planner (columns), reference columns first."""
    table = frame.pivot(index="model", columns="planner", values="ratio")
    first = [c for c in ("nntrainer_v1", "greedy_size") if c in table.columns]
    table = table[first + [c for c in table.columns if c not in first]]
    table = table.reindex([m for m in frame["model"].unique()])
    return table.round(4).reset_index()


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--planners", default=",".join(PLANNERS))
    parser.add_argument("--out", default="results/bench_planners.json")
    args = parser.parse_args(argv)
    graphs = {m: build_training_graph(get_model(m, batch=args.batch))
              for m in args.models.split(",")}
    frame = compare_frame(compare_plans(graphs, args.planners.split(","),
                                        time_limit=args.time_limit))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_frame(frame, args.out)
    table = pivot(frame)
    save_frame(table, os.path.splitext(args.out)[0] + "_ratio.md")
    print(table.to_markdown(index=False))
    cols = ["model", "planner", "arena_bytes", "lower_bound_bytes", "solve_seconds", "optimal"]
    print(frame[cols].to_markdown(index=False))
    return frame


if __name__ == "__main__":
    main()
