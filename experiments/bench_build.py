"""Benchmark: build + execution order + lifespans for every zoo model at batch 32.

    python -m trainplan.experiments.bench_build [--batch 32] [--repeat 3] [--out results/bench_build.json]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from tqdm import tqdm

from trainplan.planner.build import build_training_graph
from trainplan.planner.fileio import write_json
from trainplan.planner.order import execution_order, lifespans, lower_bound, no_reuse_bytes
from trainplan.planner.zoo import MODELS, get_model


def measure(name: str, batch: int, repeat: int) -> dict:
    """Best-of-``repeat`` seconds for build, order and lifespans of one model."""
    best = {"build": float("inf"), "order": float("inf"), "lifespans": float("inf")}
    for _ in range(repeat):
        t0 = time.perf_counter()
        graph = build_training_graph(get_model(name, batch=batch))
        t1 = time.perf_counter()
        eo = execution_order(graph)
        t2 = time.perf_counter()
        spans = lifespans(graph, eo)
        t3 = time.perf_counter()
        for key, value in (("build", t1 - t0), ("order", t2 - t1), ("lifespans", t3 - t2)):
            best[key] = min(best[key], value)
    return {"model": name, "batch": batch, "ops": graph.number_of_nodes(),
            "buffers": len(spans), **{f"{k}_seconds": round(v, 4) for k, v in best.items()},
            "total_seconds": round(sum(best.values()), 4),
            "lower_bound_bytes": lower_bound(spans, eo.n_eo),
            "no_reuse_bytes": no_reuse_bytes(spans)}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="results/bench_build.json")
    args = parser.parse_args(argv)
    rows = [measure(m, args.batch, args.repeat) for m in tqdm(MODELS, desc="models")]
    frame = pd.DataFrame(rows).rename(columns={"ops": "nodes"})
    write_json(args.out, rows)
    print(frame.to_markdown(index=False))
    return frame


if __name__ == "__main__":
    main()
