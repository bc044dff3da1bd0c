"""The options every command that builds a training graph shares, and the build itself."""

from __future__ import annotations

import argparse

import networkx as nx

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import InvalidShape
from trainplan.planner.order import ORDERS
from trainplan.planner.zoo import get_model


def add_graph_options(parser: argparse.ArgumentParser, model_required: bool = True) -> None:
    parser.add_argument("--model", required=model_required,
                        help="a zoo model name (see `trainplan models`), an NNTrainer .ini "
                        "(a path or a shipped example), an ONNX file (model.onnx), or a "
                        "PyTorch factory returning an nn.Module (path/to/file.py:fn or "
                        "package.module:fn, with --input-shape)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: 32, or "
                        "the .ini file's batch_size)")
    parser.add_argument("--input-shape", default=None, help="input shape without batch, "
                        "C:H:W (e.g. 3:32:32); required for a PyTorch model")
    parser.add_argument("--classes", type=int, default=None, help="number of classes")
    parser.add_argument("--freeze-until", default=None, metavar="LAYER",
                        help="freeze every layer up to and including LAYER (fine-tune the rest)")
    parser.add_argument("--optimizer", default=None, choices=["sgd", "momentum", "adam"],
                        help="optimizer (default: adam, or the .ini file's)")
    parser.add_argument("--order", default="nntrainer", choices=list(ORDERS),
                        help="execution order (default: nntrainer)")
    parser.add_argument("--no-inplace", action="store_true",
                        help="run no layer in place (NNTrainer's memory_optimization=false)")
    parser.add_argument("--nntrainer-compat", action="store_true",
                        help="realise the graph exactly as NNTrainer does (its requests)")


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6,
          "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12,
          "tib": 2**40}


def parse_bytes(text: str) -> int:
    """``"64MiB"``, ``"1.5GB"``, ``"1000000"`` -> bytes."""
    raw = text.strip().replace("_", "").replace(",", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    unit = raw[len(number):].strip().lower()
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise InvalidShape(f"{text!r} is not a byte count; write e.g. 64MiB, 1.5GB or "
                           "1000000") from None
    if value <= 0:
        raise InvalidShape(f"{text!r}: a byte count must be positive")
    return int(value)


def _bytes_arg(text: str) -> int:
    try:
        return parse_bytes(text)
    except InvalidShape as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_swap_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", type=_bytes_arg, default=None, metavar="BYTES",
                        help="RAM budget for the planned tensors (e.g. 64MiB, 1.5GB); "
                             "swaps to storage to fit")
    parser.add_argument("--swap", default="belady", help="swap planner: lookahead, belady, "
                        "optimal (with --budget)")
    parser.add_argument("--lookahead", type=int, default=1, metavar="K",
                        help="EOs the lookahead swap planner prefetches ahead (default 1)")


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


def graph_from_args(args: argparse.Namespace) -> nx.DiGraph:
    """Build the training graph the options describe."""
    spec = get_model(args.model, batch=args.batch,
                     input_shape=parse_shape(args.input_shape), classes=args.classes)
    return build_training_graph(spec, batch=args.batch, optimizer=args.optimizer,
                                freeze_until=args.freeze_until, inplace=not args.no_inplace,
                                compat=args.nntrainer_compat)
