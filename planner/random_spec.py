"""Random model specs over every layer type: the graphs the independent validator is run on
beyond the zoo (tests/planner/test_verify_random.py, experiments/bench_verify.py).

A spec grows layer by layer from one or two inputs (a vector, an image, a sequence or token
ids, or a layer given an ``input_shape``): each new layer reads an earlier output whose shape
suits it (branches appear when an output is read twice, and ``multiout`` is then inserted by
``resolve``), merges equal shapes (addition, concat, attention over two sequences), and one or
two losses end it. Layers may be marked ``trainable = false``. Every choice goes through a
``Chooser``, so hypothesis can draw (and shrink) the same specs that ``random.Random`` makes for
the benchmark.

>>> import random
>>> spec = random_spec(RandomChooser(random.Random(3)))
>>> from trainplan.planner.build import build_training_graph
>>> build_training_graph(spec).graph["model"]
'random'
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from trainplan.planner.layers.elementwise import ACTIVATIONS
from trainplan.planner.spec import LayerDef, ModelSpec

T = TypeVar("T")
Shape = tuple[int, ...]  # without the batch dimension


class Chooser(Protocol):
    """Where a random spec's choices come from."""

    def integer(self, lo: int, hi: int) -> int: ...  # inclusive

    def choice(self, options: Sequence[T]) -> T: ...


@dataclass
class RandomChooser:
    """Choices from a seeded ``random.Random``."""

    rng: random.Random

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]


@dataclass
class _Node:
    name: str
    shape: Shape
    tokens: bool = False  # integer ids: only an embedding reads them


class _Builder:
    def __init__(self, c: Chooser):
        self.c = c
        self.layers: list[LayerDef] = []
        self.nodes: list[_Node] = []

    def add(self, type_: str, inputs: list[_Node], shape: Shape, *, tokens: bool = False,
            **props) -> _Node:
        name = f"l{len(self.layers)}_{type_}"
        trainable = self.c.integer(0, 5) > 0
        self.layers.append(LayerDef(name, type_, props, tuple(n.name for n in inputs),
                                    trainable))
        node = _Node(name, shape, tokens)
        self.nodes.append(node)
        return node

    def pick(self) -> _Node:
        """An earlier output, most often the latest."""
        latest = self.nodes[-1]
        return latest if self.c.integer(0, 2) else self.c.choice(self.nodes)


def _input(b: _Builder) -> _Node:
    kind = b.c.choice(("vector", "image", "sequence", "tokens", "layer"))
    if kind == "vector":
        shape = (b.c.integer(1, 12),)
    elif kind == "image":
        shape = (b.c.integer(1, 3), b.c.integer(1, 7), b.c.integer(1, 7))
    elif kind in ("sequence", "tokens"):
        shape = (b.c.integer(1, 5), b.c.integer(1, 8))[:1 if kind == "tokens" else 2]
    if kind != "layer":
        return b.add("input", [], shape, tokens=kind == "tokens", input_shape=shape)
    # a layer that reads the data itself (NNTrainer: input_shape on the first layer)
    n_in, units = b.c.integer(1, 8), b.c.integer(1, 8)
    return b.add("fully_connected", [], (units,), input_shape=(n_in,), unit=units)


def _grow(b: _Builder, x: _Node) -> _Node | None:
    """One layer reading ``x`` (and maybe other outputs), or None when none fits."""
    c, s = b.c, x.shape
    if x.tokens:
        return _embedding(b, x)
    options = ["fully_connected", "activation", "dropout", "layer_normalization",
               "batch_normalization", "identity", "reshape", "addition", "concat"]
    if len(s) >= 2:
        options.append("flatten")
    if len(s) == 3:
        options += ["conv2d", "pooling2d"]
    if len(s) == 2:
        options += ["lstm", "multi_head_attention"]
    kind = c.choice(options)
    return _LAYER_MAKERS[kind](b, x)


def _embedding(b: _Builder, x: _Node) -> _Node:
    dim = b.c.integer(1, 6)
    return b.add("embedding", [x], (*x.shape, dim), in_dim=b.c.integer(2, 20), out_dim=dim)


def _fully_connected(b: _Builder, x: _Node) -> _Node:
    units = b.c.integer(1, 10)
    return b.add("fully_connected", [x], (*x.shape[:-1], units), unit=units,
                 bias=bool(b.c.integer(0, 3)))


def _activation(b: _Builder, x: _Node) -> _Node:
    return b.add("activation", [x], x.shape, activation=b.c.choice(sorted(ACTIVATIONS)))


def _dropout(b: _Builder, x: _Node) -> _Node:
    return b.add("dropout", [x], x.shape, dropout_rate=b.c.choice((0.0, 0.25, 0.5)))


def _same(type_: str):
    def make(b: _Builder, x: _Node) -> _Node:
        return b.add(type_, [x], x.shape)
    return make


def _reshape(b: _Builder, x: _Node) -> _Node:
    n = 1
    for d in x.shape:
        n *= d
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    a = b.c.choice(divisors)
    target = b.c.choice(((n,), (a, n // a), (-1, a) if a else (n,)))
    shape = tuple(n // a if t == -1 else t for t in target)
    return b.add("reshape", [x], shape, target_shape=target)


def _flatten(b: _Builder, x: _Node) -> _Node:
    n = 1
    for d in x.shape:
        n *= d
    return b.add("flatten", [x], (n,))


def _addition(b: _Builder, x: _Node) -> _Node:
    same = [n for n in b.nodes if n.shape == x.shape and not n.tokens]
    others = [b.c.choice(same) for _ in range(b.c.integer(1, 2))]
    return b.add("addition", [x, *others], x.shape)


def _concat(b: _Builder, x: _Node) -> _Node:
    axis = b.c.integer(0, len(x.shape) - 1)
    fits = [n for n in b.nodes if not n.tokens and len(n.shape) == len(x.shape)
            and all(p == q for i, (p, q) in enumerate(zip(n.shape, x.shape)) if i != axis)]
    other = b.c.choice(fits)
    shape = list(x.shape)
    shape[axis] += other.shape[axis]
    return b.add("concat", [x, other], tuple(shape), axis=axis + 1)


def _conv2d(b: _Builder, x: _Node) -> _Node | None:
    ch, h, w = x.shape
    k, dil = b.c.integer(1, 3), b.c.integer(1, 2)
    pad = b.c.choice((0, 1, "same"))
    stride = b.c.integer(1, 2)
    p = (dil * (k - 1)) // 2 if pad == "same" else pad
    oh, ow = ((n + 2 * p - dil * (k - 1) - 1) // stride + 1 for n in (h, w))
    if oh <= 0 or ow <= 0:
        return None
    groups = b.c.choice([g for g in (1, 2, 3) if ch % g == 0])
    filters = groups * b.c.integer(1, 3)
    return b.add("conv2d", [x], (filters, oh, ow), filters=filters, kernel_size=k,
                 stride=stride, padding=pad, dilation=dil, groups=groups,
                 bias=bool(b.c.integer(0, 3)))


def _pooling2d(b: _Builder, x: _Node) -> _Node | None:
    ch, h, w = x.shape
    kind = b.c.choice(("max", "average", "global_max", "global_average"))
    if kind.startswith("global"):
        return b.add("pooling2d", [x], (ch, 1, 1), pooling=kind)
    k, stride = b.c.integer(1, 2), b.c.integer(1, 2)
    oh, ow = ((n - k) // stride + 1 for n in (h, w))
    if oh <= 0 or ow <= 0:
        return None
    return b.add("pooling2d", [x], (ch, oh, ow), pooling=kind, pool_size=k, stride=stride)


def _lstm(b: _Builder, x: _Node) -> _Node:
    t, _ = x.shape
    unit = b.c.integer(1, 6)
    seq = bool(b.c.integer(0, 1))
    return b.add("lstm", [x], (t, unit) if seq else (unit,), unit=unit, return_sequences=seq)


def _attention(b: _Builder, x: _Node) -> _Node:
    t, d = x.shape
    memories = [n for n in b.nodes if len(n.shape) == 2 and not n.tokens]
    inputs = [x]
    if b.c.integer(0, 1):
        key = b.c.choice(memories)
        inputs.append(key)
        if b.c.integer(0, 1):
            inputs.append(b.c.choice([n for n in memories if n.shape[0] == key.shape[0]]))
    heads = b.c.integer(1, 2)
    projected = heads * b.c.integer(1, 3)
    return b.add("multi_head_attention", inputs, (t, d), num_heads=heads,
                 projected_key_dim=projected, projected_dim=projected)


_LAYER_MAKERS = {
    "fully_connected": _fully_connected, "activation": _activation, "dropout": _dropout,
    "layer_normalization": _same("layer_normalization"),
    "batch_normalization": _same("batch_normalization"), "identity": _same("identity"),
    "reshape": _reshape, "flatten": _flatten, "addition": _addition, "concat": _concat,
    "conv2d": _conv2d, "pooling2d": _pooling2d, "lstm": _lstm,
    "multi_head_attention": _attention,
}


def random_spec(c: Chooser, *, max_layers: int = 10) -> ModelSpec:
    """A random model: one or two inputs, up to ``max_layers`` layers, one or two losses."""
    b = _Builder(c)
    for _ in range(c.integer(1, 2)):
        _input(b)
    for _ in range(c.integer(0, max_layers)):
        _grow(b, b.pick())
    heads = [n for n in b.nodes if not n.tokens] or [_embedding(b, b.nodes[-1])]
    for _ in range(c.integer(1, 2)):
        x = heads[-1] if c.integer(0, 2) else c.choice(heads)
        b.add(c.choice(("cross_softmax", "mse")), [x], x.shape)
    return ModelSpec("random", tuple(b.layers), batch=c.integer(1, 3),
                     optimizer=c.choice(("sgd", "momentum", "adam")))
