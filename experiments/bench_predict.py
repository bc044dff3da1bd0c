"""Benchmark: does the simulator, on this host's runtime-calibrated profile, predict the numpy
runtime's seconds per iteration on models it was not calibrated on?

    python -m trainplan.experiments.bench_predict [--profile host.json] [--models lenet5,resnet18_cifar]
        [--calibration-models mlp,vgg16_cifar,mobilenetv2_cifar] [--batch 32] [--rounds 3]
        [--out results/bench_predict.json] [--figures docs/figures]

Without ``--profile`` it first calibrates the hardware (`trainplan calibrate`). Then, in
``--rounds`` rounds, the runtime runs every calibration model and every held-out model in turn,
each its nntrainer_v1 plan on synthetic data (one warm-up iteration, then at least
``--iterations`` and ``--min-seconds``, however small the model): interleaved, so a machine
whose speed drifts over the minutes (a virtual machine's CPU does, by ±10%) drifts for both
sides alike. The op-class
efficiencies, the cost per strided window row and the per-op overhead are fitted to the
calibration models' op times (the profile is written to ``--profile-out``); the simulator runs
each held-out model's plan on that profile, and the overlay figure goes to
``--figures``/predict_<model>.png. JSON written atomically; a table printed. Rerun it after
the kernels change: one command recalibrates and remeasures.

Three measured figures per model, each against the prediction: ``measured_s``, the median wall
time per iteration over every round (the acceptance figure); ``uninterrupted_s``, the sum of
every EO's median time (an iteration no preemption hit); ``cpu_s``, the median CPU time of the
process per iteration (with one BLAS thread, the iteration's own work, which other processes
on a shared machine disturb least); the last two are medians of the rounds' figures.
``other_cpus`` says how many CPUs other processes kept busy meanwhile (the most of any round).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time

import networkx as nx
import pandas as pd

from trainplan.experiments.measured import (
    CALIBRATION_MODELS,
    HELD_OUT_MODELS,
    build,
    compare,
    error_pct,
    fit_measured,
    load_note,
    measure_graph,
)
from trainplan.experiments.plot_measured import lined_up, plot_overlay
from trainplan.experiments.plots import use_file_backend
from trainplan.planner.fileio import atomic_write_text
from trainplan.runtime.measure import Measurement
from trainplan.simulator.calibrate import calibrate
from trainplan.simulator.device import DeviceProfile, load_device

TOLERANCE_PCT = 15.0
TABLE = ["model", "predicted_s", "measured_s", "error_pct", "uninterrupted_s",
         "error_uninterrupted_pct", "cpu_s", "error_cpu_pct", "iterations", "other_cpus"]


def measure_rounds(models: list[str], args: argparse.Namespace,
                   ) -> dict[str, tuple[nx.DiGraph, list[Measurement]]]:
    """Every model measured once per round, the models in turn within a round."""
    runs = {m: (build(m, args.batch), []) for m in models}
    for _ in range(args.rounds):
        for graph, measured in runs.values():
            measured.append(measure_graph(graph, iterations=args.iterations,
                                          min_seconds=args.min_seconds,
                                          max_iterations=args.max_iterations,
                                          threads=args.blas_threads or None))
    return runs


def host_profile(args: argparse.Namespace, runs: dict) -> tuple[DeviceProfile, dict]:
    """The profile to predict with: the one given, or the hardware calibration fitted to the
    calibration models' runs."""
    if args.profile:
        return load_device(args.profile), {"profile": args.profile, "calibrated": False}
    base = calibrate(args.dir, storage_bytes=64 * 2**20, name="host", progress=False)
    profile, fit, records = fit_measured(
        base, [(runs[m][0], x) for m in args.calibration_models.split(",") for x in runs[m][1]],
        threads=args.blas_threads or None)
    os.makedirs(os.path.dirname(os.path.abspath(args.profile_out)), exist_ok=True)
    atomic_write_text(args.profile_out, profile.to_json())
    return profile, {"profile": args.profile_out, "calibrated": True, "fit": fit.to_dict(),
                     "calibration": records}


def predict(model: str, graph: nx.DiGraph, rounds: list[Measurement], profile: DeviceProfile,
            args: argparse.Namespace) -> dict:
    """Simulate a held-out model's plan on ``profile`` against its measured rounds; draw the
    overlay of the round nearest the median of all."""
    pooled = [t for m in rounds for t in m.summary.iteration_seconds]
    median = statistics.median(pooled)
    shown = min(rounds, key=lambda m: abs(m.summary.seconds_per_iteration - median))
    tl, rec = compare(graph, shown, profile)
    rec.update(measured_s=round(median, 6), iterations=len(pooled),
               uninterrupted_s=round(statistics.median(
                   m.summary.uninterrupted_seconds for m in rounds), 6),
               cpu_s=round(statistics.median(m.summary.cpu_seconds for m in rounds), 6),
               other_cpus=max(m.summary.other_cpus for m in rounds),
               rounds_measured_s=[round(m.summary.seconds_per_iteration, 6) for m in rounds])
    for key in ("measured", "uninterrupted", "cpu"):
        suffix = "" if key == "measured" else f"_{key}"
        rec[f"error{suffix}_pct"] = error_pct(rec["predicted_s"], rec[f"{key}_s"])
    figure = os.path.join(args.figures, f"predict_{model}.png")
    plot_overlay(tl, shown.events, figure, measured_seconds=rec["measured_s"],
                 note=f"{load_note(shown)} · the round nearest the median of {len(rounds)}")
    rows = lined_up(tl, shown.events)
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
    parser.add_argument("--rounds", type=int, default=3, help="measure every model this "
                        "many times, the models in turn (default 3)")
    parser.add_argument("--iterations", type=int, default=3, help="recorded iterations per "
                        "model and round, at least (default 3)")
    parser.add_argument("--min-seconds", type=float, default=6.0, help="keep recording until "
                        "this many seconds (default 6, per model and round): a millisecond "
                        "iteration needs thousands to average over the machine's drift")
    parser.add_argument("--max-iterations", type=int, default=5000,
                        help="but no more iterations than this per model and round")
    parser.add_argument("--blas-threads", type=int, default=1, help="0: as configured")
    parser.add_argument("--out", default="results/bench_predict.json", help="JSON output")
    parser.add_argument("--figures", default="docs/figures", help="figure directory")
    args = parser.parse_args(argv)
    use_file_backend()
    began = time.perf_counter()
    held = args.models.split(",")
    both = sorted(set(held) & set(args.calibration_models.split(",")))
    if both and not args.profile:
        parser.error(f"{', '.join(both)}: a held-out model cannot be a calibration model too")
    models = held if args.profile else args.calibration_models.split(",") + held
    runs = measure_rounds(list(dict.fromkeys(models)), args)
    profile, calibration = host_profile(args, runs)
    rows = [predict(m, *runs[m], profile, args) for m in held]
    result = {"when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "device": profile.name, "gemm_gflops": round(profile.gemm_flops / 1e9, 2),
              "efficiency": profile.efficiency, "op_overhead_us": profile.op_overhead_s * 1e6,
              "gather_row_ns": profile.gather_row_s * 1e9, "rounds": args.rounds,
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
