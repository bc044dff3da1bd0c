"""ATen op handlers, one table ``OPS`` (op -> handler): each maps one node of a
``torch.export`` program onto a trainplan layer (planner/importers/torch_ops.py walks the graph),
or onto nothing where the op only renames bytes."""

from __future__ import annotations

from trainplan.planner.importers.torch_ops import Constant, pair

# handlers: (mapper, node, bound arguments) -> a layer ref, or a marker

def _passthrough(m, node, a):
    return m.ref(node.args[0], node)


def _constant(m, node, a):
    return Constant()


def _conv2d(m, node, a):
    if a.get("transposed"):
        raise m.refuse(node, "transposed convolution is not supported")
    w = m.param(a["weight"], node)
    b = m.param(a["bias"], node)
    if w[1].ndim != 4:
        raise m.refuse(node, f"only 2-D convolution is supported (weight {w[1].shape})")
    kernel, dilation = tuple(w[1].shape[2:]), pair(a["dilation"])
    padding = a["padding"]
    if isinstance(padding, str):
        if padding == "same" and any(d * (k - 1) % 2 for d, k in zip(dilation, kernel)):
            raise m.refuse(node, "padding='same' with an even kernel pads unevenly")
    else:
        padding = pair(padding)
    weights, sources = {"filter": w[1]}, {"filter": {"param": w[0]}}
    if b is not None:
        weights["bias"], sources["bias"] = b[1], {"param": b[0]}
    return m.add(node, "conv2d", [m.ref(a["input"], node)], weights, sources,
                 filters=int(w[1].shape[0]), kernel_size=kernel, stride=pair(a["stride"]),
                 padding=padding, dilation=dilation, groups=int(a["groups"]),
                 bias=b is not None)


def _linear(m, node, a):
    w = m.param(a["weight"], node)
    b = m.param(a["bias"], node)
    weights, sources = {"weight": w[1].T}, {"weight": {"param": w[0], "transpose": True}}
    if b is not None:
        weights["bias"], sources["bias"] = b[1], {"param": b[0]}
    return m.add(node, "fully_connected", [m.ref(a["input"], node)], weights, sources,
                 unit=int(w[1].shape[0]), bias=b is not None)


def _batch_norm(m, node, a):
    gamma, beta = m.param(a["weight"], node), m.param(a["bias"], node)
    if gamma is None or beta is None:
        raise m.refuse(node, "batch norm without affine weights (affine=False) is not "
                       "supported")
    if a["momentum"] is None:
        raise m.refuse(node, "momentum=None (a cumulative average) is not supported")
    weights = {"gamma": gamma[1], "beta": beta[1]}
    sources = {"gamma": {"param": gamma[0]}, "beta": {"param": beta[0]}}
    for ours, arg in (("moving_mean", "running_mean"), ("moving_variance", "running_var")):
        running = m.param(a[arg], node)
        if running is not None:
            weights[ours], sources[ours] = running[1], {"param": running[0]}
    return m.add(node, "batch_normalization", [m.ref(a["input"], node)], weights, sources,
                 axis=1, epsilon=float(a["eps"]), momentum=1.0 - float(a["momentum"]))


def _layer_norm(m, node, a):
    x = a["input"]
    if list(a["normalized_shape"]) != [m.shape(x)[-1]]:
        raise m.refuse(node, "layer norm over more than the last dimension is not supported")
    gamma, beta = m.param(a["weight"], node), m.param(a["bias"], node)
    if gamma is None or beta is None:
        raise m.refuse(node, "layer norm without affine weights is not supported")
    return m.add(node, "layer_normalization", [m.ref(x, node)],
                 {"gamma": gamma[1], "beta": beta[1]},
                 {"gamma": {"param": gamma[0]}, "beta": {"param": beta[0]}},
                 epsilon=float(a["eps"]))


def _embedding(m, node, a):
    w = m.param(a["weight"], node)
    props = {"in_dim": int(w[1].shape[0]), "out_dim": int(w[1].shape[1])}
    if a["padding_idx"] is not None and int(a["padding_idx"]) >= 0:
        props["padding_idx"] = int(a["padding_idx"])
    return m.add(node, "embedding", [m.ref(a["indices"], node)], {"weight": w[1]},
                 {"weight": {"param": w[0]}}, **props)


def _activation(kind):
    def handler(m, node, a):
        return m.add(node, "activation", [m.ref(node.args[0], node)], activation=kind)
    return handler


def _hardtanh(m, node, a):
    if (float(a["min_val"]), float(a["max_val"])) != (0.0, 6.0):
        raise m.refuse(node, "hardtanh other than relu6 (0, 6) is not supported")
    return _activation("relu6")(m, node, a)


def _gelu(m, node, a):
    return _activation("gelu" if a["approximate"] == "tanh" else "gelu_erf")(m, node, a)


def _softmax(m, node, a):
    x = node.args[0]
    if int(a["dim"]) % len(m.shape(x)) != len(m.shape(x)) - 1:
        raise m.refuse(node, "softmax over another than the last dimension is not supported")
    return _activation("softmax")(m, node, a)


def _dropout(m, node, a):
    p = float(a["p"])
    if p == 0.0 or not a["train"]:
        return m.ref(a["input"], node)
    return m.add(node, "dropout", [m.ref(a["input"], node)], dropout_rate=p)


def _max_pool(m, node, a):
    if any(d != 1 for d in pair(a["dilation"])) or a["ceil_mode"]:
        raise m.refuse(node, "max pooling with dilation or ceil_mode is not supported")
    kernel = pair(a["kernel_size"])
    stride = pair(a["stride"]) if a["stride"] else kernel
    return m.add(node, "pooling2d", [m.ref(a["self"], node)], pooling="max",
                 pool_size=kernel, stride=stride, padding=pair(a["padding"]))


def _avg_pool(m, node, a):
    padding = pair(a["padding"])
    if a["ceil_mode"] or a["divisor_override"] or (any(padding) and not
                                                   a["count_include_pad"]):
        raise m.refuse(node, "average pooling with ceil_mode, divisor_override or "
                       "count_include_pad=False is not supported")
    kernel = pair(a["kernel_size"])
    stride = pair(a["stride"]) if a["stride"] else kernel
    return m.add(node, "pooling2d", [m.ref(a["self"], node)], pooling="average",
                 pool_size=kernel, stride=stride, padding=padding)


def _adaptive(kind):
    def handler(m, node, a):
        x = a["self"]
        h, w = m.shape(x)[2:]
        oh, ow = pair(a["output_size"])
        if (oh, ow) == (1, 1):
            return m.add(node, "pooling2d", [m.ref(x, node)], pooling=f"global_{kind}")
        if h % oh or w % ow:
            raise m.refuse(node, f"adaptive pooling of {h}x{w} to {oh}x{ow} has uneven windows")
        k = (h // oh, w // ow)
        return m.add(node, "pooling2d", [m.ref(x, node)], pooling=kind, pool_size=k, stride=k)
    return handler


def _mean(m, node, a):
    x = a["self"]
    rank = len(m.shape(x))
    dims = sorted(int(d) % rank for d in (a["dim"] or []))
    if rank != 4 or dims != [2, 3]:
        raise m.refuse(node, "a mean other than over the spatial dimensions of (N, C, H, W) "
                       "is not supported")
    pooled = m.add(node, "pooling2d", [m.ref(x, node)], pooling="global_average")
    if a["keepdim"]:
        return pooled
    return m.builder.add(f"{m.base(node)}/squeeze", "flatten", [pooled])


def _add(m, node, a):
    x, y = a["self"], a["other"]
    if not hasattr(y, "meta") or float(a.get("alpha") or 1) != 1.0:
        raise m.refuse(node, "only the sum of two tensors is supported (no constant, no alpha)")
    if m.shape(x) != m.shape(y):
        raise m.refuse(node, f"broadcasting {m.shape(x)} + {m.shape(y)} is not supported")
    return m.add(node, "addition", [m.ref(x, node), m.ref(y, node)])


def _add_inplace(m, node, a):
    x = a["self"]
    if x.op == "placeholder" and x.name in m.params:
        return Constant()  # num_batches_tracked += 1
    return _add(m, node, a)


def _cat(m, node, a):
    tensors = list(a["tensors"])
    dim = int(a["dim"]) % len(m.shape(tensors[0]))
    if dim == 0:
        raise m.refuse(node, "concatenation along the batch dimension is not supported")
    return m.add(node, "concat", [m.ref(t, node) for t in tensors], axis=dim)


def _flatten(m, node, a):
    x = a["self"]
    rank = len(m.shape(x))
    if int(a["start_dim"]) % rank == 1 and int(a["end_dim"]) % rank == rank - 1:
        return m.add(node, "flatten", [m.ref(x, node)])
    return _reshape(m, node, a)


def _reshape(m, node, a):
    x = node.args[0]
    m.check_batch(node)
    out = m.shape(node)
    if out[1:] == m.shape(x)[1:]:
        return m.ref(x, node)
    return m.add(node, "reshape", [m.ref(x, node)], target_shape=out[1:])


def _select(m, node, a):
    from trainplan.planner.importers.torch_blocks import select_last_step
    return select_last_step(m, node, a)


OPS = {
    "aten.conv2d.default": _conv2d, "aten.conv2d.padding": _conv2d,
    "aten.convolution.default": _conv2d,
    "aten.linear.default": _linear,
    "aten.batch_norm.default": _batch_norm,
    "aten.layer_norm.default": _layer_norm,
    "aten.embedding.default": _embedding,
    "aten.relu.default": _activation("relu"), "aten.relu_.default": _activation("relu"),
    "aten.hardtanh.default": _hardtanh, "aten.hardtanh_.default": _hardtanh,
    "aten.relu6.default": _activation("relu6"),
    "aten.sigmoid.default": _activation("sigmoid"), "aten.sigmoid_.default": _activation("sigmoid"),
    "aten.tanh.default": _activation("tanh"), "aten.tanh_.default": _activation("tanh"),
    "aten.gelu.default": _gelu,
    "aten.softmax.int": _softmax, "aten._softmax.default": _softmax,
    "aten.dropout.default": _dropout, "aten.dropout_.default": _dropout,
    "aten.max_pool2d.default": _max_pool,
    "aten.avg_pool2d.default": _avg_pool,
    "aten.adaptive_avg_pool2d.default": _adaptive("average"),
    "aten.mean.dim": _mean,
    "aten.add.Tensor": _add, "aten.add_.Tensor": _add_inplace,
    "aten.cat.default": _cat, "aten.concat.default": _cat,
    "aten.flatten.using_ints": _flatten,
    "aten.view.default": _reshape, "aten.reshape.default": _reshape,
    "aten._unsafe_view.default": _reshape, "aten.unflatten.int": _reshape,
    "aten.unsqueeze.default": _reshape, "aten.squeeze.dim": _reshape,
    "aten.squeeze.dims": _reshape,
    "aten.contiguous.default": _passthrough, "aten.clone.default": _passthrough,
    "aten.alias.default": _passthrough, "aten.detach.default": _passthrough,
    "aten.zeros.default": _constant,
    "aten.select.int": _select,
}
