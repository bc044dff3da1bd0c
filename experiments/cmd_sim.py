"""`trainplan simulate`, `timeline`, `devices` and `calibrate`: a planned model on a device."""

from __future__ import annotations

import argparse
import os

from trainplan.experiments.cli_rules import (
    Rule,
    byte_size,
    check,
    given,
    only_with,
    search_rules,
)
from trainplan.experiments.graph_options import (
    _positive_int,
    add_graph_options,
    add_plan_options,
    planned_graph,
)
from trainplan.experiments.measured import (
    CALIBRATION_ITERATIONS,
    CALIBRATION_MIN_SECONDS,
    MAX_ITERATIONS,
    OVERLAY_ITERATIONS,
    OVERLAY_MIN_SECONDS,
)
from trainplan.experiments.progress import planning
from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import atomic_write_text
from trainplan.planner.verify import verify_plan
from trainplan.simulator.device import device_names, device_table, load_device
from trainplan.simulator.simulate import simulate
from trainplan.simulator.timeline import Timeline

FIGURES = (".png", ".svg", ".pdf")
DEFAULT_DEVICE = "raspberry-pi-4"
STORAGE_BYTES = "256MiB"  # what `calibrate` writes and reads back by default


def _plan_options(p: argparse.ArgumentParser) -> None:
    add_graph_options(p, model_required=False)
    add_plan_options(p)
    p.add_argument("--iterations", type=_positive_int, default=None, help="iterations to "
                   "simulate (swap state carries over; default 1)")
    p.add_argument("--stack", default=None, choices=["role", "layer"],
                   help="group resident bytes by tensor role or by layer (default role)")


def register(sub) -> None:
    names = ", ".join(device_names())
    p = sub.add_parser("simulate", help="simulate a planned training iteration on a device")
    _plan_options(p)
    p.add_argument("--device", required=True, help=f"a profile name ({names}) or a .json file")
    p.add_argument("--out", default=None, help="also write the timeline: .json (everything) "
                   "or .csv (the events)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_simulate)

    p = sub.add_parser("timeline", help="plot memory over time and the streams of a device, "
                       "or export them as a trace for Perfetto")
    _plan_options(p)
    p.add_argument("--device", default=DEFAULT_DEVICE, help=f"a profile name ({names}) or "
                   f"a .json file (default {DEFAULT_DEVICE})")
    p.add_argument("--x", default=None, choices=["time", "eo"],
                   help="x axis of the figure: simulated time, or execution order as NNTrainer "
                   "counts it (default time)")
    p.add_argument("--out", default=None, metavar="FIGURE",
                   help="figure file (.png, .svg or .pdf)")
    p.add_argument("--trace", default=None, metavar="FILE.json",
                   help="write the timeline as Chrome trace-event JSON (open it in "
                   "ui.perfetto.dev): ops, stalls, transfers, resident/live/held bytes")
    p.add_argument("--measured", action="store_true", help="also run the numpy runtime on "
                   "synthetic data and overlay predicted and measured time per EO (use a "
                   "--device calibrated with `calibrate --runtime`)")
    _measure_options(p, OVERLAY_ITERATIONS, OVERLAY_MIN_SECONDS, "")
    p.add_argument("--swap-through", action="store_true", help="with --measured and a plan "
                   "that swaps: the runtime flushes every swap write to storage and keeps no "
                   "swapped bytes in the page cache, as the calibrated storage is timed")
    p.add_argument("--swap-dir", default=None, help="with --measured: directory of the "
                   "runtime's swap file (default: the system's temporary directory; put it on "
                   "the storage the profile was calibrated on)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_timeline)

    p = sub.add_parser("devices", help="list the device profiles")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=lambda args: device_table())

    p = sub.add_parser("calibrate", help="measure this machine into a device profile")
    p.add_argument("--out", default=None, help="write the profile here (e.g. host.json)")
    p.add_argument("--dir", default=None, help="directory on the storage to measure (default: "
                   "the current one); temporary files there are removed")
    p.add_argument("--storage", type=byte_size, default=None, metavar="BYTES",
                   help=f"the largest swap request timed, e.g. 1MiB (default {STORAGE_BYTES}: "
                   "requests from 4 KiB to 16 MiB)")
    p.add_argument("--name", default="host", help="profile name (default host)")
    p.add_argument("--runtime", action="store_true", help="then fit the op-class efficiencies "
                   "and per-op overhead to the numpy runtime's op times on --models")
    p.add_argument("--base", default=None, help="with --runtime: start from this profile "
                   "instead of measuring the hardware (default: measure it)")
    p.add_argument("--models", default=None, help="with --runtime: calibration models "
                   "(default mlp,vgg16_cifar,mobilenetv2_cifar; not lenet5 or resnet18_cifar, "
                   "which are held out)")
    p.add_argument("--batch", type=_positive_int, default=None,
                   help="with --runtime: batch (default 32)")
    _measure_options(p, CALIBRATION_ITERATIONS, CALIBRATION_MIN_SECONDS, "with --runtime: ")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_calibrate)


def _measure_options(p: argparse.ArgumentParser, iterations: int, seconds: float,
                     scope: str) -> None:
    """How the runtime is measured (`timeline --measured`, `calibrate --runtime`)."""
    p.add_argument("--measure-iterations", type=_positive_int, default=None, metavar="N",
                   help=f"{scope}runtime iterations recorded after one warm-up: at least N "
                   f"(default {iterations}), more until {seconds:g} s are recorded, at most "
                   f"{MAX_ITERATIONS}; the median counts")
    p.add_argument("--blas-threads", type=int, default=None, metavar="N",
                   help=f"{scope}BLAS threads while measuring (default 1: on a shared machine "
                   "more threads wait for each other; 0 leaves BLAS as configured)")


def checked_plan(args: argparse.Namespace, device=None):
    """The graph and the plan the options describe (the device's costs guide the optimal
    swap planner), refused when the independent validator rejects the plan."""
    if args.model is None and not args.plan:
        raise TrainplanError("give --model NAME (or --plan FILE)")
    with planning(args):
        graph, plan = planned_graph(args, device)
    errors = list(plan.errors) if not args.plan else verify_plan(graph, plan)
    if errors:
        raise TrainplanError("the plan failed validation: " + "; ".join(errors[:3]))
    return graph, plan


def timeline_from_args(args: argparse.Namespace) -> Timeline:
    """Build, plan and simulate what the options describe."""
    device = load_device(args.device)
    graph, plan = checked_plan(args, device)
    return simulate(graph, plan, device, iterations=args.iterations, by=args.stack)


def summary_record(tl: Timeline) -> dict:
    """The summary as printed: seconds rounded, the out-of-RAM point only when there is one."""
    rec = tl.summary.to_dict()
    for k, v in rec.items():
        if isinstance(v, float):
            rec[k] = round(v, 6)
    if rec["out_of_ram"] is None:
        del rec["out_of_ram"]
    return rec


SIMULATE_RULES = [
    only_with("stack", lambda a: given(a, "out"), "--out FILE",
              "it groups the resident bytes of the timeline --out writes; the summary "
              "printed has none"),
    *search_rules(),
]
SIMULATION_DEFAULTS = {"seed": 0, "iterations": 1, "stack": "role"}


def run_simulate(args: argparse.Namespace) -> dict:
    check(args, SIMULATE_RULES, SIMULATION_DEFAULTS)
    tl = timeline_from_args(args)
    rec = summary_record(tl)
    if args.out:
        if args.out.endswith(".csv"):
            atomic_write_text(args.out, tl.events.to_csv(index=False))
        else:
            atomic_write_text(args.out, tl.to_json() + "\n")
        rec["out"] = args.out
    return rec


def _measured_only(option: str) -> Rule:
    return only_with(option, lambda a: a.measured, "--measured",
                     "it says how the runtime is measured")


TIMELINE_RULES = [
    Rule(lambda a: not a.out and not a.trace,
         "give --out FIGURE (.png, .svg or .pdf) or --trace FILE.json (or both): a timeline "
         "with neither is not written anywhere"),
    Rule(lambda a: a.out is not None and os.path.splitext(a.out)[1].lower() not in FIGURES,
         lambda a: f"--out {a.out!r}: use a .png, .svg or .pdf file name"),
    Rule(lambda a: a.trace is not None and not a.trace.lower().endswith(".json"),
         lambda a: f"--trace {a.trace!r}: a trace is JSON; use a .json file name"),
    only_with("x", lambda a: a.out, "--out FIGURE", "it chooses the figure's x axis"),
    Rule(lambda a: a.measured and given(a, "x"),
         "--x goes with a simulated figure: --measured draws time per EO, its x axis is EO"),
    *(Rule(lambda a, o=o: a.measured and given(a, o),
           f"--{o} shapes the simulated timeline; --measured simulates the plan the runtime "
           "ran (one iteration, or three when it swaps: the last is compared), grouped by role")
      for o in ("iterations", "stack")),
    _measured_only("measure_iterations"),
    _measured_only("blas_threads"),
    _measured_only("swap_through"),
    _measured_only("swap_dir"),
    *search_rules(),
]


def run_timeline(args: argparse.Namespace) -> dict:
    check(args, TIMELINE_RULES, {**SIMULATION_DEFAULTS, "x": "time",
                                 "measure_iterations": OVERLAY_ITERATIONS, "blas_threads": 1})
    if args.measured:
        return run_measured(args)
    tl = timeline_from_args(args)
    rec = summary_record(tl)
    if args.out:
        from trainplan.experiments.plots import plot_timeline, use_file_backend

        use_file_backend()
        plot_timeline(tl, args.out, x=args.x)
        rec["figure"] = args.out
    if args.trace:
        from trainplan.experiments.trace import timeline_trace, write_trace

        write_trace(timeline_trace(tl), args.trace)
        rec["trace"] = args.trace
    return rec


def run_measured(args: argparse.Namespace) -> dict:
    """`timeline --measured`: the runtime on the same graph and plan, overlaid and traced."""
    from trainplan.experiments.measured import load_note, measure_and_compare
    from trainplan.runtime.session import SessionOptions

    device = load_device(args.device)
    graph, plan = checked_plan(args, device)
    for option in ("swap_through", "swap_dir"):
        if given(args, option) and not plan.swapped:
            raise TrainplanError(f"--{option.replace('_', '-')} goes with a plan that swaps: "
                                 "give --budget (below the plan's arena) or drop it")
    options = SessionOptions(swap_dir=args.swap_dir, swap_through=args.swap_through)
    m, tl, rec = measure_and_compare(graph, plan, device, iterations=args.measure_iterations,
                                     threads=args.blas_threads or None, options=options)
    if args.out:
        from trainplan.experiments.plot_measured import plot_overlay
        from trainplan.experiments.plots import use_file_backend

        use_file_backend()
        plot_overlay(tl, m.events, args.out, measured_seconds=rec["measured_s"],
                     note=load_note(m), transfers=m.transfers)
        rec["figure"] = args.out
    if args.trace:
        from trainplan.experiments.trace import (
            measured_events,
            timeline_events,
            trace_document,
            write_trace,
        )

        doc = trace_document(timeline_events(tl) + measured_events(m.events, plan),
                             model=rec["model"], device=device.name)
        write_trace(doc, args.trace)
        rec["trace"] = args.trace
    if "op_overhead" not in device.document.get("compute", {}):
        rec["note"] = (f"{device.name} was not fitted to this host's runtime: make one with "
                       "`trainplan calibrate --runtime --out host.json`")
    return rec


def _runtime_only(option: str) -> Rule:
    return only_with(option, lambda a: a.runtime, "--runtime",
                     "it shapes the fit to the numpy runtime")


CALIBRATE_RULES = [
    *(_runtime_only(o) for o in ("base", "models", "batch", "measure_iterations",
                                 "blas_threads")),
    *(Rule(lambda a, o=o: given(a, "base") and given(a, o),
           f"--{o} says where the storage is measured; --base starts from a profile instead "
           "of measuring the hardware")
      for o in ("dir", "storage")),
]


def run_calibrate(args: argparse.Namespace) -> dict:
    from trainplan.experiments.graph_options import parse_bytes
    from trainplan.simulator.calibrate import calibrate, profile_summary

    check(args, CALIBRATE_RULES, {"dir": ".", "storage": parse_bytes(STORAGE_BYTES),
                                  "batch": 32, "measure_iterations": CALIBRATION_ITERATIONS,
                                  "blas_threads": 1})
    if args.base:
        profile = load_device(args.base)
    else:
        profile = calibrate(args.dir, storage_bytes=args.storage, name=args.name)
    extra = {}
    if args.runtime:
        profile, extra = _runtime_fit(args, profile)
    if args.out:
        atomic_write_text(args.out, profile.to_json())
    return {**profile_summary(profile), **extra, **({"out": args.out} if args.out else {})}


def _runtime_fit(args: argparse.Namespace, base):
    from trainplan.experiments.measured import CALIBRATION_MODELS, runtime_calibration

    models = args.models.split(",") if args.models else list(CALIBRATION_MODELS)
    profile, fit, records = runtime_calibration(
        base, models, batch=args.batch, iterations=args.measure_iterations,
        threads=args.blas_threads or None, name=args.name)
    return profile, {"fitted_classes": ", ".join(fit.fitted),
                     "calibration": {r["model"]: f"{r['measured_s']:.4g} s/it measured, fit "
                                     f"{r['fitted_error_pct']:+.1f}%" for r in records}}
