"""Benchmark: does the simulator, on this host's runtime-calibrated profile, predict the numpy
runtime's seconds per iteration on models it was not calibrated on?

    python -m experiments.bench_predict [--profile host.json] [--models lenet5,resnet18_cifar]
        [--calibration-models mlp,vgg16_cifar,mobilenetv2_cifar] [--batch 32]
        [--out results/bench_predict.json] [--figures docs/figures]

Without ``--profile`` it first calibrates: the hardware (`trainplan calibrate`), then the
op-class efficiencies and per-op overhead fitted to the runtime's op times on the calibration
models (written to ``--profile-out``). Then, for every held-out model, the runtime runs its
nntrainer_v1 plan on synthetic data (one warm-up iteration, then at least ``--iterations`` and
``--min-seconds``), the simulator runs the same plan on the profile, and the overlay figure goes
to ``--figures``/predict_<model>.png. JSON written atomically; a table printed. Rerun it after
the kernels change: one command recalibrates and remeasures.

Three measured figures per model, each against the prediction: ``measured_s``, the median wall
time per iteration (the acceptance figure); ``uninterrupted_s``, the sum of every EO's median
time (an iteration no preemption hit); ``cpu_s``, the median CPU time of the process per
iteration (with one BLAS thread, the iteration's own work, which other processes on a shared
machine disturb least). ``other_cpus`` says how many CPUs other processes kept busy meanwhile.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import pandas as pd

from experiments.measured import (
    CALIBRATION_MODELS,
    HELD_OUT_MODELS,
    build,
    compare,
    load_note,
    measure_graph,
    runtime_calibration,
)
from experiments.plot_measured import plot_overlay
from planner.fileio import atomic_write_text
from simulator.calibrate import calibrate
from simulator.device import DeviceProfile, load_device

TOLERANCE_PCT = 15.0
TABLE = ["model", "predicted_s", "measured_s", "error_pct", "uninterrupted_s",
         "error_uninterrupted_pct", "cpu_s", "error_cpu_pct", "iterations", "other_cpus"]


def host_profile(args: argparse.Namespace) -> tuple[DeviceProfile, dict]:
    """The profile to predict with: the one given, or a fresh hardware + runtime calibration."""
    if args.profile:
        return load_device(args.profile), {"profile": args.profile, "calibrated": False}
    base = calibrate(args.dir, storage_bytes=64 * 2**20, name="host", progress=False)
    profile, fit, records = runtime_calibration(
        base, args.calibration_models.split(","), batch=args.batch,
        iterations=args.calibration_iterations, threads=args.blas_threads or None)
    os.makedirs(os.path.dirname(os.path.abspath(args.profile_out)), exist_ok=True)
    atomic_write_text(args.profile_out, profile.to_json())
    return profile, {"profile": args.profile_out, "calibrated": True, "fit": fit.to_dict(),
                     "calibration": records}


def predict(model: str, profile: DeviceProfile, args: argparse.Namespace) -> dict:
    """Measure one held-out model, simulate its plan on ``profile``, draw the overlay."""
    graph = build(model, args.batch)
    m = measure_graph(graph, iterations=args.iterations, min_seconds=args.min_seconds,
                      threads=args.blas_threads or None)
    tl, rec = compare(graph, m, profile)
    figure = os.path.join(args.figures, f"predict_{model}.png")
    rows = plot_overlay(tl, m.events, figure, measured_seconds=rec["measured_s"],
                        note=load_note(m))
    by_class = rows.groupby("op_class")[["predicted_s", "measured_s"]].sum().round(6)
    within = abs(rec["error_pct"]) <= TOLERANCE_PCT
    return {**rec, f"within_{TOLERANCE_PCT:g}pct": within, "figure": figure,
            "by_op_class": by_class.to_dict("index")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="predict with this profile (default: "
                        "calibrate first)")
    parser.add_argument("--profile-out", default="results/host_runtime.json",
                        help="where a fresh calibration is written")
    parser.add_argument("--dir", default=".", help="directory whose storage calibrate measures")
    parser.add_argument("--models", default=",".join(HELD_OUT_MODELS), help="held-out models")
    parser.add_argument("--calibration-models", default=",".join(CALIBRATION_MODELS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=5, help="recorded iterations per "
                        "held-out model, at least (default 5)")
    parser.add_argument("--min-seconds", type=float, default=20.0, help="keep recording up to "
                        "50 iterations until this many seconds (default 20)")
    parser.add_argument("--calibration-iterations", type=int, default=3)
    parser.add_argument("--blas-threads", type=int, default=1, help="0: as configured")
    parser.add_argument("--out", default="results/bench_predict.json", help="JSON output")
    parser.add_argument("--figures", default="docs/figures", help="figure directory")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    profile, calibration = host_profile(args)
    rows = [predict(m, profile, args) for m in args.models.split(",")]
    result = {"when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "device": profile.name, "gemm_gflops": round(profile.gemm_flops / 1e9, 2),
              "efficiency": profile.efficiency, "op_overhead_us": profile.op_overhead_s * 1e6,
              "tolerance_pct": TOLERANCE_PCT, **calibration, "results": rows,
              "seconds": round(time.perf_counter() - began, 1)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2, default=str) + "\n")
    for rec in calibration.get("calibration", []):
        print(f"calibration {rec['model']}: {rec['measured_s']:.4g} s/it, fit "
              f"{rec['fitted_error_pct']:+.1f}%")
    print(pd.DataFrame(rows)[TABLE].to_string(index=False))
    print(f"wrote {args.out} and {', '.join(r['figure'] for r in rows)} "
          f"({result['seconds']:.0f} s in all)")
    return result


if __name__ == "__main__":
    main()
