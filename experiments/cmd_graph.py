"""`trainplan models` and `trainplan graph`: the zoo and one model's training graph."""

from __future__ import annotations

import argparse

import networkx as nx

from trainplan.experiments.graph_options import DEFAULT_ORDER, add_graph_options, graph_from_args
from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import atomic_write_text
from trainplan.planner.summary import graph_summary
from trainplan.planner.zoo import MODELS


def register(sub) -> None:
    p = sub.add_parser("models", help="list the zoo models")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_models)
    p = sub.add_parser("graph", help="build a model's training graph and print its facts")
    add_graph_options(p)
    p.add_argument("--export", nargs=2, metavar=("FORMAT", "FILE"),
                   help="also write the graph as graphml or dot")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_graph)


def run_models(args: argparse.Namespace) -> dict | list:
    return [{"model": name, "description": e.description,
             "input_shape": ":".join(map(str, e.defaults["input_shape"])),
             "classes": e.defaults["classes"] or ""} for name, e in MODELS.items()]


def run_graph(args: argparse.Namespace) -> dict:
    graph = graph_from_args(args)
    result = graph_summary(graph, args.order or DEFAULT_ORDER)
    if args.export:
        fmt, path = args.export
        export_graph(graph, fmt, path)
        result["exported"] = path
    return result


def export_graph(graph: nx.DiGraph, fmt: str, path: str) -> None:
    """Write the graph for other tools; attributes become strings where they are not scalars."""
    flat = nx.DiGraph()
    flat.graph.update({k: str(v) for k, v in graph.graph.items() if k != "layers"})
    for node, data in graph.nodes(data=True):
        flat.add_node(node, **{k: _scalar(v) for k, v in data.items()})
    flat.add_edges_from(graph.edges)
    if fmt == "graphml":
        text = "\n".join(nx.generate_graphml(flat))
    elif fmt == "dot":
        text = _dot(flat)
    else:
        raise TrainplanError(f"--export format {fmt!r}: use graphml or dot")
    atomic_write_text(path, text + "\n")


def _scalar(value):
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _dot(graph: nx.DiGraph) -> str:
    """Graphviz DOT: ops as boxes, tensors as ellipses, attributes as node attributes."""
    def q(text) -> str:
        return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph training {", "  rankdir=TB;"]
    for node, data in graph.nodes(data=True):
        attrs = {k: v for k, v in data.items() if v != ""}
        if "shape" in attrs:
            attrs["tensor_shape"] = attrs.pop("shape")
        attrs["shape"] = "box" if data["kind"] == "op" else "ellipse"
        body = ", ".join(f"{k}={q(v)}" for k, v in attrs.items())
        lines.append(f"  {q(node)} [{body}];")
    for u, v in graph.edges:
        lines.append(f"  {q(u)} -> {q(v)};")
    lines.append("}")
    return "\n".join(lines)
