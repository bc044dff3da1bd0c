"""Modules mapped whole: ``nn.MultiheadAttention`` (its calls, whatever ATen ops they
decompose into) and ``nn.LSTM`` (``aten.lstm``), onto trainplan's ``multi_head_attention`` and
``lstm`` layers, with their weights in our layouts."""

from __future__ import annotations

from dataclasses import dataclass

from trainplan.planner.importers.torch_ops import Constant, Mapper, bind, clean_path

BLOCKS = ["nn.MultiheadAttention", "nn.LSTM (aten.lstm.input)"]


# --- multi-head attention -------------------------------------------------------------------

def owner_block(m: Mapper, node) -> str | None:
    """The path of the (outermost) MultiheadAttention module that ran ``node``, if any."""
    import torch
    for path, _ in (node.meta.get("nn_module_stack") or {}).values():
        path = clean_path(path)
        if isinstance(m.submodule(path), torch.nn.MultiheadAttention):
            return path
    return None


def _flat_args(node):
    for arg in (*node.args, *node.kwargs.values()):
        if isinstance(arg, (list, tuple)):
            yield from arg
        else:
            yield arg


def map_block(m: Mapper, first, path: str) -> None:
    """Map one call of the attention module at ``path`` (the nodes it ran, from ``first``)."""
    module = m.submodule(path)
    group, call = [], None
    for node in first.graph.nodes:
        if node is first:
            call = True
        if call and node.op == "call_function" and owner_block(m, node) == path \
                and node not in m.handled:
            group.append(node)
        elif call and group and node.op == "call_function":
            break  # the call ended: a later call of the same module is mapped on its own
    members = set(group)
    sources = []
    for node in group:
        for arg in _flat_args(node):
            if hasattr(arg, "op") and arg not in members and arg.name not in m.params \
                    and arg not in sources:
                sources.append(arg)
    outputs = [n for n in group if any(u not in members for u in n.users)]
    _check_attention(m, first, module, group, sources, outputs)
    refs = [m.ref(s, first) for s in sources]
    weights, origin = _attention_weights(m, path, module)
    layer = m.builder.add(path, "multi_head_attention", refs, weights, origin,
                          num_heads=int(module.num_heads), projected_dim=int(module.embed_dim))
    m.handled.update(group)
    m.values[outputs[0]] = layer


def _check_attention(m, first, module, group, sources, outputs) -> None:
    reasons = []
    if not module.batch_first:
        reasons.append("batch_first=False (trainplan's layers keep the batch first)")
    if module.in_proj_bias is None or module.out_proj.bias is None:
        reasons.append("bias=False")
    if module.bias_k is not None or module.add_zero_attn:
        reasons.append("add_bias_kv or add_zero_attn")
    if module.dropout:
        reasons.append(f"attention dropout {module.dropout} (construct it with dropout=0.0)")
    if not 1 <= len(sources) <= 3:
        reasons.append("an attention or padding mask")
    if any(str(n.target).startswith("aten.scaled_dot_product_attention")
           and bind(n).get("is_causal") for n in group):
        reasons.append("a causal mask")
    if len(outputs) != 1:
        reasons.append("its attention weights are used")
    if reasons:
        raise m.refuse(first, "nn.MultiheadAttention with " + ", ".join(reasons)
                       + " is not supported")
    m.check_batch(outputs[0])


def _attention_weights(m: Mapper, path: str, module) -> tuple[dict, dict]:
    """query/key/value/output weights (in, out) and biases from the module's parameters."""
    e = int(module.embed_dim)
    prefix = f"{path}." if path else ""
    weights, origin = {}, {}
    for k, name in enumerate(("query", "key", "value")):
        if module._qkv_same_embed_dim:
            source = {"param": f"{prefix}in_proj_weight", "rows": (k * e, (k + 1) * e),
                      "transpose": True}
        else:
            source = {"param": f"{prefix}{name[0]}_proj_weight", "transpose": True}
        origin[f"{name}_weight"] = source
        origin[f"{name}_bias"] = {"param": f"{prefix}in_proj_bias", "rows": (k * e, (k + 1) * e)}
    origin["output_weight"] = {"param": f"{prefix}out_proj.weight", "transpose": True}
    origin["output_bias"] = {"param": f"{prefix}out_proj.bias"}
    for w, source in origin.items():
        weights[w] = take(m.state, source)
    return weights, origin


def take(state: dict, source: dict):
    """The array a weight source describes: a parameter, its rows ``[a, b)``, transposed."""
    array = state[source["param"]]
    if source.get("rows"):
        a, b = source["rows"]
        array = array[a:b]
    return array.T if source.get("transpose") else array


# --- LSTM -----------------------------------------------------------------------------------

@dataclass
class LSTMResult:
    """An ``aten.lstm`` call: our stacked layers (the last one's output is the sequence)."""

    layers: list
    node: object


@dataclass
class FinalHidden:
    """``h_n`` of an LSTM call: (layers, batch, hidden)."""

    lstm: LSTMResult


def map_lstm(m: Mapper, node, a) -> LSTMResult:
    params = list(a["params"])
    layers_n, has_bias = int(a["num_layers"]), bool(a["has_biases"])
    reasons = []
    if a["bidirectional"]:
        reasons.append("bidirectional=True")
    if not a["batch_first"]:
        reasons.append("batch_first=False (trainplan's layers keep the batch first)")
    if len(params) != layers_n * (4 if has_bias else 2):
        reasons.append("proj_size")
    if not all(isinstance(m.values.get(h), Constant) for h in a["hx"]):
        reasons.append("an initial state from the graph (only zeros)")
    if reasons:
        raise m.refuse(node, "nn.LSTM with " + ", ".join(reasons) + " is not supported")
    path = m.base(node)
    x, layers = m.ref(a["input"], node), []
    per = 4 if has_bias else 2
    for k in range(layers_n):
        names = params[k * per:(k + 1) * per]
        got = [m.param(p, node) for p in names]
        ours = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[:per]
        weights = {w: (g[1].T if w.startswith("weight") else g[1]) for w, g in zip(ours, got)}
        origin = {w: {"param": g[0], "transpose": w.startswith("weight")}
                  for w, g in zip(ours, got)}
        if k and float(a["dropout"]) > 0:
            x = m.builder.add(f"{path}/dropout{k}", "dropout", [x],
                              dropout_rate=float(a["dropout"]))
        x = m.builder.add(path if layers_n == 1 else f"{path}/l{k}", "lstm", [x], weights,
                          origin, unit=int(got[1][1].shape[1]), return_sequences=True,
                          integrate_bias=False, bias=has_bias)
        layers.append(x)
    return LSTMResult(layers, node)


def map_getitem(m: Mapper, node):
    """Parts of a tuple result: an LSTM's sequence (0) or final hidden state (1)."""
    value, index = m.values.get(node.args[0]), int(node.args[1])
    if isinstance(value, LSTMResult):
        if index == 0:
            return value.layers[-1]
        if index == 1:
            return FinalHidden(value)
        return Constant()  # c_n: refused only where something reads it
    raise m.refuse(node, f"item {index} of {node.args[0].name} has no layer")


def select_last_step(m: Mapper, node, a):
    """``out[:, -1]`` of an LSTM's sequence, or ``h_n[-1]``: the last layer's last step,
    when nothing else reads the sequence (the layer then returns only its last step)."""
    x, dim, index = a["self"], int(a["dim"]), int(a["index"])
    value = m.values.get(x)
    lstm = value.lstm if isinstance(value, FinalHidden) else None
    steps = m.shape(x)[dim]
    if lstm is None and isinstance(value, str) and dim == 1:
        lstm = next((r for r in _lstm_results(m) if r.layers[-1] == value), None)
    wanted_dim = 0 if isinstance(value, FinalHidden) else 1
    if lstm is None or dim != wanted_dim or index % steps != steps - 1:
        raise m.refuse(node, "select is supported only as the last step of an LSTM "
                       "(out[:, -1] or h_n[-1])")
    sequence_readers = [u for g in lstm.node.users if g.args[1] == 0 for u in g.users]
    if any(u is not node for u in sequence_readers):
        raise m.refuse(node, "the LSTM's last step is selected while its whole sequence is "
                       "read too")
    m.builder.layer(lstm.layers[-1])[2]["return_sequences"] = False
    return lstm.layers[-1]


def _lstm_results(m: Mapper):
    return [v for v in m.values.values() if isinstance(v, LSTMResult)]


BLOCK_OPS = {"aten.lstm.input": map_lstm}
