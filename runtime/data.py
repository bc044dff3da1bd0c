"""Training data: the handwritten digits bundled with scikit-learn, or synthetic data shaped
for any model. A dataset maps every data placeholder and every label tensor to an array whose
first axis is the sample. A placeholder split into chunks (planner/split.py) is named by the
whole tensor its chunks cut; ``feed_tensors`` hands each chunk its rows."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from trainplan.planner.errors import TrainplanError
from trainplan.planner.graph import Slot
from trainplan.planner.resources import require_memory


class DataError(TrainplanError):
    """The data set does not fit the model (shape, classes) or cannot be loaded."""


@dataclass
class Dataset:
    """Arrays per graph tensor (inputs and labels), the same number of samples each."""

    arrays: dict[str, np.ndarray]

    @property
    def size(self) -> int:
        return len(next(iter(self.arrays.values())))

    def batches(self, batch: int, rng: np.random.Generator | None):
        """Full batches in a shuffled (or fixed) order; a last partial batch is dropped."""
        order = rng.permutation(self.size) if rng is not None else np.arange(self.size)
        for start in range(0, self.size - batch + 1, batch):
            idx = order[start:start + batch]
            yield {t: a[idx] for t, a in self.arrays.items()}


def data_tensors(graph: nx.DiGraph) -> tuple[list[str], list[str]]:
    """(input placeholders, labels) of the graph, in layer order (a split placeholder by the
    name of the whole tensor)."""
    rank = {x["name"]: i for i, x in enumerate(graph.graph["layers"])}
    found: dict[Slot, set[tuple[int, str]]] = {Slot("input"): set(), Slot("label"): set()}
    for t, d in graph.nodes(data=True):
        if d.get("kind") == "tensor" and d["slot"] in found:
            chunk = d.get("chunk")
            found[d["slot"]].add((rank[d["layer"]], chunk.whole if chunk else t))
    inputs, labels = (found[Slot(kind)] for kind in ("input", "label"))
    return [t for _, t in sorted(inputs)], [t for _, t in sorted(labels)]


def _pieces(graph: nx.DiGraph, whole: str) -> list[tuple[str, dict]]:
    """The chunk tensors cutting ``whole`` (a placeholder of the unsplit graph)."""
    found = [(t, d) for t, d in graph.nodes(data=True) if d.get("kind") == "tensor"
             and d.get("chunk") is not None and d["chunk"].whole == whole]
    if not found:
        raise DataError(f"{whole!r} is not a data tensor of the model")
    return sorted(found, key=lambda p: p[1]["chunk"].index)


def data_shape(graph: nx.DiGraph, name: str) -> tuple[int, ...]:
    """The shape of a data tensor (of the whole batch, when the graph splits it)."""
    if name in graph:
        return graph.nodes[name]["shape"]
    _, d = _pieces(graph, name)[0]
    return (d["chunk"].total, *d["shape"][1:])


def _data_layer(graph: nx.DiGraph, name: str) -> str:
    return graph.nodes[name]["layer"] if name in graph else _pieces(graph, name)[0][1]["layer"]


def feed_tensors(graph: nx.DiGraph, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A batch by graph tensor: each chunk of a split placeholder gets its rows."""
    out = {}
    for name, values in batch.items():
        if name in graph:
            out[name] = values
            continue
        for t, d in _pieces(graph, name):
            out[t] = values[d["chunk"].start:d["chunk"].stop]
    return out


# layers that pass ids through unchanged on the way to an embedding
_ID_CARRIERS = {"input", "split", "multiout", "reshape", "flatten", "identity"}


def _token_vocab(graph: nx.DiGraph, placeholder: str) -> int | None:
    """The smallest vocabulary of the embeddings the placeholder feeds (through splits,
    reshapes and the like), else None."""
    layers = graph.graph["layers"]
    reach, vocab = {_data_layer(graph, placeholder)}, []
    for x in layers:
        if not any(src in reach for src, _ in x["inputs"]):
            continue
        if x["type"] == "embedding":
            vocab.append(int(x["props"]["in_dim"]))
        elif x["type"] in _ID_CARRIERS:
            reach.add(x["name"])
    return min(vocab) if vocab else None


def synthetic(graph: nx.DiGraph, samples: int, seed: int = 0) -> Dataset:
    """Random inputs (token ids where an embedding reads them) and random one-hot labels
    (random targets for regression losses), ``samples`` of each."""
    rng = np.random.default_rng(seed)
    inputs, labels = data_tensors(graph)
    _require(graph, inputs + labels, samples, "synthetic data")
    arrays = {}
    for t in inputs:
        shape = (samples, *data_shape(graph, t)[1:])
        vocab = _token_vocab(graph, t)
        arrays[t] = (rng.integers(0, vocab, size=shape).astype(np.float32) if vocab
                     else rng.standard_normal(shape).astype(np.float32))
    for t in labels:
        shape = (samples, *data_shape(graph, t)[1:])
        if graph.nodes[_loss_output(graph, t)]["shape"][1:] == shape[1:] and \
                _is_classifier(graph, t):
            classes = rng.integers(0, shape[-1], size=shape[:-1])
            arrays[t] = np.eye(shape[-1], dtype=np.float32)[classes]
        else:
            arrays[t] = rng.standard_normal(shape).astype(np.float32)
    return Dataset(arrays)


def _require(graph: nx.DiGraph, tensors: list[str], samples: int, what: str) -> None:
    """Refuse data that would not fit in RAM (float32 arrays, and a float64 array while each
    is drawn), before drawing it."""
    per_sample = sum(int(np.prod(data_shape(graph, t)[1:], dtype=object)) for t in tensors)
    require_memory(3 * 4 * per_sample * samples, f"{what} ({samples:,} samples)",
                   "use fewer --samples or a smaller --batch or input shape")


def _loss_output(graph: nx.DiGraph, label: str) -> str:
    """The output of the loss layer that reads ``label``."""
    layer = graph.nodes[label]["layer"]
    return next(t for t, d in graph.nodes(data=True) if d.get("kind") == "tensor"
                and d["layer"] == layer and d["slot"] == Slot("output", 0))


def _is_classifier(graph: nx.DiGraph, label: str) -> bool:
    layer = graph.nodes[label]["layer"]
    return next(x["type"] for x in graph.graph["layers"] if x["name"] == layer) == "cross_softmax"


def digits(graph: nx.DiGraph, test_fraction: float = 0.2, seed: int = 0
           ) -> tuple[Dataset, Dataset]:
    """scikit-learn's 8x8 digits, scaled to [0, 1] and enlarged to the model's input (nearest
    neighbour, e.g. 32x32 for LeNet-5); a seeded train/test split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError("the digits data set needs scikit-learn: pip install "
                        "'trainplan[data]'") from exc
    inputs, labels = data_tensors(graph)
    if len(inputs) != 1 or len(labels) != 1:
        raise DataError("digits feeds models with one input and one classification loss")
    (x_name,), (y_name,) = inputs, labels
    shape, classes = data_shape(graph, x_name)[1:], graph.nodes[y_name]["shape"][-1]
    if classes != 10:
        raise DataError(f"digits has 10 classes; the model has {classes} (use --classes 10)")
    _require(graph, [x_name, y_name], 1797, "the digits data set")
    raw = load_digits()
    x = _fit_images(raw.images.astype(np.float32) / 16.0, shape)
    y = np.eye(10, dtype=np.float32)[raw.target]
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1 - test_fraction))
    train, test = order[:cut], order[cut:]
    return (Dataset({x_name: x[train], y_name: y[train]}),
            Dataset({x_name: x[test], y_name: y[test]}))


def _fit_images(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(N, 8, 8) images -> (N, *shape): flattened for vectors, enlarged for (C, H, W)."""
    n = len(images)
    if len(shape) == 1:
        if shape[0] != 64:
            raise DataError(f"digits images have 64 pixels; the model takes {shape[0]} "
                            "(use --input-shape 64 or 1:32:32)")
        return images.reshape(n, 64)
    if len(shape) != 3 or shape[0] != 1 or shape[1] % 8 or shape[2] % 8:
        raise DataError(f"digits images are 1x8x8; the model takes {shape}: use a 1:H:W input "
                        "with H and W multiples of 8")
    big = images.repeat(shape[1] // 8, axis=1).repeat(shape[2] // 8, axis=2)
    return big.reshape(n, *shape)
