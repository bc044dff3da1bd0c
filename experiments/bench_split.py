"""Benchmark: step splitting fits ImageNet-size models into 1/20 of their no-reuse footprint.

    python -m trainplan.experiments.bench_split [--models resnet18,mobilenetv2,vgg16]
        [--batch 32] [--fraction 20] [--fill 0.3] [--device phone-ufs31]
        [--out results/bench_split.json]

For every model: the unsplit graph's bounds and its simulated iteration without a budget (the
reference time); the budget, its no-reuse footprint over ``--fraction``; the splits
``auto_splits`` chooses for it (working sets within ``--fill`` of the budget) and the split
graph's bounds; then the split graph planned under the budget with ``belady`` swapping, in
NNTrainer's order (layer by layer) and chunk-major (planner/split_order.py): valid?, arena,
bytes moved, and the simulated iteration against the reference. Writes JSON rows and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from trainplan.planner.build import build_training_graph
from trainplan.planner.fileio import write_json
from trainplan.planner.plan_training import plan_training
from trainplan.planner.split import describe_split
from trainplan.planner.split_auto import auto_splits
from trainplan.planner.split_order import chunk_major
from trainplan.planner.zoo import get_model
from trainplan.simulator.simulate import simulate

MiB = 2**20


def bench_model(name: str, batch: int, fraction: float, fill: float, device: str) -> list[dict]:
    graph = build_training_graph(get_model(name, batch=batch))
    unbudgeted = plan_training(graph)
    bounds = unbudgeted.bounds
    reference = simulate(graph, unbudgeted, device).summary.iteration_seconds
    budget = int(bounds.no_reuse_bytes // fraction)
    began = time.perf_counter()
    choice = auto_splits(graph, budget, fill=fill)
    chosen = time.perf_counter() - began
    base = {"model": name, "batch": batch, "device": device,
            "no_reuse_bytes": bounds.no_reuse_bytes, "budget_bytes": budget,
            "unsplit_lower_bound_bytes": bounds.lower_bound_bytes,
            "unsplit_min_budget_bytes": bounds.min_budget_bytes,
            "unsplit_fits": bounds.min_budget_bytes <= budget,
            "reference_seconds": round(reference, 4), "splits": describe_split(choice.graph),
            "split_min_budget_bytes": choice.min_budget_bytes, "auto_seconds": round(chosen, 2)}
    rows = []
    for label in ("nntrainer", "chunk-major"):
        order = chunk_major(choice.graph) if label == "chunk-major" else label
        began = time.perf_counter()
        plan = plan_training(choice.graph, order=order, budget=budget, swap="belady")
        planned = time.perf_counter() - began
        summary = simulate(choice.graph, plan, device).summary
        rows.append({**base, "order": label,
                     "split_lower_bound_bytes": plan.bounds.lower_bound_bytes,
                     "valid": plan.valid, "arena_bytes": plan.arena_bytes,
                     "bytes_read": summary.total_bytes_read,
                     "bytes_written": summary.total_bytes_written,
                     "plan_seconds": round(planned, 2),
                     "simulated_seconds": round(summary.iteration_seconds, 4),
                     "stall_seconds": round(summary.total_stall_seconds, 4),
                     "slowdown": round(summary.iteration_seconds / reference, 3)})
    return rows


def table(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return pd.DataFrame({
        "model": frame["model"], "order": frame["order"],
        "budget (MiB) = no-reuse / 20": (frame["budget_bytes"] / MiB).round(1),
        "unsplit min budget (MiB)": (frame["unsplit_min_budget_bytes"] / MiB).round(1),
        "split min budget (MiB)": (frame["split_min_budget_bytes"] / MiB).round(1),
        "valid": frame["valid"], "arena (MiB)": (frame["arena_bytes"] / MiB).round(1),
        "moved (MiB/iter)": ((frame["bytes_read"] + frame["bytes_written"]) / MiB).round(0),
        "simulated (s)": frame["simulated_seconds"].round(2),
        "unbudgeted unsplit (s)": frame["reference_seconds"].round(2),
        "slowdown": frame["slowdown"], "plan (s)": frame["plan_seconds"],
    })


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenetv2,vgg16")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--fraction", type=float, default=20.0)
    parser.add_argument("--fill", type=float, default=0.3,
                        help="working sets within this share of the budget (auto_splits)")
    parser.add_argument("--device", default="phone-ufs31")
    parser.add_argument("--out", default="results/bench_split.json")
    args = parser.parse_args(argv)
    rows = []
    for name in args.models.split(","):
        rows += bench_model(name, args.batch, args.fraction, args.fill, args.device)
    write_json(args.out, rows)
    frame = table(rows)
    print(frame.to_markdown(index=False))
    for r in rows[::2]:
        print(f"{r['model']}: {r['splits']}")
    return frame


if __name__ == "__main__":
    main()
