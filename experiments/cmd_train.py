"""`trainplan train`: execute planned training with the numpy runtime and measure it."""

from __future__ import annotations

import argparse

from trainplan.experiments.graph_options import add_graph_options, add_swap_options, graph_from_args
from trainplan.planner.errors import TrainplanError


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model with the numpy runtime inside one arena")
    add_graph_options(p)
    p.add_argument("--dataset", default="synthetic", choices=["digits", "synthetic"])
    group = p.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=int, default=None)
    group.add_argument("--iterations", type=int, default=None)
    p.add_argument("--planner", default=None, help="offset planner (default nntrainer_v1; with "
                   "--budget the best greedy one)")
    add_swap_options(p)
    p.add_argument("--reference", action="store_true",
                   help="train without a plan: every buffer its own array")
    p.add_argument("--seed", type=int, default=0)
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
    p.add_argument("--threads", type=int, default=None, help="pin every op large enough for "
                   "several threads to this many (default: as many as the cores other processes "
                   "leave free)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> dict:
    from trainplan.runtime.data import digits, synthetic
    from trainplan.runtime.session import Session, SessionOptions
    from trainplan.runtime.train import train

    if args.resume and not args.checkpoint:
        raise TrainplanError("--resume needs --checkpoint PATH")
    if args.swap_through and (args.budget is None or args.reference):
        raise TrainplanError("--swap-through needs --budget BYTES (and no --reference): "
                             "without a budget nothing is swapped")
    if args.threads is not None and args.threads < 1:
        raise TrainplanError(f"--threads must be at least 1, got {args.threads}")
    graph = graph_from_args(args)
    batch = graph.graph["batch"]
    if args.dataset == "digits":
        data, test = digits(graph, seed=args.seed)
    else:
        data, test = synthetic(graph, args.samples or 8 * batch, seed=args.seed), None
    if args.epochs is None and args.iterations is None:
        args.epochs = 1
    lr = args.learning_rate or (1e-3 if graph.graph["optimizer"] == "adam" else 1e-2)
    planner = None if args.reference else (args.planner or
                                           ("best" if args.budget else "nntrainer_v1"))
    options = SessionOptions(planner=planner, budget=None if args.reference else args.budget,
                             swap=args.swap, lookahead=args.lookahead, seed=args.seed,
                             learning_rate=lr, swap_dir=args.swap_dir, order=args.order,
                             swap_through=args.swap_through, threads=args.threads)
    with Session(graph, options) as session:
        report = train(session, data, batch=batch, epochs=args.epochs,
                       iterations=args.iterations, test=test, seed=args.seed,
                       checkpoint=args.checkpoint, resume=args.resume,
                       progress=not args.no_progress)
    return {"model": graph.graph["model"], "planner": planner or "reference",
            "swap": args.swap if args.budget and not args.reference else None,
            **report.record()}
