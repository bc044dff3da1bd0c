"""`trainplan simulate`, `timeline`, `devices` and `calibrate`: a planned model on a device."""

from __future__ import annotations

import argparse
import os

from trainplan.experiments.graph_options import add_graph_options, add_plan_options, planned_graph
from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import atomic_write_text
from trainplan.planner.verify import verify_plan
from trainplan.simulator.device import device_names, device_table, load_device
from trainplan.simulator.simulate import simulate
from trainplan.simulator.timeline import Timeline


def _plan_options(p: argparse.ArgumentParser) -> None:
    add_graph_options(p, model_required=False)
    add_plan_options(p)
    p.add_argument("--iterations", type=int, default=1, help="iterations to simulate "
                   "(swap state carries over; default 1)")
    p.add_argument("--stack", default="role", choices=["role", "layer"],
                   help="group live bytes by tensor role or by layer (default role)")


def register(sub) -> None:
    names = ", ".join(device_names())
    p = sub.add_parser("simulate", help="simulate a planned training iteration on a device")
    _plan_options(p)
    p.add_argument("--device", required=True, help=f"a profile name ({names}) or a .json file")
    p.add_argument("--out", default=None, help="also write the timeline: .json (everything) "
                   "or .csv (the events)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_simulate)

    p = sub.add_parser("timeline", help="plot memory over time and the streams of a device")
    _plan_options(p)
    p.add_argument("--device", default="raspberry-pi-4", help=f"a profile name ({names}) or "
                   "a .json file (default raspberry-pi-4)")
    p.add_argument("--x", default="time", choices=["time", "eo"],
                   help="x axis: simulated time, or execution order as NNTrainer counts it")
    p.add_argument("--out", required=True, help="figure file (.png, .svg or .pdf)")
    p.add_argument("--measured", action="store_true", help="also run the numpy runtime on "
                   "synthetic data and overlay predicted and measured time per EO (use a "
                   "--device calibrated with `calibrate --runtime`)")
    _measure_options(p, iterations=5)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_timeline)

    p = sub.add_parser("devices", help="list the device profiles")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=lambda args: device_table())

    p = sub.add_parser("calibrate", help="measure this machine into a device profile")
    p.add_argument("--out", default=None, help="write the profile here (e.g. host.json)")
    p.add_argument("--dir", default=".", help="directory on the storage to measure (default: "
                   "the current one); temporary files there are removed")
    p.add_argument("--storage-mib", type=int, default=256, help="MiB written and read back "
                   "(default 256)")
    p.add_argument("--name", default="host", help="profile name (default host)")
    p.add_argument("--runtime", action="store_true", help="then fit the op-class efficiencies "
                   "and per-op overhead to the numpy runtime's op times on --models")
    p.add_argument("--base", default=None, help="with --runtime: start from this profile "
                   "instead of measuring the hardware")
    p.add_argument("--models", default=None, help="with --runtime: calibration models "
                   "(default mlp,vgg16_cifar,mobilenetv2_cifar; not lenet5 or resnet18_cifar, "
                   "which are held out)")
    p.add_argument("--batch", type=int, default=32, help="with --runtime: batch (default 32)")
    _measure_options(p, iterations=3)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_calibrate)


def _measure_options(p: argparse.ArgumentParser, iterations: int) -> None:
    """How the runtime is measured (`timeline --measured`, `calibrate --runtime`)."""
    p.add_argument("--measure-iterations", type=int, default=iterations, metavar="N",
                   help=f"recorded runtime iterations, after one warm-up (default {iterations}; "
                   "the median counts)")
    p.add_argument("--blas-threads", type=int, default=1, metavar="N",
                   help="BLAS threads while measuring (default 1: on a shared machine more "
                   "threads wait for each other; 0 leaves BLAS as configured)")


def checked_plan(args: argparse.Namespace, device=None):
    """The graph and the plan the options describe (the device's costs guide the optimal
    swap planner), refused when the independent validator rejects the plan."""
    if args.model is None and not args.plan:
        raise TrainplanError("give --model NAME (or --plan FILE)")
    graph, plan = planned_graph(args, device)
    errors = list(plan.errors) if not args.plan else verify_plan(graph, plan)
    if errors:
        raise TrainplanError("the plan failed validation: " + "; ".join(errors[:3]))
    return graph, plan


def timeline_from_args(args: argparse.Namespace) -> Timeline:
    """Build, plan and simulate what the options describe."""
    device = load_device(args.device)
    if args.iterations < 1:
        raise TrainplanError(f"--iterations {args.iterations}: simulate at least one")
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


def run_simulate(args: argparse.Namespace) -> dict:
    tl = timeline_from_args(args)
    rec = summary_record(tl)
    if args.out:
        if args.out.endswith(".csv"):
            atomic_write_text(args.out, tl.events.to_csv(index=False))
        else:
            atomic_write_text(args.out, tl.to_json() + "\n")
        rec["out"] = args.out
    return rec


def run_timeline(args: argparse.Namespace) -> dict:
    from trainplan.experiments.plots import plot_timeline

    if os.path.splitext(args.out)[1].lower() not in (".png", ".svg", ".pdf"):
        raise TrainplanError(f"--out {args.out!r}: use a .png, .svg or .pdf file name")
    if args.measured:
        return run_measured(args)
    tl = timeline_from_args(args)
    plot_timeline(tl, args.out, x=args.x)
    return {**summary_record(tl), "figure": args.out}


def run_measured(args: argparse.Namespace) -> dict:
    """`timeline --measured`: the runtime on the same graph and plan, overlaid."""
    from trainplan.experiments.measured import overlay

    device = load_device(args.device)
    graph, plan = checked_plan(args, device)
    rec = overlay(graph, plan, device, args.out, iterations=args.measure_iterations,
                  threads=args.blas_threads or None)
    if "op_overhead" not in device.document.get("compute", {}):
        rec["note"] = (f"{device.name} was not fitted to this host's runtime: make one with "
                       "`trainplan calibrate --runtime --out host.json`")
    return rec


def run_calibrate(args: argparse.Namespace) -> dict:
    from trainplan.simulator.calibrate import calibrate, profile_summary

    if args.base and not args.runtime:
        raise TrainplanError("--base goes with --runtime")
    if args.base:
        profile = load_device(args.base)
    else:
        profile = calibrate(args.dir, storage_bytes=args.storage_mib * 2**20, name=args.name)
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
