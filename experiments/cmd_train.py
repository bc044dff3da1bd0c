"""`trainplan train`: execute planned training with the numpy runtime and measure it."""

from __future__ import annotations

import argparse

from trainplan.experiments.graph_options import (
    add_graph_options,
    add_plan_options,
    graph_from_args,
    planned_graph,
)
from trainplan.planner.errors import TrainplanError


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model with the numpy runtime inside one arena")
    add_graph_options(p, model_required=False)
    p.add_argument("--dataset", default="synthetic", choices=["digits", "synthetic"])
    group = p.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=int, default=None)
    group.add_argument("--iterations", type=int, default=None)
    add_plan_options(p)
    p.add_argument("--reference", action="store_true",
                   help="train without a plan: every buffer its own array")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="default 1e-3 (adam), 1e-2 otherwise")
    p.add_argument("--samples", type=int, default=None,
                   help="synthetic samples (default 8 batches)")
    p.add_argument("--checkpoint", default=None, help="write a checkpoint after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--swap-dir", default=None, help="directory for the swap file")
    p.add_argument("--swap-through", action="store_true",
                   help="flush every swap write to storage and keep no swapped bytes in the "
                   "page cache (as a device under memory pressure; slower)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> dict:
    from trainplan.runtime.data import digits, synthetic
    from trainplan.runtime.session import Session, SessionOptions
    from trainplan.runtime.train import rss_bytes, train

    if args.resume and not args.checkpoint:
        raise TrainplanError("--resume needs --checkpoint PATH")
    if args.model is None and not args.plan:
        raise TrainplanError("give --model NAME (or --plan FILE)")
    if args.reference and (args.plan or args.budget is not None or args.planner):
        raise TrainplanError("--reference trains without a plan; drop --plan, --planner and "
                             "--budget")
    if args.reference:
        graph, plan = graph_from_args(args), None
    else:
        graph, plan = planned_graph(args)
    if args.swap_through and (plan is None or not plan.swapped):
        raise TrainplanError("--swap-through needs a plan that swaps (--budget BYTES below "
                             "what the model needs, or a --plan that swaps): otherwise nothing "
                             "is swapped")
    batch = graph.graph["batch"]
    if args.dataset == "digits":
        data, test = digits(graph, seed=args.seed)
    else:
        data, test = synthetic(graph, args.samples or 8 * batch, seed=args.seed), None
    if args.epochs is None and args.iterations is None:
        args.epochs = 1
    lr = args.learning_rate or (1e-3 if graph.graph["optimizer"] == "adam" else 1e-2)
    options = SessionOptions(seed=args.seed, learning_rate=lr, swap_dir=args.swap_dir,
                             swap_through=args.swap_through)
    baseline = rss_bytes()  # before the session allocates the arena
    session = Session(graph, plan, options) if plan is not None else Session.reference(
        graph, options, order=args.order or "nntrainer")
    with session:
        report = train(session, data, batch=batch, epochs=args.epochs,
                       iterations=args.iterations, test=test, seed=args.seed,
                       checkpoint=args.checkpoint, resume=args.resume,
                       progress=not args.no_progress, baseline_rss_bytes=baseline)
    figures = plan.record() if plan is not None else {}
    measured = report.record()
    return {"model": graph.graph["model"],
            "planner": figures.get("planner", "reference"), "swap": figures.get("swap"),
            "budget_bytes": figures.get("budget_bytes"),
            "arena_bytes": measured.pop("arena_bytes"),
            **{k: figures.get(k) for k in ("peak_resident_bytes", "peak_live_bytes")},
            **measured}
