"""The ONNX importer: ``--model model.onnx``.

The file's one data input is fixed to a batch (its other dimensions from the file, or from
``--input-shape`` where the file leaves them symbolic), shapes are inferred through the graph
(``onnx.shape_inference`` with data propagation), and nodes are visited in order: a node whose
inputs are all constants (shape arithmetic, weight reordering) is evaluated with ONNX's
reference implementation; every other maps through one table (planner/importers/onnx_ops.py)
onto trainplan's layers, initializers becoming the weights. A scope holding self-attention as
``torch.onnx.export`` writes it (``/…/self_attn/…``) and ``LSTM`` nodes map whole
(planner/importers/onnx_blocks.py). The loss: a final Softmax (Sigmoid) fuses into
cross-entropy, otherwise cross-entropy on a (batch, classes) output, else mean squared error.
ONNX is the optional extra ``trainplan[onnx]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from trainplan.planner.errors import InvalidShape, TrainplanError, UnknownModel
from trainplan.planner.importers.builder import SpecBuilder, unsupported
from trainplan.planner.spec import ModelSpec

TRACE_BATCH = 2


def accepts(value: str) -> bool:
    return value.lower().endswith(".onnx")


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise TrainplanError("importing an ONNX model needs the onnx package: pip install "
                             "'trainplan[onnx]'") from None
    return onnx


@dataclass
class Const:
    """A value known without data (an initializer, a folded node)."""

    array: np.ndarray


@dataclass
class Data:
    """A tensor computed from the input: a layer output ``ref`` of ``shape``; ``time_first``
    marks a (time, batch, ...) view of a batch-first tensor (around an LSTM)."""

    ref: str
    shape: tuple
    time_first: bool = False


@dataclass
class OnnxMapper:
    """The state of one pass over an ONNX graph."""

    graph: object
    builder: SpecBuilder
    shapes: dict  # tensor name -> static shape
    opsets: list
    values: dict = field(default_factory=dict)  # tensor name -> Const | Data | marker
    handled: set = field(default_factory=set)  # node indices a block mapped
    linear_without_bias: dict = field(default_factory=dict)  # MatMul output -> its layer
    consumers: dict = field(default_factory=dict)  # tensor name -> reading node indices
    scopes: dict = field(default_factory=dict)  # scope -> its node indices if attention
    lstm_tensors: dict = field(default_factory=dict)  # LSTM layer -> tensors carrying it

    @property
    def opset(self) -> int:
        return next((o.version for o in self.opsets if o.domain in ("", "ai.onnx")), 13)

    def const(self, name: str, node, what: str = "this input") -> np.ndarray:
        value = self.values.get(name)
        if not isinstance(value, Const):
            raise self.refuse(node, f"{what} must be a constant (an initializer)")
        return value.array

    def data(self, name: str, node) -> Data:
        value = self.values.get(name)
        if not isinstance(value, Data):
            raise self.refuse(node, f"input {name!r} is not a tensor computed from the data")
        if value.time_first:
            raise self.refuse(node, "reads a (time, batch) view; only an LSTM may")
        return value

    def shape(self, name: str, node) -> tuple:
        if name not in self.shapes:
            raise self.refuse(node, f"the shape of {name!r} could not be inferred")
        return self.shapes[name]

    def refuse(self, node, why: str = ""):
        from trainplan.planner.importers.onnx_ops import supported_ops
        return unsupported(node.op_type, node.name or node.output[0], None, supported_ops(),
                           why)

    def add(self, node, layer_type: str, inputs, weights=None, sources=None, out=0,
            **props) -> Data:
        """A layer for ``node`` reading ``inputs`` (refs); its output ``out`` as a Data."""
        output = node.output[out]
        shape = self.shape(output, node)
        if shape[:1] != (TRACE_BATCH,):
            raise self.refuse(node, f"its output {shape} does not keep the batch first")
        ref = self.builder.add(layer_name(node), layer_type, inputs, weights, sources, **props)
        return Data(ref, shape)


def layer_name(node) -> str:
    return (node.name or f"{node.op_type.lower()}_{node.output[0]}").strip("/") or \
        node.op_type.lower()


def attrs(node) -> dict:
    from onnx import helper
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def load(value: str, *, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
         classes: int | None = None) -> ModelSpec:
    if not os.path.exists(value):
        raise UnknownModel(f"ONNX file {value!r} does not exist")
    onnx = require_onnx()
    try:
        model = onnx.load(value)
    except Exception as exc:
        raise TrainplanError(f"{value}: not a readable ONNX model: {exc}") from None
    name = os.path.splitext(os.path.basename(value))[0]
    return map_model(model, name, batch, input_shape, f"ONNX model {os.path.basename(value)}")


def map_model(model, name: str, batch: int | None, input_shape, description: str) -> ModelSpec:
    """The ModelSpec of an ONNX ModelProto."""
    from trainplan.planner.importers.onnx_loss import append_loss
    from trainplan.planner.importers.onnx_ops import visit
    graph = model.graph
    data_input, dims, is_ids = _data_input(graph, input_shape)
    shapes = _infer_shapes(model, data_input, dims)
    m = OnnxMapper(graph, SpecBuilder(name), shapes, list(model.opset_import))
    for index, node in enumerate(graph.node):
        for tensor in node.input:
            m.consumers.setdefault(tensor, []).append(index)
    from onnx import numpy_helper
    for init in graph.initializer:
        m.values[init.name] = Const(numpy_helper.to_array(init))
    m.values[data_input] = Data(m.builder.add("input", "input", (), input_shape=dims),
                                (TRACE_BATCH, *dims))
    m.values[""] = None  # an omitted optional input
    for node in graph.node:  # constants first: a scope may read one defined after it
        if node.op_type == "Constant":
            from trainplan.planner.importers.onnx_ops import constant_value
            m.values[node.output[0]] = Const(constant_value(node))
    for index, node in enumerate(graph.node):
        if index not in m.handled:
            visit(m, index, node)
    append_loss(m, graph)
    meta = {"framework": "onnx", "integer_input": is_ids}
    return m.builder.spec(batch, description, meta)


def _data_input(graph, input_shape) -> tuple[str, tuple, bool]:
    """The one non-initializer input: its name, its dimensions without the batch, and whether
    it holds integer ids."""
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise TrainplanError(f"the ONNX graph has {len(inputs)} data inputs "
                             f"({', '.join(i.name for i in inputs)}); trainplan imports models "
                             "of one input")
    tensor = inputs[0].type.tensor_type
    file_dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim][1:]
    if input_shape is not None:
        dims = tuple(int(d) for d in input_shape)
        if len(dims) != len(file_dims) or any(f not in (None, d) for f, d in zip(file_dims,
                                                                                  dims)):
            raise InvalidShape(f"--input-shape {dims} does not fit the file's input "
                               f"{inputs[0].name} of dimensions {tuple(file_dims)} (batch "
                               "aside)")
    elif any(d is None for d in file_dims):
        raise InvalidShape(f"the ONNX input {inputs[0].name} has symbolic dimensions "
                           f"{tuple(file_dims)} beyond the batch; give --input-shape")
    else:
        dims = tuple(file_dims)
    from onnx import TensorProto
    is_ids = tensor.elem_type in (TensorProto.INT64, TensorProto.INT32)
    return inputs[0].name, dims, is_ids


def _infer_shapes(model, data_input: str, dims: tuple) -> dict:
    """Static shapes of every tensor, the input fixed to (TRACE_BATCH, *dims)."""
    import onnx
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.value_info[:]
    for value in (*fixed.graph.input, *fixed.graph.output):
        if value.name == data_input:
            shape = value.type.tensor_type.shape
            del shape.dim[:]
            for d in (TRACE_BATCH, *dims):
                shape.dim.add().dim_value = d
        elif value in fixed.graph.output:
            value.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception as exc:
        raise TrainplanError(f"ONNX shape inference failed: {exc}") from None
    shapes = {}
    for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        dims_ = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value")
                                                           for d in dims_):
            shapes[value.name] = tuple(d.dim_value for d in dims_)
    return shapes
