"""The options every command that builds a training graph or plans it shares, and the one
place that turns them into a graph and a TrainingPlan (planned here, or loaded with --plan)."""

from __future__ import annotations

import argparse
import math

import networkx as nx

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import InvalidPlanFile, InvalidShape, TrainplanError
from trainplan.planner.identity import graph_identity, mismatch
from trainplan.planner.offsets import PLANNERS
from trainplan.planner.order import ORDERS
from trainplan.planner.plan_training import (
    DEFAULT_ALIGNMENT,
    DEFAULT_OFFSETS,
    DEFAULT_SWAP,
    DEFAULT_SWAP_OFFSETS,
    offsets_names,
    plan_training,
)
from trainplan.planner.remat import REMAT_PLANNERS
from trainplan.planner.split import graph_for
from trainplan.planner.strategies import STRATEGIES
from trainplan.planner.swap import SWAP_PLANNERS
from trainplan.planner.training_plan import TrainingPlan
from trainplan.planner.zoo import get_model

DEFAULT_ORDER = "nntrainer"


def add_graph_options(parser: argparse.ArgumentParser, model_required: bool = True, *,
                      model: bool = True) -> None:
    if model:
        parser.add_argument("--model", required=model_required,
                            help="a zoo model name (see `trainplan models`), an NNTrainer .ini "
                            "(a path or a shipped example), an ONNX file (model.onnx), or a "
                            "PyTorch factory returning an nn.Module (path/to/file.py:fn or "
                            "package.module:fn, with --input-shape)")
    parser.add_argument("--batch", type=_positive_int, default=None,
                        help="batch size (default: 32, or the .ini file's batch_size)")
    parser.add_argument("--input-shape", default=None, help="input shape without batch, "
                        "C:H:W (e.g. 3:32:32; default: the model's; required for a PyTorch "
                        "model)")
    parser.add_argument("--classes", type=_positive_int, default=None,
                        help="number of classes (default: the model's)")
    parser.add_argument("--freeze-until", default=None, metavar="LAYER",
                        help="freeze every layer up to and including LAYER (fine-tune the rest)")
    parser.add_argument("--optimizer", default=None, choices=["sgd", "momentum", "adam"],
                        help="optimizer (default: adam, or the .ini file's)")
    parser.add_argument("--order", default=None, choices=list(ORDERS),
                        help=f"execution order (default: {DEFAULT_ORDER}, or a --plan's)")
    parser.add_argument("--no-inplace", action="store_true",
                        help="run no layer in place (NNTrainer's memory_optimization=false)")
    parser.add_argument("--nntrainer-compat", action="store_true",
                        help="realise the graph exactly as NNTrainer does (its requests)")


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6,
          "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12,
          "tib": 2**40}
MAX_BYTES = 2**62  # sizes past this overflow the int64 arithmetic of the bounds


def parse_bytes(text: str) -> int:
    """``"64MiB"``, ``"1.5GB"``, ``"1000000"`` -> bytes (positive, finite, below 2^62)."""
    raw = text.strip().replace("_", "").replace(",", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    unit = raw[len(number):].strip().lower()
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise InvalidShape(f"{text!r} is not a byte count; write e.g. 64MiB, 1.5GB or "
                           "1000000") from None
    if not math.isfinite(value) or value >= MAX_BYTES:
        raise InvalidShape(f"{text!r}: a byte count must be below 2^62 (4 EiB)")
    if value < 1:
        raise InvalidShape(f"{text!r}: a byte count must be positive")
    return int(value)


def _bytes_arg(text: str) -> int:
    try:
        return parse_bytes(text)
    except InvalidShape as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_from(least: int):
    """An argparse type: a whole number of at least ``least``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value}: must be {least} or more")
        return value
    return parse


_positive_int, _non_negative_int = _int_from(1), _int_from(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: give a positive, finite number of seconds")
    return value


def add_plan_options(parser: argparse.ArgumentParser, *, saved_plan: bool = True) -> None:
    """How to plan (offsets, budget, swap) — or, with ``saved_plan``, ``--plan FILE``."""
    parser.add_argument("--planner", default=None, choices=offsets_names(), metavar="P",
                        help=f"offset planner: {', '.join(offsets_names())} (default "
                        f"{DEFAULT_OFFSETS}; with --budget or --remat {DEFAULT_SWAP_OFFSETS}: the "
                        "smallest arena of the greedy planners)")
    parser.add_argument("--budget", type=_bytes_arg, default=None, metavar="BYTES",
                        help="RAM budget for the arena (e.g. 64MiB, 1.5GB); swaps to storage "
                        "to fit (default: no budget, no swapping)")
    parser.add_argument("--swap", default=None, choices=[*SWAP_PLANNERS, *STRATEGIES],
                        help=f"swap planner under --budget: {', '.join(SWAP_PLANNERS)} "
                        f"(default {DEFAULT_SWAP}); or a joint strategy deciding per value "
                        f"keep, swap or recompute: {', '.join(STRATEGIES)} (needs --device)")
    parser.add_argument("--remat", default=None, choices=list(REMAT_PLANNERS),
                        help="recomputation: " + "; ".join(
                            f"{k}: {v.description}" for k, v in REMAT_PLANNERS.items())
                        + " (default none; optimal uses --budget, else the sqrt planner's "
                        "memory, and --time-limit)")
    parser.add_argument("--split", default=None, metavar="off|auto|K",
                        help="with --budget: run the steps whose working set exceeds the "
                        "budget over the batch in chunks (auto: as many as each needs; K: K "
                        "chunks), so the minimum feasible budget falls (default off)")
    parser.add_argument("--lookahead", type=_non_negative_int, default=None, metavar="K",
                        help="EOs the lookahead swap planner prefetches ahead (default 1; "
                        "only with --swap lookahead)")
    parser.add_argument("--alignment", type=_positive_int, default=None, metavar="BYTES",
                        help=f"every offset a multiple of this (default {DEFAULT_ALIGNMENT}, "
                        "what the runtime needs; with --nntrainer-compat 1: NNTrainer's "
                        "unpadded pools)")
    parser.add_argument("--time-limit", type=_seconds, default=None, metavar="SECONDS",
                        help="seconds a searching planner (exact, cpsat, --swap optimal) may "
                        "use on each problem it solves (default 10)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of searching planners and of the runtime (default 0)")
    if saved_plan:
        parser.add_argument("--plan", default=None, metavar="FILE",
                            help="use a plan saved by `trainplan plan ... --out FILE` as is "
                            "(the graph options, if given, must match it)")


PLANNING = ("planner", "budget", "swap", "lookahead", "remat", "split", "alignment",
            "time_limit")


def graph_from_args(args: argparse.Namespace) -> nx.DiGraph:
    """Build the training graph the options describe (recording how, for saved plans)."""
    spec = get_model(args.model, batch=args.batch,
                     input_shape=parse_shape(args.input_shape), classes=args.classes)
    graph = build_training_graph(spec, batch=args.batch, optimizer=args.optimizer,
                                 freeze_until=args.freeze_until, inplace=not args.no_inplace,
                                 compat=args.nntrainer_compat)
    graph.graph["source"] = {k: getattr(args, k) for k in GRAPH_SOURCE}
    return graph


GRAPH_SOURCE = ("model", "batch", "input_shape", "classes", "freeze_until", "optimizer",
                "no_inplace", "nntrainer_compat")


def planned_graph(args: argparse.Namespace, device=None) -> tuple[nx.DiGraph, TrainingPlan]:
    """The graph and the plan the options ask for: ``--plan FILE`` loaded and matched against
    the graph (built from the options, or from the plan's own record of them), else planned
    here; a ``device`` (name, file or profile) guides the optimal planners with its storage
    and compute, and joint strategies with its simulated time."""
    if getattr(args, "plan", None):
        return _saved(args)
    if args.lookahead is not None and args.swap != "lookahead":
        raise TrainplanError("--lookahead goes with --swap lookahead; other swap planners do "
                             "not prefetch a fixed number of EOs ahead")
    if args.swap is not None and args.budget is None:
        raise TrainplanError(f"--swap {args.swap} needs --budget BYTES: without a budget "
                             "nothing is swapped")
    if args.swap in STRATEGIES and device is None:
        raise TrainplanError(f"--swap {args.swap} compares plans by their simulated time on a "
                             "device: give --device NAME (see `trainplan devices`)")
    graph = graph_from_args(args)
    costs = score = None
    if device is not None:
        from trainplan.experiments.device_costs import device_costs, device_score
        costs, score = device_costs(device), device_score(device)
    plan = plan_training(graph, order=args.order or DEFAULT_ORDER, offsets=args.planner,
                         budget=args.budget, swap=args.swap,
                         lookahead=1 if args.lookahead is None else args.lookahead,
                         remat=args.remat, alignment=args.alignment, costs=costs, score=score,
                         time_limit=args.time_limit, seed=args.seed or 0,
                         split=getattr(args, "split", None))
    return graph_for(graph, plan), plan


def _saved(args: argparse.Namespace) -> tuple[nx.DiGraph, TrainingPlan]:
    given = [f"--{k.replace('_', '-')}" for k in PLANNING if getattr(args, k, None) is not None]
    if given:
        raise TrainplanError(f"--plan fixes how the graph is planned; drop {', '.join(given)} "
                             "(or plan again without --plan)")
    plan = TrainingPlan.load(args.plan)
    source = plan.graph.source
    if args.model is None and not source.get("model"):
        raise InvalidPlanFile(f"{args.plan} does not say how its graph was built; give "
                              "--model and the graph options it was planned with")
    for key in GRAPH_SOURCE:  # what the command line leaves out, the plan's record gives
        if getattr(args, key, None) in (None, False):
            setattr(args, key, source.get(key))
    graph = graph_for(graph_from_args(args), plan)
    wrong = mismatch(plan.graph, graph_identity(graph))
    if wrong:
        raise InvalidPlanFile(f"{args.plan} was planned for {wrong}; plan this graph with "
                              "`trainplan plan ... --out` or give the options it was made with")
    if args.order is not None and args.order != plan.order.name:
        raise InvalidPlanFile(f"{args.plan} was planned under order {plan.order.name!r}, not "
                              f"{args.order!r}; drop --order or plan again")
    return graph, plan


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        dims = tuple(int(p) for p in text.replace("x", ":").split(":") if p)
    except ValueError:
        raise InvalidShape(f"--input-shape {text!r}: write it as C:H:W, e.g. 3:32:32") from None
    if not dims or any(d <= 0 for d in dims):
        raise InvalidShape(f"--input-shape {text!r}: every dimension must be positive")
    return dims


def planner_list(text: str) -> list[str]:
    """``all`` or a comma-separated list of offset planner names, checked."""
    if text == "all":
        return list(PLANNERS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PLANNERS]
    if unknown or not names:
        raise TrainplanError(f"unknown planner(s) {', '.join(unknown) or '(none given)'}; "
                             f"valid: {', '.join(PLANNERS)}")
    return names
