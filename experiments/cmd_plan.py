"""`trainplan plan`, `alloc` and `compare`: offset planners on graphs and on CSV problems."""

from __future__ import annotations

import argparse

import pandas as pd
from tqdm import tqdm

from trainplan.experiments.graph_options import (
    add_graph_options,
    add_plan_options,
    planned_graph,
    planner_list,
)
from trainplan.experiments.output import Formatted
from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import TrainplanError
from trainplan.planner.offsets import run_planner
from trainplan.planner.plan_training import plan_training
from trainplan.planner.validate import validate_plan
from trainplan.planner.zoo import get_model


def _search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds a searching planner may use (default: its own)")
    p.add_argument("--seed", type=int, default=0, help="seed of searching planners")


# what tells offset planners apart, in the order ``compare`` prints it
COMPARE_COLUMNS = ("model", "planner", "arena_bytes", "lower_bound_bytes", "ratio", "status",
                   "optimal", "best_bound_bytes", "gap", "solve_seconds", "weight_pool_bytes",
                   "tensor_pool_bytes", "valid")


def register(sub) -> None:
    p = sub.add_parser("plan", help="plan one model: offsets, and under a budget a swap "
                       "schedule; print the plan's figures and optionally save it")
    add_graph_options(p)
    add_plan_options(p, saved_plan=False)
    p.add_argument("--device", default=None, help="with --budget: a device profile (see "
                   "`trainplan devices`) whose storage and compute guide the optimal swap "
                   "planner and give the simulated stall")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also save the TrainingPlan as JSON, for `simulate|timeline|train "
                   "--plan FILE`")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_plan)

    p = sub.add_parser("alloc", help="plan a standalone MiniMalloc CSV problem")
    p.add_argument("file", help="CSV with header id,lower,upper,size[,alignment]")
    p.add_argument("--planner", default="greedy_size")
    p.add_argument("--capacity", type=int, default=None, help="bytes the arena may use")
    p.add_argument("--out", default=None, help="write the solution CSV (adds offset)")
    _search_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_alloc)

    p = sub.add_parser("compare", help="every (model, planner) pair side by side")
    p.add_argument("--models", default="lenet5,resnet18_cifar",
                   help="comma-separated zoo models or .ini files")
    p.add_argument("--planners", default="all", help="'all' or comma-separated planner names")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--order", default="nntrainer")
    p.add_argument("--format", default="table", choices=["table", "csv", "markdown", "json"])
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--out", default=None, help="also write the table (csv/md/json by suffix)")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="also draw the planners side by side (.png, .svg or .pdf)")
    _search_options(p)
    p.set_defaults(run=run_compare)


def run_plan(args: argparse.Namespace) -> dict:
    if args.device and args.budget is None:
        raise TrainplanError("--device guides swapping under a budget; give --budget BYTES "
                             "(or simulate the plan with `trainplan simulate --device`)")
    costs = None
    if args.device:
        from trainplan.experiments.device_costs import device_costs
        costs = device_costs(args.device)
    graph, plan = planned_graph(args, costs)
    record = plan.record()
    if args.device:
        from trainplan.simulator.simulate import simulate
        summary = simulate(graph, plan, args.device).summary
        record["device"] = args.device
        record["simulated_stall_seconds"] = round(summary.total_stall_seconds, 6)
    if args.out:
        plan.save(args.out)
        record["out"] = args.out
    return record


def run_alloc(args: argparse.Namespace) -> dict:
    problem = AllocationProblem.from_csv(args.file, capacity=args.capacity)
    plan = run_planner(args.planner, problem, time_limit=args.time_limit, seed=args.seed)
    errors = validate_plan(problem.with_capacity(None), plan)
    result = {
        "problem": args.file, "buffers": len(problem.buffers), "planner": args.planner,
        "arena_bytes": plan.arena_bytes, "lower_bound_bytes": plan.lower_bound_bytes,
        "ratio": round(plan.ratio, 6), "solve_seconds": round(plan.solve_seconds, 6),
        "optimal": plan.optimal, "valid": not errors, "status": plan.status,
    }
    if args.capacity is not None:
        result["capacity"] = args.capacity
        result["fits"] = plan.arena_bytes <= args.capacity
    if args.out:
        problem.write_csv(args.out, plan.offsets)
        result["out"] = args.out
    return result


def compare_frame(models: list[str], planners: list[str], *, batch: int | None = None,
                  order: str = "nntrainer", time_limit: float | None = None,
                  seed: int = 0, progress: bool = True, keep: list | None = None) -> pd.DataFrame:
    """One row per (model, planner): the plan record, as a DataFrame; ``keep`` (a list)
    collects the (graph, TrainingPlan) pairs."""
    rows = []
    graphs = {m: build_training_graph(get_model(m, batch=batch)) for m in models}
    pairs = [(m, p) for m in models for p in planners]
    for model, planner in tqdm(pairs, desc="planning", disable=None if progress else True, leave=False):
        plan = plan_training(graphs[model], order=order, offsets=planner,
                             time_limit=time_limit, seed=seed)
        record = plan.record()
        rows.append({k: record[k] for k in COMPARE_COLUMNS})
        if keep is not None:
            keep.append((graphs[model], plan))
    return pd.DataFrame(rows)


def run_compare(args: argparse.Namespace) -> Formatted:
    if args.plot and not args.plot.lower().endswith((".png", ".svg", ".pdf")):
        raise TrainplanError(f"--plot {args.plot!r}: use a .png, .svg or .pdf file name")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    pairs: list = []
    frame = compare_frame(models, planner_list(args.planners), batch=args.batch,
                          order=args.order, time_limit=args.time_limit, seed=args.seed,
                          keep=pairs if args.plot else None)
    if args.out:
        save_frame(frame, args.out)
    if args.plot:
        from trainplan.experiments.plot_compare import planner_curves, plot_compare
        plot_compare(planner_curves(pairs), args.plot)
    return Formatted(frame, "json" if args.json else args.format)


def save_frame(frame: pd.DataFrame, path: str) -> None:
    """Write a DataFrame atomically as CSV, Markdown or JSON, by the file's suffix."""
    from trainplan.planner.fileio import atomic_write_text
    if path.endswith(".md"):
        text = frame.to_markdown(index=False) + "\n"
    elif path.endswith(".json"):
        text = frame.to_json(orient="records", indent=1) + "\n"
    else:
        text = frame.to_csv(index=False)
    atomic_write_text(path, text)
