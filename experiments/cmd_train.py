"""`trainplan train`: execute planned training with the numpy runtime and measure it."""

from __future__ import annotations

import argparse

from trainplan.experiments.cli_rules import Rule, check, flag, given, search_rules
from trainplan.experiments.graph_options import (
    PLANNING,
    _positive_int,
    add_graph_options,
    add_plan_options,
    graph_from_args,
    planned_graph,
)
from trainplan.experiments.progress import planning
from trainplan.experiments.training import DATASETS
from trainplan.planner.errors import TrainplanError


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model with the numpy runtime inside one arena")
    add_graph_options(p, model_required=False)
    p.add_argument("--dataset", default="synthetic", choices=list(DATASETS),
                   help="digits: scikit-learn's handwritten digits (8x8, needs .[data]), with a "
                   "test split; synthetic: random inputs and labels (default synthetic)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=_positive_int, default=None,
                       help="passes over the training data (default 1)")
    group.add_argument("--iterations", type=_positive_int, default=None,
                       help="train exactly this many iterations instead of whole epochs")
    add_plan_options(p)
    p.add_argument("--device", default=None, help="a device profile whose storage and compute "
                   "guide the optimal planners and joint strategies (needed by --swap joint*)")
    p.add_argument("--reference", action="store_true",
                   help="train without a plan: every buffer its own array")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="default 1e-3 (adam), 1e-2 otherwise")
    p.add_argument("--samples", type=_positive_int, default=None,
                   help="with --dataset synthetic: samples (default 8 batches)")
    p.add_argument("--checkpoint", default=None, help="write a checkpoint after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--swap-dir", default=None, help="directory for the swap file of a plan "
                   "that swaps (default: the system's temporary directory)")
    p.add_argument("--swap-through", action="store_true",
                   help="flush every swap write to storage and keep no swapped bytes in the "
                   "page cache (as a device under memory pressure; slower)")
    p.add_argument("--threads", type=int, default=None, help="pin every op large enough for "
                   "several threads to this many (default: as many as the cores other processes "
                   "leave free)")
    p.add_argument("--no-lane-worker", action="store_true",
                   help="run every lane on this process's threads: no helper process (its "
                   "interpreter and numpy, about 15 MB), at the cost of speed on several "
                   "threads")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar and no per-epoch lines on stderr (the bar shows only "
                   "on a terminal)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_train)


def _planning_given(args: argparse.Namespace) -> list[str]:
    return [flag(k) for k in (*PLANNING, "plan") if given(args, k)]


TRAIN_RULES = [
    Rule(lambda a: a.resume and not a.checkpoint, "--resume needs --checkpoint PATH"),
    Rule(lambda a: a.model is None and not a.plan, "give --model NAME (or --plan FILE)"),
    Rule(lambda a: a.reference and _planning_given(a),
         lambda a: f"--reference trains without a plan; drop {', '.join(_planning_given(a))}"),
    Rule(lambda a: a.threads is not None and a.threads < 1,
         lambda a: f"--threads must be at least 1, got {a.threads}"),
    Rule(lambda a: given(a, "samples") and a.dataset != "synthetic",
         "--samples sizes the synthetic data set; the digits come with their own samples"),
    *search_rules(seeds_runtime=True),
]


def _needs_swapping(option: str) -> str:
    return (f"{option} needs a plan that swaps (--budget BYTES below what the model needs, or "
            "a --plan that swaps): otherwise nothing is swapped")


def run_train(args: argparse.Namespace) -> dict:
    from trainplan.experiments.training import run_training, train_record

    check(args, TRAIN_RULES, {"seed": 0})
    if args.reference:
        graph, plan = graph_from_args(args), None
    else:
        with planning(args):
            graph, plan = planned_graph(args, args.device)
    for option in ("swap_through", "swap_dir"):
        if given(args, option) and (plan is None or not plan.swapped):
            raise TrainplanError(_needs_swapping(flag(option)))
    report = run_training(graph, plan, dataset=args.dataset, epochs=args.epochs,
                          iterations=args.iterations, samples=args.samples,
                          learning_rate=args.learning_rate, seed=args.seed,
                          swap_dir=args.swap_dir, swap_through=args.swap_through,
                          checkpoint=args.checkpoint, resume=args.resume,
                          order=args.order or "nntrainer", threads=args.threads,
                          lane_worker=not args.no_lane_worker, progress=not args.no_progress)
    return train_record(graph, plan, report)
