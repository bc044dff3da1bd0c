"""ONNX subgraphs mapped whole: self-attention as ``torch.onnx.export`` writes it (a node scope
``/…/self_attn/…`` holding a Softmax between MatMuls), recognised, read for its weights and
then checked by running the scope with ONNX's reference evaluator against the attention
trainplan's layer computes; and ``LSTM`` nodes, with the transposes and squeezes that carry a
batch-first tensor into and out of ONNX's (time, batch) layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainplan.planner.importers.from_onnx import TRACE_BATCH, Const, Data, OnnxMapper

BLOCKS = ["self-attention scope (/…/self_attn/…)"]


# --- self-attention -------------------------------------------------------------------------

def _scope(node) -> str | None:
    name = node.name or ""
    return name.rsplit("/", 1)[0] if name.startswith("/") and name.count("/") >= 2 else None


def attention_scope(m: OnnxMapper, index: int, node) -> str | None:
    """The scope of ``node`` when it is a self-attention scope not yet mapped."""
    scope = _scope(node)
    if scope is None:
        return None
    if scope not in m.scopes:
        members = [i for i, n in enumerate(m.graph.node) if _scope(n) == scope]
        kinds = [m.graph.node[i].op_type for i in members]
        m.scopes[scope] = members if "Softmax" in kinds and kinds.count("MatMul") >= 3 \
            else None
    return scope if m.scopes[scope] else None


def map_attention(m: OnnxMapper, first: int, scope: str) -> None:
    """One ``multi_head_attention`` layer for the whole scope."""
    from trainplan.planner.importers.onnx_ops import visit
    members = m.scopes[scope]
    nodes = [m.graph.node[i] for i in members]
    for i, node in zip(members, nodes):  # fold what the scope computes from constants
        constant = all(isinstance(m.values.get(n), Const) for n in node.input if n)
        if node.output[0] not in m.values and (node.op_type == "Constant" or constant):
            visit(m, i, node)
    produced = {o for n in nodes for o in n.output}
    sources = []
    for n in nodes:
        for name in n.input:
            if isinstance(m.values.get(name), Data) and name not in produced and \
                    name not in sources:
                sources.append(name)
    inside = set(members)
    graph_outputs = {o.name for o in m.graph.output}
    outputs = [o for n in nodes for o in n.output if not isinstance(m.values.get(o), Const)
               and (o in graph_outputs or any(c not in inside for c in m.consumers.get(o, [])))]
    node = m.graph.node[first]
    if len(sources) != 1 or len(outputs) != 1:
        raise m.refuse(node, f"attention scope {scope}: trainplan maps self-attention of one "
                       f"input and one output, this has {len(sources)} and {len(outputs)}")
    weights = _attention_weights(m, node, nodes, scope)
    heads = _heads(m, node, nodes)
    x = m.values[sources[0]]
    _check_attention(m, node, scope, nodes, sources[0], outputs[0], x.shape, weights, heads)
    sources_of = {w: {"param": f"{scope}:{w}"} for w in weights}
    ref = m.builder.add(scope.strip("/"), "multi_head_attention", [x.ref], weights, sources_of,
                        num_heads=heads, projected_dim=int(weights["query_weight"].shape[1]))
    m.values[outputs[0]] = Data(ref, x.shape)
    m.handled.update(members)


def _linear_ops(m, nodes):
    """(node, weight (in, out), bias or None) of every linear op with constant weights."""
    found = []
    for n in nodes:
        if n.op_type == "MatMul" and isinstance(m.values.get(n.input[1]), Const):
            w = m.values[n.input[1]].array
            add = next((a for a in nodes if a.op_type == "Add" and n.output[0] in a.input), None)
            bias = None
            if add is not None:
                other = next(i for i in add.input if i != n.output[0])
                bias = m.values[other].array if isinstance(m.values.get(other), Const) else None
            found.append((n, w, bias))
        elif n.op_type == "Gemm" and isinstance(m.values.get(n.input[1]), Const):
            from trainplan.planner.importers.from_onnx import attrs
            w = m.values[n.input[1]].array
            w = w.T if attrs(n).get("transB", 0) else w
            bias = m.values[n.input[2]].array if len(n.input) > 2 else None
            found.append((n, w, bias))
    return found


def _attention_weights(m, node, nodes, scope) -> dict:
    linear = _linear_ops(m, nodes)
    if len(linear) not in (2, 4) or any(b is None for _, _, b in linear):
        raise m.refuse(node, f"attention scope {scope}: expected input projections (one "
                       "fused or three) and an output projection, all with biases")
    *inputs, (_, w_out, b_out) = linear
    if len(inputs) == 1:
        (_, w, b), = inputs
        e = w.shape[1] // 3
        parts = [(w[:, k * e:(k + 1) * e], b[k * e:(k + 1) * e]) for k in range(3)]
    else:
        parts = [(w, b) for _, w, b in inputs]
    weights = {}
    for name, (w, b) in zip(("query", "key", "value"), parts):
        weights[f"{name}_weight"], weights[f"{name}_bias"] = w, b
    weights["output_weight"], weights["output_bias"] = w_out, b_out
    return weights


def _heads(m, node, nodes) -> int:
    softmax = next(n for n in nodes if n.op_type == "Softmax")
    shape = m.shapes.get(softmax.input[0])
    if shape is None:
        raise m.refuse(node, "the attention scores' shape could not be inferred")
    return int(shape[1]) if len(shape) == 4 else int(shape[0]) // TRACE_BATCH


def _check_attention(m, node, scope, nodes, source, output, shape, weights, heads) -> None:
    """The scope must compute what the layer computes: run both on one random input."""
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    consts = {n for node_ in nodes for n in node_.input if isinstance(m.values.get(n), Const)}
    initializers = [onnx.numpy_helper.from_array(np.asarray(m.values[n].array), n)
                    for n in sorted(consts)]
    graph = helper.make_graph(
        [n for n in nodes if n.op_type != "Constant"], "scope",
        [helper.make_tensor_value_info(source, onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)], initializers)
    model = helper.make_model(graph, opset_imports=m.opsets)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    try:
        got = ReferenceEvaluator(model).run(None, {source: x})[0]
    except Exception as exc:
        raise m.refuse(node, f"attention scope {scope} could not be evaluated: {exc}") from None
    want = attention(x, weights, heads)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-4):
        raise m.refuse(node, f"attention scope {scope} does not compute plain multi-head "
                       "self-attention (a mask, dropout or another scaling?)")


def attention(x: np.ndarray, w: dict, heads: int) -> np.ndarray:
    """Multi-head self-attention as planner/layers/sequence.py defines it (a reference)."""
    b, t, _ = x.shape
    q, k, v = (x @ w[f"{n}_weight"] + w[f"{n}_bias"] for n in ("query", "key", "value"))
    d = q.shape[-1]
    split = [a.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3) for a in (q, k, v)]
    scores = split[0] @ split[1].transpose(0, 1, 3, 2) / np.sqrt(d // heads)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    context = (scores @ split[2]).transpose(0, 2, 1, 3).reshape(b, t, d)
    return context @ w["output_weight"] + w["output_bias"]


# --- LSTM -----------------------------------------------------------------------------------

@dataclass
class LSTMOutput:
    """Y (the sequence, still with ONNX's directions axis) or Y_h (the final hidden state)."""

    ref: str
    shape: tuple  # our layer's (batch, time, hidden)
    part: str  # "Y" or "Y_h"
    time_first: bool


_GATES = (0, 2, 3, 1)  # ONNX's i, o, f, c -> trainplan's (PyTorch's) i, f, g, o


def _gates(a: np.ndarray, hidden: int) -> np.ndarray:
    """Reorder the 4 gate blocks along axis 0."""
    blocks = a.reshape(4, hidden, *a.shape[1:])
    return blocks[list(_GATES)].reshape(a.shape)


def map_lstm(m: OnnxMapper, node, a) -> dict:
    layout = int(a.get("layout", 0))
    x = m.values.get(node.input[0])
    reasons = []
    if a.get("direction", "forward") != "forward":
        reasons.append(f"direction {a.get('direction')}")
    if not isinstance(x, Data) or x.time_first != (layout == 0):
        reasons.append("an input not in the layout it declares")
    optional = list(node.input) + [""] * (8 - len(node.input))
    if optional[4] or optional[7]:
        reasons.append("sequence_lens or peepholes")
    for name in optional[5:7]:
        if name and not (isinstance(m.values.get(name), Const)
                         and not np.any(m.values[name].array)):
            reasons.append("an initial state other than zeros")
    if any(k in a for k in ("activations", "clip", "input_forget")) and (
            a.get("activations", ["Sigmoid", "Tanh", "Tanh"]) != ["Sigmoid", "Tanh", "Tanh"]
            or a.get("clip") or a.get("input_forget")):
        reasons.append("other activations, clip or input_forget")
    if reasons:
        raise m.refuse(node, "LSTM with " + ", ".join(reasons) + " is not supported")
    hidden = int(a["hidden_size"])
    w = m.const(node.input[1], node, "W")[0]
    r = m.const(node.input[2], node, "R")[0]
    weights = {"weight_ih": _gates(w, hidden).T, "weight_hh": _gates(r, hidden).T}
    if optional[3]:
        b = m.const(node.input[3], node, "B")[0]
        weights["bias_ih"] = _gates(b[:4 * hidden], hidden)
        weights["bias_hh"] = _gates(b[4 * hidden:], hidden)
    sources = {k: {"param": node.input[{"weight_ih": 1, "weight_hh": 2}.get(k, 3)]}
               for k in weights}
    ref = m.builder.add((node.name or "lstm").strip("/"), "lstm", [x.ref], weights, sources,
                        unit=hidden, return_sequences=True, integrate_bias=False,
                        bias="bias_ih" in weights)
    shape = (x.shape[0], x.shape[1], hidden)
    m.lstm_tensors[ref] = [node.output[0]]
    out = {node.output[0]: LSTMOutput(ref, shape, "Y", layout == 0)}
    if len(node.output) > 1 and node.output[1]:
        out[node.output[1]] = LSTMOutput(ref, shape, "Y_h", False)
    return out


def squeeze_lstm(m: OnnxMapper, node, a):
    """Drop ONNX's directions axis from Y, or take Y_h's one direction as the last step."""
    value = m.values.get(node.input[0])
    if not isinstance(value, LSTMOutput):
        from trainplan.planner.importers.onnx_ops import _reshape
        return _reshape(m, node, a)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1:
        axes = m.const(node.input[1], node, "axes").tolist()
    axes = list(axes or [])
    if value.part == "Y":
        if axes != [1 if value.time_first else 2]:
            raise m.refuse(node, "squeezing an LSTM output other than its directions axis")
        m.lstm_tensors[value.ref].append(node.output[0])
        return Data(value.ref, value.shape, value.time_first)
    if axes != [0]:
        raise m.refuse(node, "squeezing an LSTM's final state other than its directions axis")
    return _last_step(m, node, value.ref)


def transpose_time(m: OnnxMapper, node, a):
    """perm (1, 0, 2) turns a batch-first tensor into its (time, batch) view and back."""
    x = m.values.get(node.input[0])
    if not isinstance(x, Data) or list(a.get("perm", [])) != [1, 0, 2]:
        raise m.refuse(node, "Transpose is supported only as the (time, batch) swap around "
                       "an LSTM")
    if x.ref in m.lstm_tensors:
        m.lstm_tensors[x.ref].append(node.output[0])
    return Data(x.ref, x.shape, not x.time_first)


def gather_last_step(m: OnnxMapper, node, a):
    """``out[:, -1]`` of an LSTM sequence (batch-first axis 1, or time-first axis 0)."""
    x = m.values.get(node.input[0])
    index = m.values.get(node.input[1])
    axis = int(a.get("axis", 0))
    if not isinstance(x, Data) or not isinstance(index, Const) or index.array.ndim != 0:
        raise m.refuse(node, "Gather is supported as an embedding (a constant table) or as "
                       "an LSTM's last step")
    steps = x.shape[1]
    if axis != (0 if x.time_first else 1) or int(index.array) % steps != steps - 1:
        raise m.refuse(node, "Gather of another than an LSTM's last time step")
    return _last_step(m, node, x.ref)


def _last_step(m: OnnxMapper, node, ref: str):
    """The LSTM layer then returns only its last step: nothing else may read its sequence
    (each tensor carrying it is read only by the next one, the last by ``node`` or none)."""
    chain = m.lstm_tensors.get(ref)
    if chain is None:
        raise m.refuse(node, "selecting a last step of a tensor no LSTM produced")
    carriers = set(chain)
    for tensor in chain:
        for i in m.consumers.get(tensor, []):
            reader = m.graph.node[i]
            if not carriers.intersection(reader.output) and reader.output[0] != node.output[0]:
                raise m.refuse(node, "the LSTM's last step is taken while its sequence is "
                               f"read too (by {reader.name or reader.op_type})")
    m.builder.layer(ref)[2]["return_sequences"] = False
    value = next(x for x in m.values.values() if isinstance(x, LSTMOutput) and x.ref == ref)
    return Data(ref, (value.shape[0], value.shape[2]))
