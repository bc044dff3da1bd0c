"""How the greedy offset planners scale: 10^3 to 10^5 buffers, seconds and arena / lower bound.

    python -m trainplan.experiments.bench_scaling [--sizes 1000,10000,100000] [--out results/bench_scaling.json]

Three problems per size n, each of exactly n buffers (the deep ones trimmed to n):

- ``deep_weight`` and ``deep_tensor``: the two pools of a deep MLP's training graph (fully
  connected layers of 64 units with an in-place relu, batch 8, sgd, NNTrainer's execution
  order). Building that graph for 50,000 layers takes minutes, so ``deep_mlp_pools`` writes the
  lifespans down directly; a test checks it equals ``graph_problems`` of the built graph, buffer
  for buffer in problem order, for small depths. The weight pool is every weight alive
  throughout (all overlap, two sizes); the tensor pool nests activations (each lives from its
  forward step to its backward step) around short-lived gradients.
- ``random``: buffers starting uniformly over n steps; 90% live 1-16 steps, 10% 1-1000 steps
  (about 60 live at a time whatever n, as in a training graph); sizes log-uniform in
  [64 B, 1 MiB]; alignments 1, 4, 16 or 64.

Every planner that does not search runs once on each problem (``--planners`` picks some); each
record has planner, problem, n, seconds, arena, lower bound, their ratio and whether the plan
is valid (``validate_plan``). It asserts nothing: the table shows a slow or invalid plan.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.fileio import write_json
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.validate import validate_plan

GREEDY = [name for name, spec in PLANNERS.items() if not spec.searches]
ACTIVATION, WEIGHT, BIAS = 8 * 64 * 4, 64 * 64 * 4, 64 * 4  # bytes, batch 8, float32


def deep_mlp_pools(layers: int) -> dict[str, AllocationProblem]:
    """The weight and tensor pools of ``layers`` fully connected layers (64 units, in-place
    relu, batch 8, sgd, mse) in NNTrainer's order, as ``graph_problems`` builds them."""
    n = layers
    weights = []
    for i in range(n):
        weights.append(Buffer(f"fc{i}:weight", 0, 8 * n + 8, WEIGHT, kind="weight"))
        weights.append(Buffer(f"fc{i}:bias", 0, 8 * n + 8, BIAS, kind="weight"))
    tensors = [Buffer("in:input", 0, 8 * n + 3, ACTIVATION, kind="input")]
    for i in range(n):
        back = 8 * n - 6 * i  # the layer's backward steps count down from the end
        tensors += [
            Buffer(f"fc{i}:out0", 2 * i + 1, back + 1, ACTIVATION, kind="activation"),
            Buffer(f"fc{i}:out0:grad", back - 3, back + (3 if i == 0 else 4), ACTIVATION,
                   kind="derivative"),
            Buffer(f"fc{i}:weight:grad", back + 2, back + 5, WEIGHT, kind="gradient"),
            Buffer(f"fc{i}:bias:grad", back + 2, back + 5, BIAS, kind="gradient"),
        ]
    tensors += [Buffer("loss:label", 2 * n + 1, 2 * n + 4, ACTIVATION, kind="label"),
                Buffer("loss:out0", 2 * n + 1, 2 * n + 2, 32, kind="activation")]
    return {"weight": AllocationProblem(tuple(weights), name="deep:weight"),
            "tensor": AllocationProblem(tuple(tensors), name="deep:tensor")}


def random_problem(n: int, seed: int = 0) -> AllocationProblem:
    """``n`` buffers over ``n`` steps: 90% short-lived (1-16 steps), 10% 1-1000 steps."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, n, n)
    long = rng.random(n) < 0.1
    life = np.where(long, rng.integers(1, 1001, n), rng.integers(1, 17, n))
    size = np.exp(rng.uniform(np.log(64), np.log(1 << 20), n)).astype(np.int64)
    align = rng.choice((1, 4, 16, 64), n)
    return AllocationProblem(tuple(
        Buffer(f"t{i}", int(s), int(s + d), int(z), int(a))
        for i, (s, d, z, a) in enumerate(zip(start, life, size, align, strict=True))
    ), name=f"random-{n}")


def problems(n: int, seed: int = 0) -> dict[str, AllocationProblem]:
    """The three problems of ``n`` buffers each."""
    weight = deep_mlp_pools(-(-n // 2))["weight"]
    tensor = deep_mlp_pools(-(-n // 4))["tensor"]
    return {
        "deep_weight": AllocationProblem(weight.buffers[:n], name=f"deep_weight-{n}"),
        "deep_tensor": AllocationProblem(tensor.buffers[:n], name=f"deep_tensor-{n}"),
        "random": random_problem(n, seed),
    }


def bench(sizes: list[int], planners: list[str], seed: int = 0) -> list[dict]:
    """One record per (size, problem, planner)."""
    records = []
    for n in sizes:
        for label, problem in problems(n, seed).items():
            bound = problem.lower_bound()
            for name in planners:
                plan = run_planner(name, problem)
                records.append({
                    "n": n, "problem": label, "planner": name,
                    "seconds": round(plan.solve_seconds, 3),
                    "arena": plan.arena_bytes, "lower_bound": bound,
                    "ratio": round(plan.arena_bytes / bound, 4) if bound else 1.0,
                    "valid": not validate_plan(problem, plan),
                })
                print(f"{n:>7} {label:<12} {name:<15} {records[-1]['seconds']:>8.3f} s  "
                      f"ratio {records[-1]['ratio']:.3f}  valid {records[-1]['valid']}",
                      flush=True)
    return records


def plot(records: list[dict], path: str) -> None:
    """Seconds against buffers, log-log, one panel per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["problem"] for r in records))
    fig, axes = plt.subplots(1, len(labels), figsize=(4.5 * len(labels), 3.8), sharey=True)
    for ax, label in zip(np.atleast_1d(axes), labels, strict=True):
        for name in dict.fromkeys(r["planner"] for r in records):
            rows = [r for r in records if r["problem"] == label and r["planner"] == name]
            ax.loglog([r["n"] for r in rows], [max(r["seconds"], 1e-3) for r in rows], "o-",
                      label=name)
        ax.axhline(10, color="grey", linestyle=":")
        ax.set_title(label)
        ax.set_xlabel("buffers")
    np.atleast_1d(axes)[0].set_ylabel("seconds")
    np.atleast_1d(axes)[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="buffers per problem, comma-separated")
    parser.add_argument("--planners", default=",".join(GREEDY),
                        help="planners to run, comma-separated (default: every greedy one)")
    parser.add_argument("--seed", type=int, default=0, help="random problem seed")
    parser.add_argument("--out", default="results/bench_scaling.json", help="JSON output path")
    parser.add_argument("--plot", default=None, help="also draw a log-log figure (PNG path)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected integers separated by commas")
    if min(sizes) < 1:
        parser.error("--sizes: every size must be at least 1 buffer")
    planners = args.planners.split(",")
    unknown = [p for p in planners if p not in PLANNERS]
    if unknown:
        parser.error(f"unknown planner(s) {', '.join(unknown)}; valid: {', '.join(PLANNERS)}")
    began = time.perf_counter()
    records = bench(sizes, planners, args.seed)
    write_json(args.out, {"load_average": list(os.getloadavg()), "records": records})
    if args.plot:
        plot(records, args.plot)
    print(f"wrote {args.out} ({time.perf_counter() - began:.1f} s in all)")
    return records


if __name__ == "__main__":
    main()
