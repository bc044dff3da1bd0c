"""The simulator against the numpy runtime: measure models, fit a host profile, compare.

``runtime_calibration`` runs the runtime on calibration models (never the held-out ones the
prediction is tested on) and fits the profile's efficiencies and per-op overhead to their op
times; ``compare`` simulates a measured graph's own plan on a profile and lines up the two.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import networkx as nx
from tqdm import tqdm

from trainplan.experiments.swap_lineup import SETTLE_ITERATIONS, simulated_iteration
from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import TrainplanError
from trainplan.planner.plan_training import plan_training
from trainplan.planner.training_plan import TrainingPlan
from trainplan.planner.zoo import get_model
from trainplan.runtime.measure import Measurement, measure
from trainplan.runtime.session import SessionOptions
from trainplan.simulator.calibrate import measure_gemm, with_gemm_peak
from trainplan.simulator.calibrate_runtime import RuntimeFit, fit_runtime, op_times, with_fit
from trainplan.simulator.device import DeviceProfile
from trainplan.simulator.simulate import simulate
from trainplan.simulator.timeline import Timeline

# Calibration models cover the op classes of the held-out ones (dense and 3x3 convolutions,
# fully connected layers, batch norm, activations, pooling, additions) without being them.
CALIBRATION_MODELS = ("mlp", "vgg16_cifar", "mobilenetv2_cifar")
HELD_OUT_MODELS = ("lenet5", "resnet18_cifar")
# how long the runtime is measured: at least N recorded iterations, more until these seconds
# are recorded (per model), at most MAX_ITERATIONS
OVERLAY_ITERATIONS, OVERLAY_MIN_SECONDS = 5, 2.0
CALIBRATION_ITERATIONS, CALIBRATION_MIN_SECONDS = 3, 10.0
MAX_ITERATIONS = 50


def build(model: str, batch: int = 32) -> nx.DiGraph:
    """The training graph of a zoo model at ``batch``."""
    return build_training_graph(get_model(model, batch=batch), batch=batch)


def measure_graph(graph: nx.DiGraph, plan: TrainingPlan | None = None, *,
                  warmup: int = 1, iterations: int = 3, min_seconds: float = 0.0,
                  max_iterations: int = MAX_ITERATIONS, threads: int | None = 1,
                  options: SessionOptions | None = None,
                  progress: bool = True) -> Measurement:
    """``trainplan.runtime.measure.measure`` of ``plan`` (default: ``plan_training(graph)``)
    under ``options`` (e.g. ``swap_through``) with a progress bar naming the model."""
    plan = plan_training(graph) if plan is None else plan
    name = graph.graph.get("model", "model")
    with tqdm(desc=f"measuring {name}", unit="it", file=sys.stderr, leave=False,
              disable=None if progress else True) as bar:
        def tick(i: int, seconds: float) -> None:
            bar.set_postfix_str("warm-up" if i < 0 else f"{seconds:.3g} s")
            bar.update(1)
        return measure(graph, plan, options or SessionOptions(), warmup=warmup, iterations=iterations,
                       min_seconds=min_seconds, max_iterations=max_iterations,
                       threads=threads, on_iteration=tick)


def runtime_calibration(base: DeviceProfile, models: Sequence[str] = CALIBRATION_MODELS, *,
                        batch: int = 32, warmup: int = 1,
                        iterations: int = CALIBRATION_ITERATIONS,
                        min_seconds: float = CALIBRATION_MIN_SECONDS, threads: int | None = 1,
                        name: str = "host", progress: bool = True,
                        ) -> tuple[DeviceProfile, RuntimeFit, list[dict]]:
    """Measure ``models`` and fit ``base``'s efficiencies and overhead to their op times;
    returns the fitted profile (called ``name``), the fit and one record per model."""
    held = sorted(set(models) & set(HELD_OUT_MODELS))
    if held:
        raise TrainplanError(f"{', '.join(held)}: held out for the prediction test; calibrate on "
                         "other models")
    runs, peaks = [], []
    for model in models:
        graph = build(model, batch)
        peaks.append(gemm_peak(threads))
        runs.append((graph, measure_graph(graph, warmup=warmup, iterations=iterations,
                                          min_seconds=min_seconds, threads=threads,
                                          progress=progress)))
    return fit_measured(base, runs, threads=threads, name=name, peaks=peaks)


def gemm_peak(threads: int | None) -> float:
    """One GEMM probe (FLOP/s) on the BLAS threads the runtime is measured with; the best of
    those taken between the measurements is the peak the efficiencies are fractions of."""
    return measure_gemm(1024, 0.5, threads=threads)


def fit_measured(base: DeviceProfile, runs: Sequence[tuple[nx.DiGraph, Measurement]], *,
                 threads: int | None = 1, name: str = "host", peaks: Sequence[float] = (),
                 clock: str | None = None,
                 ) -> tuple[DeviceProfile, RuntimeFit, list[dict]]:
    """Fit ``base`` to measured runs of calibration models (several runs of one model, e.g.
    rounds interleaved with other measurements, each count as a sample); ``peaks``: GEMM
    probes taken between them, whose best becomes the GEMM throughput (the peak); ``clock``:
    the op times fitted, "cpu" or "wall" (None: CPU time with one BLAS thread, else wall)."""
    if peaks:
        base = with_gemm_peak(base, max(peaks), f"best of {len(peaks)} float32 1024^3 GEMM "
                              f"probes on {threads or 'the configured'} BLAS thread(s), taken "
                              "between the runtime's measurements")
    samples, records = [], []
    # CPU time is what the ops cost when the machine is ours; with several BLAS threads
    # it counts every thread, so then the wall clock it is
    clock = clock or ("cpu" if threads == 1 else "wall")
    for graph, m in runs:
        samples.append(op_times(graph, m.events, clock=clock))
        records.append({"model": m.summary.model, "batch": m.summary.batch,
                        "iterations": m.summary.iterations,
                        "measured_s": m.summary.seconds_per_iteration,
                        "cpu_s": m.summary.cpu_seconds, "other_cpus": m.summary.other_cpus,
                        "load_average": m.summary.load_average})
    fit = fit_runtime(samples, base)
    models = list(dict.fromkeys(r["model"] for r in records))
    source = (f"{', '.join(models)} at batch {records[0]['batch']}, "
              + ("BLAS threads as configured" if threads != 1 else "1 BLAS thread")
              + (", CPU time per op" if clock == "cpu" else ", wall time per op"))
    profile = with_fit(base, fit, name=name, source=source)
    for rec, err in zip(records, fit.model_errors, strict=True):
        rec["fitted_error_pct"] = round(100 * err, 2)
    return profile, fit, records


def error_pct(predicted: float, measured: float) -> float:
    """Predicted / measured − 1, in percent to two decimals (NaN when nothing was measured)."""
    return round(100 * (predicted / measured - 1), 2) if measured else math.nan


def compare(graph: nx.DiGraph, measurement: Measurement, device: DeviceProfile
            ) -> tuple[Timeline, dict]:
    """Simulate the plan the runtime ran and line up predicted and measured seconds, stalls
    and bytes moved per iteration (a swapping plan is simulated for SETTLE_ITERATIONS and its
    last, steady, iteration compared: experiments/swap_lineup.py)."""
    if measurement.plan is None:
        raise TrainplanError("the measurement has no plan (a reference run): nothing to simulate")
    plan = measurement.plan
    tl = simulate(graph, plan, device, iterations=SETTLE_ITERATIONS if plan.swapped else 1)
    sim = simulated_iteration(tl)
    s = measurement.summary
    predicted, measured = sim["seconds"], s.seconds_per_iteration
    return tl, {
        "model": s.model, "batch": s.batch, "device": device.name, "planner": s.planner,
        "predicted_s": round(predicted, 6), "measured_s": round(measured, 6),
        "uninterrupted_s": round(s.uninterrupted_seconds, 6), "cpu_s": round(s.cpu_seconds, 6),
        "measured_min_s": round(min(s.iteration_seconds), 6),
        "measured_max_s": round(max(s.iteration_seconds), 6), "iterations": s.iterations,
        "error_pct": error_pct(predicted, measured),
        "error_uninterrupted_pct": error_pct(predicted, s.uninterrupted_seconds),
        "error_cpu_pct": error_pct(predicted, s.cpu_seconds),
        "stall_s": round(s.stall_seconds, 6),
        "predicted_stall_s": round(sim["stall_s"], 6), "bytes_read": s.bytes_read,
        "predicted_bytes_read": sim["bytes_read"], "bytes_written": s.bytes_written,
        "predicted_bytes_written": sim["bytes_written"],
        "peak_iteration_rss_bytes": s.peak_rss_bytes,
        "arena_bytes": s.arena_bytes, "load_average": list(s.load_average),
        "other_cpus": s.other_cpus,
        "blas_threads": s.blas_threads}


def measure_and_compare(graph: nx.DiGraph, plan: TrainingPlan, device: DeviceProfile, *,
                        warmup: int = 1, iterations: int = OVERLAY_ITERATIONS,
                        min_seconds: float = OVERLAY_MIN_SECONDS, threads: int | None = 1,
                        options: SessionOptions | None = None,
                        progress: bool = True) -> tuple[Measurement, Timeline, dict]:
    """Run the runtime on synthetic data (at least ``iterations`` recorded, more until
    ``min_seconds`` are, at most MAX_ITERATIONS), simulate the plan it ran on ``device`` and
    line up the two: the measurement, the simulated Timeline and the comparison record."""
    m = measure_graph(graph, plan, warmup=warmup, iterations=iterations,
                      min_seconds=min_seconds, max_iterations=MAX_ITERATIONS, threads=threads,
                      options=options, progress=progress)
    tl, rec = compare(graph, m, device)
    return m, tl, rec


def load_note(m: Measurement) -> str:
    """Where and how a measurement was taken, for figure titles."""
    s = m.summary
    threads = "BLAS as configured" if s.blas_threads is None else f"{s.blas_threads} BLAS thread"
    return (f"median of {s.iterations} · {threads} · other processes busy on "
            f"{s.other_cpus:.1f} of {s.cpu_count} CPUs (load average {s.load_average[0]:.1f})")
