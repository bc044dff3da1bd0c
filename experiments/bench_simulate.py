"""Time the device simulator on 10,000-op iterations (target: under 1 s each).

    python -m trainplan.experiments.bench_simulate [--ops 10000] [--device raspberry-pi-4]
                                         [--out results/bench_simulate.json]

Cases: the event engine alone on synthetic steps, without and with transfers (one eviction and
one prefetch per 10 steps); ``simulate`` on a deep MLP training graph with about ``--ops``
ops, planned by nntrainer_v1; and the same graph swapped by belady under half its lower bound
(graph build and planning are timed apart and not counted). Best of ``--repeat`` runs; JSON
records written atomically; a table printed. It asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from trainplan.planner.build import build_training_graph
from trainplan.planner.fileio import write_json
from trainplan.planner.graph import ops
from trainplan.planner.plan_training import plan_training
from trainplan.planner.spec import LayerDef, ModelSpec
from trainplan.simulator.device import load_device
from trainplan.simulator.engine import Step, Transfer
from trainplan.simulator.simulate import simulate
from trainplan.simulator.timeline import simulate_events


def synthetic_steps(n: int, seed: int = 0) -> list[Step]:
    """``n`` steps, one per EO, with log-uniform flops (1e3..1e9) and bytes (1 KiB..16 MiB)."""
    rng = np.random.default_rng(seed)
    flops = np.exp(rng.uniform(np.log(1e3), np.log(1e9), n))
    nbytes = np.exp(rng.uniform(np.log(2**10), np.log(2**24), n)).astype(np.int64)
    classes = rng.choice(["gemm", "conv", "elementwise", "optimizer"], n)
    return [Step(i, layer=f"l{i}", op_class=str(c), flops=float(f), bytes_touched=int(b),
                 reads=(f"t{i}",), writes=(f"t{i + 1}",), name=f"op{i}")
            for i, (f, b, c) in enumerate(zip(flops, nbytes, classes, strict=True))]


def synthetic_transfers(n: int, seed: int = 0) -> list[Transfer]:
    """One eviction and one prefetch per 10 steps: tensor ``t{i}`` out after EO i, back 3 to
    8 EOs before a use 20-200 EOs later."""
    rng = np.random.default_rng(seed + 1)
    out = []
    for i in range(0, n - 210, 10):
        use, size = i + int(rng.integers(20, 200)), int(rng.integers(2**12, 2**22))
        out.append(Transfer(f"t{i}", "write", size, i, use - 8))
        out.append(Transfer(f"t{i}", "read", size, use - int(rng.integers(3, 9)), use))
    return out


def deep_mlp(n_ops: int, batch: int = 8) -> ModelSpec:
    """fc+relu pairs (6 ops each) until the training graph has about ``n_ops`` ops."""
    layers, prev = [LayerDef("in", "input", {"input_shape": (64,)})], "in"
    for i in range(max(1, n_ops // 6)):
        layers += [LayerDef(f"fc{i}", "fully_connected", {"unit": 64}, (prev,)),
                   LayerDef(f"relu{i}", "activation", {"activation": "relu"}, (f"fc{i}",))]
        prev = f"relu{i}"
    layers += [LayerDef("out", "fully_connected", {"unit": 10}, (prev,)),
               LayerDef("loss", "cross_softmax", {}, ("out",))]
    return ModelSpec(f"deep_mlp_{n_ops}", tuple(layers), batch=batch, optimizer="sgd")


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def _record(case, tl, seconds, **extra) -> dict:
    s = tl.summary
    return {"case": case, "ops": s.ops, "transfers": len(tl.transfers),
            "seconds": round(seconds, 4),
            "us_per_op": round(seconds / max(1, s.ops) * 1e6, 2), "under_1s": seconds < 1.0,
            "simulated_iteration_s": round(s.iteration_seconds, 3),
            "stall_s": round(s.total_stall_seconds, 3), **extra}


def bench(n_ops: int = 10_000, device: str = "raspberry-pi-4", repeat: int = 3,
          swap: bool = True) -> list[dict]:
    """One record per case (see the module docstring)."""
    dev = load_device(device)
    steps = synthetic_steps(n_ops)
    records = []
    for name, transfers in (("engine", []), ("engine+transfers", synthetic_transfers(n_ops))):
        sec, tl = _best(lambda t=transfers: simulate_events(steps, t, dev), repeat)
        records.append(_record(name, tl, sec))
    began = time.perf_counter()
    graph = build_training_graph(deep_mlp(n_ops))
    build_s = time.perf_counter() - began
    plan = plan_training(graph)
    sec, tl = _best(lambda: simulate(graph, plan, dev), repeat)
    records.append(_record("simulate(graph)", tl, sec, build_s=round(build_s, 3),
                           plan_s=round(plan.provenance.solve_seconds, 3)))
    if swap:
        began = time.perf_counter()
        swapped = plan_training(graph, budget=plan.bounds.lower_bound_bytes // 2)
        plan_s = time.perf_counter() - began
        sec, tl = _best(lambda: simulate(graph, swapped, dev), repeat)
        records.append(_record("simulate(graph, swap)", tl, sec, build_s=round(build_s, 3),
                               plan_s=round(plan_s, 3)))
    assert all(r["ops"] >= n_ops * 0.99 for r in records[2:]), sum(1 for _ in ops(graph))
    return records


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000, help="ops per iteration")
    parser.add_argument("--device", default="raspberry-pi-4", help="device profile")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (best counts)")
    parser.add_argument("--no-swap", action="store_true", help="skip the swap case")
    parser.add_argument("--out", default="results/bench_simulate.json", help="JSON output")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    records = bench(args.ops, args.device, args.repeat, swap=not args.no_swap)
    write_json(args.out, records)
    print(pd.DataFrame(records).to_string(index=False))
    print(f"wrote {args.out} ({time.perf_counter() - began:.1f} s in all)")
    return records


if __name__ == "__main__":
    main()
