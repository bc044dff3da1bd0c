"""Benchmark: lenet5 learns the handwritten digits, unplanned, planned and swapped, to the same
bits.

    python -m trainplan.experiments.bench_learning [--epochs 10] [--out results/bench_learning.json]

Trains lenet5 (batch 32, adam, seed 0) on scikit-learn's digits for ``--epochs`` three ways —
planned without a budget, swapped under half that plan's arena, and the unplanned reference —
and records per run the test accuracy, the per-epoch loss and accuracy, seconds per iteration,
bytes swapped and the weights' SHA-256, plus whether the claims hold: test accuracy at least
95 % and the three runs' weights identical. The command-line test of the same claim is marked
slow (tests/experiments/test_cli_train.py); CI runs a one-epoch version of it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile

from trainplan.experiments.training import run_training, train_record
from trainplan.planner.build import build_training_graph
from trainplan.planner.fileio import write_json
from trainplan.planner.plan_training import plan_training
from trainplan.planner.zoo import get_model

MIN_TEST_ACCURACY = 0.95


def runs(epochs: int, batch: int = 32, seed: int = 0) -> list[dict]:
    """The plain, swapped and reference runs' records (as `trainplan train --json` prints)."""
    graph = build_training_graph(get_model("lenet5", batch=batch))
    plain = plan_training(graph, seed=seed)
    swapped = plan_training(graph, budget=plain.arena_bytes // 2, seed=seed)
    records = []
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as swap_dir:
        for name, plan in (("planned", plain), ("swapped", swapped), ("reference", None)):
            report = run_training(graph, plan, dataset="digits", epochs=epochs, seed=seed,
                                  swap_dir=swap_dir if plan is swapped else None)
            records.append({"run": name, **train_record(graph, plan, report)})
    return records


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    parser.add_argument("--out", default="results/bench_learning.json",
                        help="the JSON result (default results/bench_learning.json)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    records = runs(args.epochs)
    result = {
        "benchmark": "bench_learning", "model": "lenet5", "dataset": "digits",
        "epochs": args.epochs, "when": datetime.datetime.now(datetime.UTC).isoformat(),
        "load_average_before": [round(v, 2) for v in load],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "runs": records,
        "min_test_accuracy": min(r["test_accuracy"] for r in records),
        "learns": all(r["test_accuracy"] >= MIN_TEST_ACCURACY for r in records),
        "same_bits": len({r["weights_sha256"] for r in records}) == 1,
    }
    write_json(args.out, result)
    for r in records:
        print(f"{r['run']:<9} arena {r['arena_bytes']:>10,} B  test accuracy "
              f"{r['test_accuracy']:.4f}  {r['iteration_seconds'] * 1e3:.1f} ms/it  "
              f"read {r['total_bytes_read']:,} B  {r['weights_sha256'][:8]}")
    print(f"learns (>= {MIN_TEST_ACCURACY:.0%}): {result['learns']}; same bits: "
          f"{result['same_bits']}")
    return result


if __name__ == "__main__":
    main()
