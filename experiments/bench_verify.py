"""Benchmark: the independent validator over every plan of every planner in every mode, on
random models (planner/random_spec.py) and the zoo; records how many plans it checked.

    python -m trainplan.experiments.bench_verify [--graphs 200] [--seed 0] [--searching] \
        [--out results/bench_verify.json]

Each random model is built natively and NNTrainer-compatible, in place and not; each graph is
planned under both orders by every offset planner without a budget, and by every swap planner
at three budgets (the minimum, half way to the lower bound, the lower bound) with the best
greedy offsets. ``--searching`` adds the exact and cpsat offset planners and the optimal swap
planner (CP-SAT, 1 s each). Exit status 1 when any plan fails the validator.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import Infeasible
from trainplan.planner.fileio import write_json
from trainplan.planner.offsets import PLANNERS
from trainplan.planner.order import ORDERS
from trainplan.planner.plan_training import plan_training
from trainplan.planner.random_spec import RandomChooser, random_spec
from trainplan.planner.swap import SWAP_PLANNERS
from trainplan.planner.verify import verify_plan
from trainplan.planner.zoo import MODELS, get_model

FRACTIONS = (0.0, 0.5, 1.0)  # of the way from the minimum budget to the lower bound


def plans(graph, searching: bool):
    """(label, plan or None when infeasible) for every planner, order and budget."""
    offsets = [n for n, s in PLANNERS.items() if searching or not s.searches]
    swaps = [n for n in SWAP_PLANNERS if searching or n != "optimal"]
    search = {"time_limit": 1.0}
    for order in ORDERS:
        for name in offsets:
            options = search if PLANNERS[name].searches else {}
            yield f"{order} {name}", plan_training(graph, order=order, offsets=name, **options)
        bounds = plan_training(graph, order=order, offsets="basic").bounds
        for fraction in FRACTIONS:
            budget = max(1, int(bounds.min_budget_bytes + fraction
                                * (bounds.lower_bound_bytes - bounds.min_budget_bytes)))
            for swap in swaps:
                try:
                    plan = plan_training(graph, order=order, budget=budget, swap=swap,
                                         **(search if swap == "optimal" else {}))
                except Infeasible:
                    plan = None
                yield f"{order} {swap} at {fraction:g}", plan


def graphs(n: int, seed: int):
    """(name, graph): the zoo at batch 1, then ``n`` random models, each in four modes."""
    for model in MODELS:
        for compat in (False, True):
            yield f"{model}{' compat' if compat else ''}", build_training_graph(
                get_model(model, batch=1), compat=compat)
    for i in range(seed, seed + n):
        spec = random_spec(RandomChooser(random.Random(i)))
        for compat in (False, True):
            for inplace in (True, False):
                mode = ("compat" if compat else "native") + ("" if inplace else " no-inplace")
                yield f"random {i} {mode}", build_training_graph(spec, compat=compat,
                                                                 inplace=inplace)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=200, help="random models (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="first random model's seed")
    parser.add_argument("--searching", action="store_true",
                        help="also exact, cpsat and optimal (CP-SAT, 1 s each)")
    parser.add_argument("--out", default="results/bench_verify.json")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    checked, infeasible, failures = Counter(), Counter(), []
    n_graphs = 0
    for name, graph in graphs(args.graphs, args.seed):
        n_graphs += 1
        for label, plan in plans(graph, args.searching):
            kind = label.split(" at ")[0].split(" ", 1)[1]
            if plan is None:
                infeasible[label.split(" ", 1)[1]] += 1  # per swap planner and budget
                continue
            checked[kind] += 1
            errors = verify_plan(graph, plan)
            if errors:
                failures.append({"graph": name, "plan": label, "errors": errors[:3]})
    record = {"graphs": n_graphs, "random_models": args.graphs, "seed": args.seed,
              "searching": args.searching, "plans_checked": sum(checked.values()),
              "infeasible_budgets": sum(infeasible.values()), "failures": len(failures),
              "by_planner": dict(sorted(checked.items())),
              "infeasible_by_budget": dict(sorted(infeasible.items())),
              "first_failures": failures[:20],
              "seconds": round(time.perf_counter() - began, 1)}
    write_json(args.out, record)
    print(f"{record['plans_checked']:,} plans of {n_graphs:,} graphs checked, "
          f"{len(failures)} failed, {record['infeasible_budgets']:,} budgets infeasible, "
          f"{record['seconds']} s")
    for f in failures[:5]:
        print(f"  {f['graph']}: {f['plan']}: {f['errors'][0]}")
    return record


if __name__ == "__main__":
    sys.exit(1 if main()["failures"] else 0)
