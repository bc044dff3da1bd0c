"""`trainplan plan`, `alloc` and `compare`: offset planners on graphs and on CSV problems."""

from __future__ import annotations

import argparse

import pandas as pd
from tqdm import tqdm

from trainplan.experiments.graph_options import add_graph_options, add_swap_options, graph_from_args
from trainplan.experiments.output import write_frame
from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import TrainplanError, UnknownName
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.plan_graph import plan_graph, plan_graph_swap
from trainplan.planner.validate import validate_plan
from trainplan.planner.zoo import get_model


def _search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds a searching planner may use (default: its own)")
    p.add_argument("--seed", type=int, default=0, help="seed of searching planners")


def register(sub) -> None:
    p = sub.add_parser("plan", help="plan one model with one offset planner")
    add_graph_options(p)
    p.add_argument("--planner", default=None, help="offset planner (see compare; default "
                   "nntrainer_v1, or with --budget the best greedy one)")
    add_swap_options(p)
    p.add_argument("--device", default=None, help="device profile (see `trainplan devices`): "
                   "its storage and compute guide the optimal swap planner and give the "
                   "simulated stall")
    _search_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_plan)

    p = sub.add_parser("alloc", help="plan a standalone MiniMalloc CSV problem")
    p.add_argument("file", help="MiniMalloc CSV: id,lower,upper,size[,alignment][,hint]"
                   "[,gaps][,offset] (an offset column fixes those buffers)")
    p.add_argument("--planner", default="greedy_size")
    p.add_argument("--capacity", type=int, default=None, help="bytes the arena may use")
    p.add_argument("--out", default=None, help="write the solution CSV (adds offset)")
    _search_options(p)
    p.add_argument("--workers", type=int, default=2, help="cores a searching planner may use")
    p.add_argument("--deterministic", action="store_true",
                   help="searching planners count work instead of seconds: the same plan on "
                        "any machine and load (the time limit sets the amount of work)")
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
    graph = graph_from_args(args)
    if args.budget is None:
        return plan_graph(graph, args.planner or "nntrainer_v1", order=args.order,
                          time_limit=args.time_limit, seed=args.seed).record()
    options = {"lookahead": args.lookahead, "seed": args.seed}
    if args.time_limit is not None:
        options["time_limit"] = args.time_limit
    if args.device:
        from trainplan.experiments.device_costs import swap_costs
        options.update(swap_costs(graph, args.device, args.order))
    plan = plan_graph_swap(graph, args.budget, swap=args.swap, planner=args.planner or "best",
                           order=args.order, **options)
    record = plan.record()
    record["estimated_stall_seconds"] = None
    if args.device:
        from trainplan.simulator.simulate import simulate
        summary = simulate(graph, plan, args.device, order=args.order).summary
        record["device"] = args.device
        record["estimated_stall_seconds"] = round(summary.stall_seconds, 6)
    return record


def run_alloc(args: argparse.Namespace) -> dict:
    problem = AllocationProblem.from_csv(args.file, capacity=args.capacity)
    plan = run_planner(args.planner, problem, time_limit=args.time_limit, seed=args.seed,
                       workers=args.workers, deterministic=args.deterministic)
    errors = validate_plan(problem.with_capacity(None), plan)
    result = {
        "problem": args.file, "buffers": len(problem.buffers), "planner": args.planner,
        "arena_bytes": plan.arena_bytes, "lower_bound_bytes": plan.lower_bound_bytes,
        "ratio": round(plan.ratio, 6), "solve_seconds": round(plan.solve_seconds, 6),
        "optimal": plan.optimal, "valid": not errors, "status": plan.status,
        "best_bound_bytes": plan.best_bound,
    }
    if args.capacity is not None:
        result["capacity"] = args.capacity
        result["fits"] = plan.arena_bytes <= args.capacity
    if args.out:
        problem.write_csv(args.out, plan.offsets)
        result["out"] = args.out
    return result


def planner_list(text: str) -> list[str]:
    if text == "all":
        return list(PLANNERS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PLANNERS]
    if unknown:
        raise UnknownName(f"unknown planner(s) {', '.join(unknown)}; valid: "
                          + ", ".join(PLANNERS))
    return names


def compare_frame(models: list[str], planners: list[str], *, batch: int | None = None,
                  order: str = "nntrainer", time_limit: float | None = None,
                  seed: int = 0, progress: bool = True, keep: list | None = None) -> pd.DataFrame:
    """One row per (model, planner): the plan record, as a DataFrame; ``keep`` (a list)
    collects the (graph, GraphPlan) pairs."""
    rows = []
    graphs = {m: build_training_graph(get_model(m, batch=batch)) for m in models}
    pairs = [(m, p) for m in models for p in planners]
    for model, planner in tqdm(pairs, desc="planning", disable=not progress, leave=False):
        plan = plan_graph(graphs[model], planner, order=order, time_limit=time_limit, seed=seed)
        rows.append(plan.record())
        if keep is not None:
            keep.append((graphs[model], plan))
    return pd.DataFrame(rows)


def run_compare(args: argparse.Namespace) -> None:
    if args.plot and not args.plot.lower().endswith((".png", ".svg", ".pdf")):
        raise TrainplanError(f"--plot {args.plot!r}: use a .png, .svg or .pdf file name")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    pairs: list = []
    frame = compare_frame(models, planner_list(args.planners), batch=args.batch,
                          order=args.order, time_limit=args.time_limit, seed=args.seed,
                          keep=pairs if args.plot else None)
    fmt = "json" if args.json else args.format
    write_frame(frame, fmt)
    if args.out:
        save_frame(frame, args.out)
    if args.plot:
        from trainplan.experiments.plot_compare import planner_curves, plot_compare
        plot_compare(planner_curves(pairs, args.order), args.plot)


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
