"""ONNX operators -> trainplan layers: one table ``OPS`` (op type -> handler), constant folding
for nodes that read only constants."""

from __future__ import annotations

import numpy as np

from trainplan.planner.importers.from_onnx import Const, Data, OnnxMapper, attrs


class Unused:
    """An output nothing in trainplan computes (batch norm's running statistics as outputs,
    dropout's mask); refused only if something reads it."""


def supported_ops() -> list[str]:
    from trainplan.planner.importers.onnx_blocks import BLOCKS
    return [*OPS, *BLOCKS, "Constant", "(any node of constant inputs)"]


def visit(m: OnnxMapper, index: int, node) -> None:
    """Map one node: fold it, hand it to a block, or map it through ``OPS``."""
    from trainplan.planner.importers.onnx_blocks import attention_scope, map_attention
    inputs = [m.values.get(name) for name in node.input]
    if node.op_type == "Constant":
        m.values[node.output[0]] = Const(constant_value(node))
        return
    if any(isinstance(v, Unused) for v in inputs):
        raise m.refuse(node, "reads an output no trainplan layer computes (a running "
                       "statistic or a dropout mask)")
    if all(isinstance(v, Const) or v is None for v in inputs) and inputs:
        for name, array in zip(node.output, _evaluate(m, node, inputs)):
            m.values[name] = Const(np.asarray(array))
        return
    if node.op_type == "Shape" and node.input[0] in m.shapes:
        m.values[node.output[0]] = Const(_shape_of(m.shapes[node.input[0]], attrs(node)))
        return
    scope = attention_scope(m, index, node)
    if scope is not None:
        map_attention(m, index, scope)
        return
    handler = OPS.get(node.op_type)
    if handler is None:
        raise m.refuse(node)
    result = handler(m, node, attrs(node))
    outputs = result if isinstance(result, dict) else {node.output[0]: result}
    for k, name in enumerate(node.output):
        if name:
            m.values[name] = outputs.get(name, Unused()) if k else outputs[node.output[0]]


def constant_value(node) -> np.ndarray:
    from onnx import numpy_helper
    a = node.attribute[0]
    if a.name == "value":
        return numpy_helper.to_array(a.t)
    from onnx import helper
    return np.asarray(helper.get_attribute_value(a))


def _evaluate(m: OnnxMapper, node, inputs) -> list:
    """The node's outputs from constant inputs, by ONNX's reference implementation."""
    from onnx.reference import ReferenceEvaluator
    opset = next((o.version for o in m.opsets if o.domain in ("", "ai.onnx")), None)
    feeds = {name: v.array for name, v in zip(node.input, inputs) if name and v is not None}
    try:
        evaluator = ReferenceEvaluator(node, opsets={"": opset} if opset else None)
        return evaluator.run(None, feeds)
    except Exception as exc:
        raise m.refuse(node, f"folding it from its constant inputs failed: {exc}") from None


def _shape_of(dims: tuple, a: dict) -> np.ndarray:
    shape = np.array(dims, dtype=np.int64)
    return shape[a.get("start", 0):a.get("end", len(shape))]


def _pads(m, node, pads, kernel, dilations, auto_pad="NOTSET"):
    """Symmetric (h, w) padding from ONNX's begin/end pads or auto_pad."""
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        total = [d * (k - 1) for d, k in zip(dilations, kernel)]
        if any(t % 2 for t in total):
            raise m.refuse(node, f"auto_pad {auto_pad} pads unevenly here")
        return tuple(t // 2 for t in total)
    pads = list(pads or [0, 0, 0, 0])
    if pads[:2] != pads[2:]:
        raise m.refuse(node, f"asymmetric pads {pads} are not supported")
    return tuple(pads[:2])


def _conv(m, node, a):
    x = m.data(node.input[0], node)
    w = m.const(node.input[1], node, "the weight")
    if w.ndim != 4:
        raise m.refuse(node, "only 2-D convolution is supported")
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    dilations = tuple(a.get("dilations", (1, 1)))
    pads = _pads(m, node, a.get("pads"), kernel, dilations, a.get("auto_pad", "NOTSET"))
    weights, sources = {"filter": w}, {"filter": {"param": node.input[1]}}
    if len(node.input) > 2 and node.input[2]:
        weights["bias"] = m.const(node.input[2], node, "the bias")
        sources["bias"] = {"param": node.input[2]}
    return m.add(node, "conv2d", [x.ref], weights, sources, filters=int(w.shape[0]),
                 kernel_size=kernel, stride=tuple(a.get("strides", (1, 1))), padding=pads,
                 dilation=dilations, groups=int(a.get("group", 1)), bias="bias" in weights)


def _gemm(m, node, a):
    x = m.data(node.input[0], node)
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
        raise m.refuse(node, "only Gemm with transA=0, alpha=1, beta=1 is supported")
    w = m.const(node.input[1], node, "B")
    trans = bool(a.get("transB", 0))
    weights = {"weight": w.T if trans else w}
    sources = {"weight": {"param": node.input[1], "transpose": trans}}
    if len(node.input) > 2 and node.input[2]:
        weights["bias"] = m.const(node.input[2], node, "C")
        sources["bias"] = {"param": node.input[2]}
    return m.add(node, "fully_connected", [x.ref], weights, sources,
                 unit=int(weights["weight"].shape[1]), bias="bias" in weights)


def _matmul(m, node, a):
    x = m.data(node.input[0], node)
    w = m.const(node.input[1], node, "the second operand")
    if w.ndim != 2:
        raise m.refuse(node, "MatMul by a constant matrix is supported (a linear layer)")
    out = m.add(node, "fully_connected", [x.ref], {"weight": w},
                {"weight": {"param": node.input[1]}}, unit=int(w.shape[1]), bias=False)
    m.linear_without_bias[node.output[0]] = out.ref
    return out


def _add(m, node, a):
    values = [m.values.get(n) for n in node.input]
    consts = [v for v in values if isinstance(v, Const)]
    if consts:  # a bias after MatMul: the linear layer's own
        data_name = next(n for n, v in zip(node.input, values) if not isinstance(v, Const))
        layer = m.linear_without_bias.pop(data_name, None)
        bias = consts[0].array
        if layer is None or bias.shape != (m.shapes[data_name][-1],):
            raise m.refuse(node, "adding a constant is supported only as a MatMul's bias")
        m.builder.layer(layer)[2]["bias"] = True
        m.builder.weights[f"{layer}:bias"] = bias.astype(np.float32)
        const_name = next(n for n, v in zip(node.input, values) if isinstance(v, Const))
        m.builder.sources[f"{layer}:bias"] = {"param": const_name}
        return Data(layer, m.shape(node.output[0], node))
    x, y = (m.data(n, node) for n in node.input)
    if x.shape != y.shape:
        raise m.refuse(node, f"broadcasting {x.shape} + {y.shape} is not supported")
    return m.add(node, "addition", [x.ref, y.ref])


def _batch_norm(m, node, a):
    x = m.data(node.input[0], node)
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    weights = {w: m.const(n, node, w) for w, n in zip(names, node.input[1:5])}
    sources = {w: {"param": n} for w, n in zip(names, node.input[1:5])}
    out = m.add(node, "batch_normalization", [x.ref], weights, sources, axis=1,
                epsilon=float(a.get("epsilon", 1e-5)), momentum=float(a.get("momentum", 0.9)))
    return out


def _layer_norm(m, node, a):
    x = m.data(node.input[0], node)
    if int(a.get("axis", -1)) % len(x.shape) != len(x.shape) - 1:
        raise m.refuse(node, "layer norm over more than the last dimension is not supported")
    weights = {"gamma": m.const(node.input[1], node, "the scale")}
    sources = {"gamma": {"param": node.input[1]}}
    if len(node.input) > 2 and node.input[2]:
        weights["beta"] = m.const(node.input[2], node, "the bias")
        sources["beta"] = {"param": node.input[2]}
    else:
        weights["beta"] = np.zeros_like(weights["gamma"])
    return m.add(node, "layer_normalization", [x.ref], weights, sources,
                 epsilon=float(a.get("epsilon", 1e-5)))


def _activation(kind):
    def handler(m, node, a):
        return m.add(node, "activation", [m.data(node.input[0], node).ref], activation=kind)
    return handler


def _gelu(m, node, a):
    return _activation("gelu" if a.get("approximate", "none") == "tanh" else "gelu_erf")(
        m, node, a)


def _softmax(m, node, a):
    x = m.data(node.input[0], node)
    axis = int(a.get("axis", -1 if m.opset >= 13 else 1))
    if axis % len(x.shape) != len(x.shape) - 1:
        raise m.refuse(node, "softmax over another than the last axis is not supported")
    return _activation("softmax")(m, node, a)


def _clip(m, node, a):
    low = a.get("min", None)
    high = a.get("max", None)
    if len(node.input) > 1 and node.input[1]:
        low = float(m.const(node.input[1], node, "min"))
    if len(node.input) > 2 and node.input[2]:
        high = float(m.const(node.input[2], node, "max"))
    if (low, high) == (0.0, 6.0):
        return _activation("relu6")(m, node, a)
    if low == 0.0 and high is None:
        return _activation("relu")(m, node, a)
    raise m.refuse(node, f"Clip({low}, {high}) is supported as relu6 (0, 6) or relu (0, -)")


def _pool(kind):
    def handler(m, node, a):
        x = m.data(node.input[0], node)
        kernel = tuple(a["kernel_shape"])
        if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", (1, 1))):
            raise m.refuse(node, "pooling with ceil_mode or dilations is not supported")
        pads = _pads(m, node, a.get("pads"), kernel, (1, 1), a.get("auto_pad", "NOTSET"))
        if kind == "average" and any(pads) and not a.get("count_include_pad", 0):
            raise m.refuse(node, "average pooling over padding that does not count the "
                           "padding (count_include_pad=0) is not supported")
        return m.add(node, "pooling2d", [x.ref], pooling=kind, pool_size=kernel,
                     stride=tuple(a.get("strides", (1, 1))), padding=pads)
    return handler


def _global(kind):
    def handler(m, node, a):
        return m.add(node, "pooling2d", [m.data(node.input[0], node).ref],
                     pooling=f"global_{kind}")
    return handler


def _concat(m, node, a):
    xs = [m.data(n, node) for n in node.input]
    axis = int(a["axis"]) % len(xs[0].shape)
    if axis == 0:
        raise m.refuse(node, "concatenation along the batch is not supported")
    return m.add(node, "concat", [x.ref for x in xs], axis=axis)


def _flatten(m, node, a):
    if int(a.get("axis", 1)) != 1:
        raise m.refuse(node, "Flatten is supported with axis 1")
    return m.add(node, "flatten", [m.data(node.input[0], node).ref])


def _reshape(m, node, a):
    x = m.data(node.input[0], node)
    out = m.shape(node.output[0], node)
    if out[:1] != x.shape[:1]:
        raise m.refuse(node, f"reshaping {x.shape} to {out} moves the batch")
    if out == x.shape:
        return x
    return m.add(node, "reshape", [x.ref], target_shape=out[1:])


def _identity(m, node, a):
    return m.data(node.input[0], node)


def _dropout(m, node, a):
    x = m.data(node.input[0], node)
    ratio = float(a.get("ratio", 0.5))
    training = bool(a.get("is_test", 0) == 0) if m.opset < 12 else False
    if len(node.input) > 1 and node.input[1]:
        ratio = float(m.const(node.input[1], node, "ratio"))
    if len(node.input) > 2 and node.input[2]:
        training = bool(m.const(node.input[2], node, "training_mode"))
    if ratio == 0.0 or not training:
        return x
    return m.add(node, "dropout", [x.ref], dropout_rate=ratio)


def _gather(m, node, a):
    from trainplan.planner.importers.onnx_blocks import gather_last_step
    table = m.values.get(node.input[0])
    if isinstance(table, Const) and table.array.ndim == 2 and int(a.get("axis", 0)) == 0:
        ids = m.data(node.input[1], node)
        return m.add(node, "embedding", [ids.ref], {"weight": table.array},
                     {"weight": {"param": node.input[0]}}, in_dim=int(table.array.shape[0]),
                     out_dim=int(table.array.shape[1]))
    return gather_last_step(m, node, a)


def _transpose(m, node, a):
    from trainplan.planner.importers.onnx_blocks import transpose_time
    return transpose_time(m, node, a)


def _lstm(m, node, a):
    from trainplan.planner.importers.onnx_blocks import map_lstm
    return map_lstm(m, node, a)


def _squeeze(m, node, a):
    from trainplan.planner.importers.onnx_blocks import squeeze_lstm
    return squeeze_lstm(m, node, a)


OPS = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "Add": _add,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
    "Relu": _activation("relu"), "Sigmoid": _activation("sigmoid"),
    "Tanh": _activation("tanh"), "Gelu": _gelu, "Softmax": _softmax, "Clip": _clip,
    "MaxPool": _pool("max"), "AveragePool": _pool("average"),
    "GlobalAveragePool": _global("average"), "GlobalMaxPool": _global("max"),
    "Concat": _concat, "Flatten": _flatten, "Reshape": _reshape, "Unsqueeze": _reshape,
    "Squeeze": _squeeze, "Identity": _identity, "Dropout": _dropout, "Gather": _gather,
    "Transpose": _transpose, "LSTM": _lstm,
}
