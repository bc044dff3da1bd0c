"""`trainplan plan`, `alloc`, `compare` and `planners`: planners on graphs and on CSV problems."""

from __future__ import annotations

import argparse
import copy
import time

import pandas as pd

from trainplan.experiments.cli_rules import (
    SEARCHING_OFFSETS,
    Rule,
    byte_size,
    check,
    given,
    search_rules,
    searching_offsets,
)
from trainplan.experiments.compare import compare_frame, compare_plans
from trainplan.experiments.graph_options import (
    _seconds,
    add_graph_options,
    add_plan_options,
    graph_from_args,
    planned_graph,
    planner_list,
)
from trainplan.experiments.output import Formatted, save_frame
from trainplan.experiments.progress import planning, solving
from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.errors import InvalidProblem, TrainplanError
from trainplan.planner.fileio import read_text_file
from trainplan.planner.offsets import PLANNERS, run_planner
from trainplan.planner.swap import SWAP_PLANNERS
from trainplan.planner.validate import validate_plan

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
PLANNERS_EPILOG = (f"offset planners: {', '.join(PLANNERS)}, best (under a budget); swap "
                   f"planners (under --budget): {', '.join(SWAP_PLANNERS)}. `trainplan "
                   "planners` says what each does. Sizes take units (64MiB, 1.5GB); words "
                   "as in docs/glossary.md.")


def _search_options(p: argparse.ArgumentParser, planners: str) -> None:
    p.add_argument("--time-limit", type=_seconds, default=None, metavar="SECONDS",
                   help=f"seconds a searching planner ({planners}) may use on each problem "
                   "(default 10)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of a searching planner ({planners}) (default 0)")


def register(sub) -> None:
    p = sub.add_parser("plan", help="plan one model: offsets, and under a budget a swap "
                       "schedule; print the plan's figures and optionally save it")
    add_graph_options(p)
    add_plan_options(p, saved_plan=False)
    p.add_argument("--device", default=None, help="with --budget: a device profile (see "
                   "`trainplan devices`) whose storage and compute guide the optimal swap "
                   "planner and give the simulated stall (default: none)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also save the TrainingPlan as JSON, for `simulate|timeline|train "
                   "--plan FILE`")
    p.add_argument("--buffers", default=None, metavar="FILE.csv",
                   help="also write one CSV row per resident piece: buffer, piece, role, "
                   "bytes, start, end, offset")
    p.add_argument("--c-header", default=None, metavar="FILE.h",
                   help="also write a C header: the arena size to allocate and every "
                   "piece's offset")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_plan)

    p = sub.add_parser("alloc", help="plan a standalone MiniMalloc CSV problem")
    p.add_argument("file", help="MiniMalloc CSV: id,lower,upper,size[,alignment][,hint]"
                   "[,gaps][,offset] (an offset column fixes those buffers; docs/minimalloc.md)")
    p.add_argument("--planner", default="greedy_size", choices=list(PLANNERS), metavar="P",
                   help=f"offset planner: {', '.join(PLANNERS)} (default greedy_size)")
    p.add_argument("--capacity", type=byte_size, default=None, metavar="BYTES",
                   help="bytes the arena may use, e.g. 1MiB (default: no limit)")
    p.add_argument("--out", default=None, metavar="FILE.csv",
                   help="write the solution CSV (the problem plus an offset column)")
    _search_options(p, SEARCHING_OFFSETS)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help=f"cores a searching planner ({SEARCHING_OFFSETS}) may use (default 2)")
    p.add_argument("--deterministic", action="store_true",
                   help=f"a searching planner ({SEARCHING_OFFSETS}) counts work instead of "
                   "seconds: the same plan on any machine and load (the time limit sets the "
                   "amount of work)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_alloc)

    p = sub.add_parser("compare", help="every (model, planner) pair side by side")
    p.add_argument("--models", default="lenet5,resnet18_cifar",
                   help="comma-separated zoo models or .ini files (default lenet5,resnet18_cifar)")
    p.add_argument("--planners", default="all", metavar="P,P,...",
                   help=f"'all' or comma-separated offset planners: {', '.join(PLANNERS)} "
                   "(default all)")
    add_graph_options(p, model=False)
    p.add_argument("--format", default=None, choices=["table", "csv", "markdown", "json"],
                   help="how to print the table (default table)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also write the table (.csv, .md or .json by suffix)")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="also draw the planners side by side (.png, .svg or .pdf)")
    _search_options(p, SEARCHING_OFFSETS)
    p.set_defaults(run=run_compare)

    p = sub.add_parser("planners", help="list the offset and swap planners")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_planners)


PLAN_RULES = [
    Rule(lambda a: given(a, "device") and not given(a, "budget") and not given(a, "remat"),
         "--device guides swapping under a budget and recomputation; give --budget BYTES or "
         "--remat (or simulate the plan with `trainplan simulate --device`)"),
    *search_rules(),
]


def run_plan(args: argparse.Namespace) -> dict:
    from trainplan.experiments.exports import write_buffers_csv, write_c_header

    check(args, PLAN_RULES, {"seed": 0})
    with planning(args):
        graph, plan = planned_graph(args, args.device)
    record = plan.record()
    if plan.provenance.options.get("best_bound_seconds") is not None:
        record["best_bound_seconds"] = plan.provenance.options["best_bound_seconds"]
    if args.device:
        from trainplan.simulator.simulate import simulate
        summary = simulate(graph, plan, args.device).summary
        record["device"] = args.device
        record["simulated_stall_seconds"] = round(summary.total_stall_seconds, 6)
    for option, write in (("out", plan.save), ("buffers", lambda p: write_buffers_csv(plan, p)),
                          ("c_header", lambda p: write_c_header(plan, p))):
        path = getattr(args, option)
        if path:
            write(path)
            record[option] = path
    return record


ALLOC_RULES = [
    Rule(lambda a: given(a, "time_limit") and not PLANNERS[a.planner].searches,
         lambda a: f"--time-limit bounds a searching planner ({SEARCHING_OFFSETS}); "
         f"{a.planner} finishes without searching"),
    Rule(lambda a: given(a, "seed") and not PLANNERS[a.planner].searches,
         lambda a: f"--seed seeds a searching planner ({SEARCHING_OFFSETS}); {a.planner} "
         "does not search"),
    Rule(lambda a: given(a, "workers") and not PLANNERS[a.planner].searches,
         lambda a: f"--workers gives cores to a searching planner ({SEARCHING_OFFSETS}); "
         f"{a.planner} does not search"),
    Rule(lambda a: a.deterministic and not PLANNERS[a.planner].searches,
         lambda a: f"--deterministic makes a searching planner ({SEARCHING_OFFSETS}) count "
         f"work; {a.planner} does not search"),
    Rule(lambda a: given(a, "workers") and a.workers < 1,
         lambda a: f"--workers {a.workers}: give 1 or more"),
]


def run_alloc(args: argparse.Namespace) -> dict:
    check(args, ALLOC_RULES, {"seed": 0, "workers": 2})
    text = read_text_file(args.file, "problem")
    try:
        problem = AllocationProblem.from_csv(text, capacity=args.capacity)
    except InvalidProblem as exc:
        raise InvalidProblem(f"{args.file}: {exc}") from None
    began = time.perf_counter()
    with solving(args.planner, args.time_limit, enabled=PLANNERS[args.planner].searches):
        plan = run_planner(args.planner, problem, time_limit=args.time_limit, seed=args.seed,
                           workers=args.workers, deterministic=args.deterministic)
    seconds = time.perf_counter() - began
    errors = validate_plan(problem.with_capacity(None), plan)
    result = {
        "problem": args.file, "buffers": len(problem.buffers), "planner": args.planner,
        "arena_bytes": plan.arena_bytes, "lower_bound_bytes": plan.lower_bound_bytes,
        "ratio": round(plan.ratio, 6), "status": plan.status, "optimal": plan.optimal,
        "best_bound_bytes": plan.best_bound,
        "gap": None if plan.gap is None else round(plan.gap, 6),
        "solve_seconds": round(seconds, 6), "valid": not errors,
    }
    if args.capacity is not None:
        result["capacity_bytes"] = args.capacity
        result["fits"] = plan.arena_bytes <= args.capacity
    if args.out:
        problem.write_csv(args.out, plan.offsets)
        result["out"] = args.out
    return result


COMPARE_RULES = [
    Rule(lambda a: a.json and a.format not in (None, "json"),
         lambda a: f"--json prints JSON, --format {a.format} prints {a.format}; give one"),
    Rule(lambda a: a.plot is not None and not a.plot.lower().endswith(FIGURE_SUFFIXES),
         lambda a: f"--plot {a.plot!r}: use a .png, .svg or .pdf file name"),
    Rule(lambda a: given(a, "time_limit") and not searching_offsets(planner_list(a.planners)),
         f"--time-limit bounds a searching planner ({SEARCHING_OFFSETS}); none of the "
         "planners asked for searches"),
    Rule(lambda a: given(a, "seed") and not searching_offsets(planner_list(a.planners)),
         f"--seed seeds a searching planner ({SEARCHING_OFFSETS}); none of the planners "
         "asked for searches"),
]


def run_compare(args: argparse.Namespace) -> Formatted:
    check(args, COMPARE_RULES, {"seed": 0, "format": "table"})
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise TrainplanError("--models names no model; give e.g. lenet5,resnet18_cifar")
    graphs = {}
    for model in models:
        one = copy.copy(args)
        one.model = model
        graphs[model] = graph_from_args(one)
    pairs = compare_plans(graphs, planner_list(args.planners), order=args.order or "nntrainer",
                          time_limit=args.time_limit, seed=args.seed)
    frame = compare_frame(pairs)
    if args.out:
        save_frame(frame, args.out)
    if args.plot:
        from trainplan.experiments.plot_compare import planner_curves, plot_compare
        from trainplan.experiments.plots import use_file_backend

        use_file_backend()
        plot_compare(planner_curves(pairs), args.plot)
    return Formatted(frame, "json" if args.json else args.format)


def planners_frame() -> pd.DataFrame:
    """The offset and swap planners: kind, name, whether it searches, what it does."""
    rows = [{"kind": "offsets", "planner": name, "searches": spec.searches,
             "description": spec.description} for name, spec in PLANNERS.items()]
    rows.append({"kind": "offsets", "planner": "best", "searches": False,
                 "description": "under a budget: the smallest arena of the greedy planners"})
    rows += [{"kind": "swap", "planner": name, "searches": name == "optimal",
              "description": spec.description} for name, spec in SWAP_PLANNERS.items()]
    return pd.DataFrame(rows)


def run_planners(args: argparse.Namespace) -> pd.DataFrame:
    return planners_frame()

