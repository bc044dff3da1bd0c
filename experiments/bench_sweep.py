"""Benchmark: sweep throughput on Dask, and the same table wherever a sweep runs.

    python -m trainplan.experiments.bench_sweep [--rounds 1] [--out results/bench_sweep.json]

A grid of at least 1,000 small tasks (three small models, sixteen batches, two execution
orders; seven greedy offset planners without a budget, two swap planners under four budgets)
runs on the embedded cluster with one worker and with two, and through a real Dask scheduler
with two worker processes on 127.0.0.1, in that order each round (interleaved, so load
drifts hit all three alike). Tasks per second count from a ready cluster to the last row
written; the mean seconds inside a task and how many tasks ran at once (task seconds over
wall seconds) tell a slow scheduler from a busy machine. The tables of every run must be
identical once sorted by task hash and stripped of the measured columns (seconds, memory);
the benchmark fails otherwise.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import pandas as pd

from trainplan.experiments.local_dask import start_local_dask, stop_local_dask
from trainplan.experiments.sweep import comparable, run_sweep
from trainplan.experiments.sweep_grid import Task, expand_grid
from trainplan.experiments.sweep_store import load_sweep
from trainplan.planner.fileio import write_json

_COMMON = {"model": ["mlp", "lenet5", "mnist.ini"], "batch": list(range(1, 17)),
           "order": ["nntrainer", "apply-at-end"]}
GRID = {"grid": [
    {**_COMMON, "offsets": ["basic", "nntrainer_v1", "nntrainer_v2", "nntrainer_v3",
                            "greedy_size", "greedy_breadth", "best_fit"]},
    {**_COMMON, "budget_fraction": [1.0, 0.95, 0.9, 0.8], "swap": ["lookahead", "belady"]},
]}


def bench_tasks() -> list[Task]:
    return expand_grid(GRID, origin="bench_sweep grid")


def run_once(tasks: list[Task], where: str, workers: int, *,
             scheduler: str | None = None) -> tuple[dict, pd.DataFrame]:
    """One sweep of ``tasks`` into a fresh directory, on the embedded cluster of ``workers``
    processes or on ``scheduler``: its report and its table."""
    with tempfile.TemporaryDirectory(prefix="bench_sweep-") as out:
        report = run_sweep(tasks, out, jobs=None if scheduler else workers,
                           scheduler=scheduler, progress=False)
        frame = load_sweep(out)
    # seconds inside tasks against the wall: how many ran at once, how long one took
    busy = float(frame["seconds"].sum())
    return {"where": where, "workers": workers, **{k: report[k] for k in (
        "tasks", "ran", "failed", "lost", "seconds", "running_seconds", "tasks_per_second")},
        "task_seconds_mean": round(busy / len(frame), 4),
        "tasks_at_once": round(busy / report["running_seconds"], 2),
        "load_average": round(os.getloadavg()[0], 2)}, frame


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default="results/bench_sweep.json")
    args = parser.parse_args(argv)
    tasks = bench_tasks()
    rows, tables = [], []
    with tempfile.TemporaryDirectory(prefix="bench_sweep-dask-") as tmp:
        for round_ in range(args.rounds):
            for where, workers in (("embedded", 1), ("embedded", 2), ("scheduler", 2)):
                cluster = start_local_dask(tmp, workers) if where == "scheduler" else None
                try:
                    row, frame = run_once(tasks, where, workers,
                                          scheduler=cluster.address if cluster else None)
                finally:
                    if cluster is not None:
                        stop_local_dask(cluster)
                rows.append({"round": round_, **row})
                tables.append(comparable(frame))
                print(rows[-1], flush=True)
    identical = all(tables[0].equals(t) for t in tables[1:])
    summary = {"tasks": len(tasks), "identical_tables": identical, "runs": rows,
               "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(args.out, summary)
    frame = pd.DataFrame(rows)
    print(frame.to_markdown(index=False))
    print(f"identical tables over {len(tables)} runs: {identical}")
    if not identical:
        raise SystemExit("the sweeps' tables differ")
    return frame


if __name__ == "__main__":
    main()
