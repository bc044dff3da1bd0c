"""Time every greedy offset planner on large random problems and check each plan.

    python -m trainplan.experiments.bench_greedy [--n 10000] [--seed 0] [--out results/bench_greedy.json]

Writes one JSON record per planner (planner, n, seconds, arena, lower_bound, ratio, valid,
violations) atomically and prints them as a table. It asserts nothing: a slow planner or an
invalid plan shows up in the table (``valid`` False, ``violations`` > 0), not as a crash.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.fileio import write_json
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.validate import validate_plan


def random_problem(
    n: int,
    seed: int = 0,
    *,
    horizon: int | None = None,
    max_life: int = 200,
    alignments: tuple[int, ...] = (1, 4, 16, 64),
) -> AllocationProblem:
    """``n`` buffers with starts uniform over ``horizon`` steps (default n/2), log-uniform
    lifetimes in [1, max_life] and sizes in [64 B, 1 MiB], and random alignments.

    With the defaults about 75 buffers are live at a time, like a large training graph.
    """
    rng = np.random.default_rng(seed)
    horizon = horizon or max(1, n // 2)
    start = rng.integers(0, horizon, n)
    life = np.exp(rng.uniform(0, np.log(max_life), n)).astype(np.int64).clip(1, max_life)
    size = np.exp(rng.uniform(np.log(64), np.log(1 << 20), n)).astype(np.int64)
    align = rng.choice(alignments, n)
    buffers = tuple(
        Buffer(f"t{i}", int(s), int(s + d), int(z), int(a))
        for i, (s, d, z, a) in enumerate(zip(start, life, size, align, strict=True))
    )
    return AllocationProblem(buffers, name=f"random-{n}-seed{seed}")


def bench(n: int, seed: int = 0) -> list[dict]:
    """One record per non-searching planner: time, arena, bound, ratio, validity."""
    problem = random_problem(n, seed)
    bound = problem.lower_bound()
    records = []
    for name, spec in PLANNERS.items():
        if spec.searches:
            continue
        plan = run_planner(name, problem)
        violations = validate_plan(problem, plan)
        records.append(
            {
                "planner": name,
                "n": n,
                "seconds": round(plan.solve_seconds, 4),
                "arena": plan.arena_bytes,
                "lower_bound": bound,
                "ratio": round(plan.arena_bytes / bound, 4) if bound else 1.0,
                "valid": not violations,
                "violations": len(violations),
            }
        )
    return records


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="buffers per problem")
    parser.add_argument("--seed", type=int, default=0, help="random problem seed")
    parser.add_argument("--out", default="results/bench_greedy.json", help="JSON output path")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    records = bench(args.n, args.seed)
    write_json(args.out, records)
    print(pd.DataFrame(records).to_string(index=False))
    print(f"wrote {args.out} ({time.perf_counter() - began:.1f} s in all)")
    return records


if __name__ == "__main__":
    main()
