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

With ``--swap`` the held-out models run swapping through to storage (``--swap-through``): each
under two budgets (``--swap-fractions`` of the way from its minimum budget to its lower bound)
with each of the lookahead and belady planners. Every such run is measured between two timings
of the storage at its plan's request sizes (simulator/calibrate_storage.py: a shared disk's
fsync latency moves with other jobs from minute to minute), and simulated on the fitted
profile with that storage, round by round; the median of the rounds' predictions is held
against the median of their measurements (one timing of a drifting disk misleads one round's
prediction, as one slow run would mislead a single measurement): seconds per iteration (within
15%), stall seconds (within 25% or 50 ms) and bytes read and written per iteration (exactly
equal, every recorded iteration of every round), and
one storage-track overlay per model (``--figures``/predict_swap_<model>.png); and, to judge the
storage model apart from the computing on a shared machine, the same simulation with every op
taking its measured median time (``alone_*``), and that with the storage the run's own
transfers saw (``seen_*``: the storage's drift between its timing and the run left out, so
what remains is the storage model's: one FIFO channel, issue and deadline EOs, stalls). The
compute
terms are then fitted to the calibration models' wall time per op (``--fit-clock``): the
acceptance is wall time, stalls are wall time, and on a shared machine the calibration rounds,
interleaved with the swap runs, see the same load.
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
    gemm_peak,
    load_note,
    measure_graph,
)
from trainplan.experiments.plot_measured import lined_up, plot_overlay
from trainplan.experiments.plots import use_file_backend
from trainplan.experiments.swap_lineup import (
    bytes_lined_up,
    storage_model_alone,
    storage_seen,
)
from trainplan.planner.fileio import atomic_write_text
from trainplan.planner.plan_training import plan_training
from trainplan.runtime.measure import Measurement
from trainplan.runtime.session import SessionOptions
from trainplan.simulator.calibrate import calibrate, with_storage
from trainplan.simulator.calibrate_storage import (
    INTERFERENCE_KEYS,
    STORAGE_KEYS,
    mean_storage,
    measure_swap_storage,
    measure_transfer_interference,
)
from trainplan.simulator.device import DeviceProfile, load_device

TOLERANCE_PCT = 15.0
STALL_TOLERANCE_PCT, STALL_TOLERANCE_S = 25.0, 0.05
SWAP_PLANNERS = ("lookahead", "belady")
# per round of a swap case: its own prediction beside its measurement
ROUND_KEYS = ("measured_s", "predicted_s", "stall_s", "predicted_stall_s", "error_pct")
SWAP_TABLE = ["model", "swap", "budget_bytes", "predicted_s", "measured_s", "error_pct",
              "predicted_stall_s", "stall_s", "stall_ok", "bytes_equal", "alone_error_pct",
              "alone_stall_ok", "seen_error_pct", "seen_stall_ok", "iterations", "other_cpus"]
TABLE = ["model", "predicted_s", "measured_s", "error_pct", "uninterrupted_s",
         "error_uninterrupted_pct", "cpu_s", "error_cpu_pct", "iterations", "other_cpus"]


def measure_rounds(models: list[str], args: argparse.Namespace,
                   ) -> dict[str, tuple[nx.DiGraph, list[Measurement]]]:
    """Every model measured once per round, the models in turn within a round."""
    runs = {m: (build(m, args.batch), []) for m in models}
    for _ in range(args.rounds):
        measure_round(runs, args)
    return runs


def measure_round(runs: dict[str, tuple[nx.DiGraph, list[Measurement]]],
                  args: argparse.Namespace, progress: bool = True) -> None:
    """One round: the GEMM peak, then each model measured once, appended to its list."""
    for graph, measured in runs.values():
        args.peaks.append(gemm_peak(args.blas_threads or None))
        measured.append(measure_graph(graph, iterations=args.iterations,
                                      min_seconds=args.min_seconds,
                                      max_iterations=args.max_iterations,
                                      threads=args.blas_threads or None, progress=progress))


def host_profile(args: argparse.Namespace, runs: dict) -> tuple[DeviceProfile, dict]:
    """The profile to predict with: the one given, or the hardware calibration fitted to the
    calibration models' runs."""
    if args.profile:
        return load_device(args.profile), {"profile": args.profile, "calibrated": False}
    base = calibrate(args.dir, storage_bytes=64 * 2**20, name="host", progress=False)
    profile, fit, records = fit_measured(
        base, [(runs[m][0], x) for m in args.calibration_models.split(",") for x in runs[m][1]],
        threads=args.blas_threads or None, peaks=args.peaks,
        clock=args.fit_clock or ("wall" if args.swap else None))
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


def swap_cases(models: list[str], args: argparse.Namespace) -> list[dict]:
    """Each held-out model planned under each budget fraction with each swap planner."""
    cases = []
    for model in models:
        graph = build(model, args.batch)
        bounds = plan_training(graph).bounds
        for fraction in (float(f) for f in args.swap_fractions.split(",")):
            budget = int(bounds.min_budget_bytes
                         + fraction * (bounds.lower_bound_bytes - bounds.min_budget_bytes))
            for swap in SWAP_PLANNERS:
                plan = plan_training(graph, budget=budget, swap=swap)
                cases.append({"model": model, "swap": swap, "fraction": fraction,
                              "budget_bytes": budget, "graph": graph, "plan": plan,
                              "rounds": []})
    return cases


def measure_swap_case(case: dict, args: argparse.Namespace) -> None:
    """One measured run of a swap case between two timings of its storage requests."""
    plan = case["plan"]
    sizes = sorted({e.nbytes for e in plan.evictions if e.write}
                   | {p.nbytes for p in plan.prefetches if p.read})
    before = measure_swap_storage(args.swap_dir, sizes, rounds=3,
                                  min_seconds=args.storage_seconds)
    m = measure_graph(case["graph"], plan, iterations=args.swap_iterations,
                      min_seconds=args.swap_min_seconds, max_iterations=args.max_iterations,
                      threads=args.blas_threads or None, progress=False,
                      options=SessionOptions(swap_dir=args.swap_dir, swap_through=True))
    after = measure_swap_storage(args.swap_dir, sizes, rounds=3,
                                 min_seconds=args.storage_seconds)
    case["rounds"].append((m, mean_storage(before, after)))


def stall_within(predicted: float, measured: float) -> bool:
    """The acceptance for stalls: within STALL_TOLERANCE_PCT of the measured stall or within
    STALL_TOLERANCE_S seconds of it."""
    gap = abs(predicted - measured)
    return bool(gap <= STALL_TOLERANCE_S or gap <= STALL_TOLERANCE_PCT / 100 * measured)


def interference(args: argparse.Namespace) -> dict:
    """What swap requests take from computing, the mean of the probes taken each round."""
    return mean_storage(*args.interference)


def predict_swap(case: dict, profile: DeviceProfile, args: argparse.Namespace) -> dict:
    """Simulate a swap case on ``profile``, each round with the storage timed beside it; the
    medians over the rounds of predicted and of measured seconds (and stalls) are compared,
    and the round of median measured time is the one lined up and drawn."""
    rounds = sorted(case["rounds"], key=lambda r: r[0].summary.seconds_per_iteration)
    taken = interference(args)
    records, equal = [], []
    for m_i, storage_i in rounds:
        timed = {**storage_i, **{k: taken[k] for k in INTERFERENCE_KEYS}}
        device_i = with_storage(profile, timed, "timed beside the measurement")
        tl_i, rec_i = compare(case["graph"], m_i, device_i)
        records.append(rec_i)
        equal.append(bool(bytes_lined_up(tl_i, m_i.transfers, m_i.summary.iterations)[
            "equal"].all()))
        if len(records) == (len(rounds) + 1) // 2:  # the round of median measured time
            m, storage, device, tl, rec = m_i, timed, device_i, tl_i, dict(rec_i)
    for key in ("predicted_s", "measured_s", "predicted_stall_s", "stall_s"):
        rec[key] = round(statistics.median(r[key] for r in records), 6)
    rec.update(swap=case["swap"], fraction=case["fraction"], budget_bytes=case["budget_bytes"],
               storage={k: storage[k] for k in (*STORAGE_KEYS, *INTERFERENCE_KEYS)},
               rounds=[{k: r[k] for k in ROUND_KEYS} for r in records],
               error_pct=error_pct(rec["predicted_s"], rec["measured_s"]),
               stall_error_pct=error_pct(rec["predicted_stall_s"], rec["stall_s"]),
               stall_ok=stall_within(rec["predicted_stall_s"], rec["stall_s"]),
               bytes_equal=all(equal),
               transfers=int(len(m.transfers) // max(1, m.summary.iterations)))
    rec["within_15pct"] = abs(rec["error_pct"]) <= TOLERANCE_PCT
    # the storage model alone: the measured op times in place of the profile's
    alone = storage_model_alone(case["graph"], case["plan"], device, m.events)
    rec.update(alone_predicted_s=round(alone["seconds"], 6),
               alone_error_pct=error_pct(alone["seconds"], rec["measured_s"]),
               alone_predicted_stall_s=round(alone["stall_s"], 6),
               alone_stall_ok=stall_within(alone["stall_s"], rec["stall_s"]))
    # and with the storage the run's own transfers saw (the storage's drift left out too)
    seen = storage_seen(m.transfers)
    both = storage_model_alone(case["graph"], case["plan"],
                               with_storage(device, {**storage, **seen}), m.events)
    rec.update(seen_storage=seen, seen_predicted_s=round(both["seconds"], 6),
               seen_error_pct=error_pct(both["seconds"], rec["measured_s"]),
               seen_predicted_stall_s=round(both["stall_s"], 6),
               seen_stall_ok=stall_within(both["stall_s"], rec["stall_s"]))
    if case["fraction"] == min(float(f) for f in args.swap_fractions.split(",")) \
            and case["swap"] == SWAP_PLANNERS[-1]:
        figure = os.path.join(args.figures, f"predict_swap_{case['model']}.png")
        plot_overlay(tl, m.events, figure, measured_seconds=rec["measured_s"],
                     note=load_note(m), transfers=m.transfers)
        rec["figure"] = figure
    return rec


def run_swap(args: argparse.Namespace, held: list[str]) -> tuple[list, list]:
    """Rounds of the calibration models and every swap case in turn; the fitted profile
    predicts each case. Returns the rows and the calibration record."""
    cases = swap_cases(held, args)
    calibration_models = args.calibration_models.split(",")
    runs = {m: (build(m, args.batch), []) for m in calibration_models}
    os.makedirs(args.swap_dir, exist_ok=True)
    for _ in range(args.rounds):
        measure_round(runs, args, progress=False)
        args.interference.append(measure_transfer_interference(args.swap_dir))
        for case in cases:
            measure_swap_case(case, args)
    profile, calibration = host_profile(args, runs)
    return [predict_swap(c, profile, args) for c in cases], calibration, profile


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
    parser.add_argument("--swap", action="store_true", help="the held-out models swapping "
                        "through to storage (see above) instead of unswapped")
    parser.add_argument("--swap-fractions", default="0.4,0.8", help="budgets, as fractions "
                        "of the way from the minimum budget to the lower bound")
    parser.add_argument("--swap-dir", default=".swap", help="directory of the swap files "
                        "and the storage timings (on the storage to predict)")
    parser.add_argument("--swap-iterations", type=int, default=3,
                        help="recorded iterations per swap case and round, at least")
    parser.add_argument("--fit-clock", choices=["cpu", "wall"], default=None,
                        help="fit the calibration models' CPU or wall time per op (default: "
                        "CPU; wall with --swap, whose stalls and acceptance are wall time and "
                        "whose runs share the machine's load with the calibration models)")
    parser.add_argument("--swap-min-seconds", type=float, default=2.0,
                        help="keep recording a swap case until this many seconds")
    parser.add_argument("--storage-seconds", type=float, default=0.5,
                        help="time the storage before and after each swap run for at least "
                        "this many seconds (default 0.5): this disk's latency drifts from "
                        "second to second, and a window averages it as the run does")
    args = parser.parse_args(argv)
    if not 0 <= args.storage_seconds <= 60:
        parser.error(f"--storage-seconds must be between 0 and 60, got {args.storage_seconds}")
    args.peaks = []  # GEMM probes taken between the measurements
    args.interference = []  # what swap requests take from computing, once a round
    use_file_backend()
    began = time.perf_counter()
    held = args.models.split(",")
    both = sorted(set(held) & set(args.calibration_models.split(",")))
    if both and not args.profile:
        parser.error(f"{', '.join(both)}: a held-out model cannot be a calibration model too")
    if args.swap:
        if args.profile:
            parser.error("--swap fits the profile to calibration models measured between the "
                         "swap runs; drop --profile")
        rows, calibration, profile = run_swap(args, held)
    else:
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
    print(pd.DataFrame(rows)[SWAP_TABLE if args.swap else TABLE].to_string(index=False))
    print(f"wrote {args.out} and {', '.join(r['figure'] for r in rows if 'figure' in r)} "
          f"({result['seconds']:.0f} s in all)")
    return result


if __name__ == "__main__":
    main()
