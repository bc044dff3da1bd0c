"""One layer outside any arena: a ``LayerCtx`` with fresh arrays, for tests and benchmarks.

Arrays nothing has written yet are filled with NaN (floats) or -7 (integers), so a kernel that
reads memory it should have written first shows it at once.

>>> ctx = standalone_ctx("fully_connected", [(2, 3)], {"unit": 4})
>>> from trainplan.runtime.kernels import KERNELS
>>> KERNELS["fully_connected"].forward(ctx)
>>> ctx.outputs[0].shape
(2, 4)
"""

from __future__ import annotations

import numpy as np

from trainplan.planner.layers import LAYERS, Realised
from trainplan.runtime.kernels.base import LayerCtx, view


def _unwritten(shape, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    return np.full(shape, np.nan if dtype.kind == "f" else -7, dtype=dtype)


def _weight(rng, name: str, shape, dtype) -> np.ndarray:
    if name == "moving_variance":
        return rng.uniform(0.5, 1.5, shape).astype(dtype)
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else shape[0]
    return (rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))).astype(dtype)


def _label(rng, layer_type: str, shape, dtype) -> np.ndarray:
    if layer_type == "cross_softmax":
        label = np.zeros(shape, dtype)
        hot = rng.integers(0, shape[-1], shape[:-1])
        np.put_along_axis(label, hot[..., None], 1.0, axis=-1)
        return label
    return rng.standard_normal(shape).astype(dtype)


def standalone_ctx(
    layer_type: str, input_shapes: list[tuple[int, ...]], props: dict | None = None, *,
    dtype=np.float32, learns: bool = True, derivative: bool = True, inplace: bool = False,
    seed: int = 0,
) -> LayerCtx:
    """Random inputs, weights, output gradients and label; empty outputs and helpers.

    ``inplace`` aliases outputs[0] to inputs[0] and in_derivs[0] to out_grads[0] (multiout
    keeps separate derivatives), as the engine does for an in-place layer.
    """
    rng = np.random.default_rng(seed)
    spec = LAYERS[layer_type]
    props = {"name": layer_type, "batch": input_shapes[0][0], **(props or {})}
    real: Realised = spec.realise([tuple(s) for s in input_shapes], props, False)
    inputs = [rng.standard_normal(s).astype(dtype) for s in input_shapes]
    outputs = [_unwritten(s, dtype) for s in real.outputs]
    if inplace:  # multiout: every output is a view of the input
        alias = range(len(outputs)) if layer_type == "multiout" else (0,)
        for k in alias:
            outputs[k] = view(inputs[0], real.outputs[k])
    out_grads = [None if spec.is_loss else rng.standard_normal(s).astype(dtype)
                 for s in real.outputs]
    wants_derivative = derivative and real.derivative
    in_derivs = [_unwritten(s, dtype) if wants_derivative else None for s in input_shapes]
    if inplace and wants_derivative and out_grads[0] is not None and layer_type != "multiout":
        in_derivs[0] = view(out_grads[0], input_shapes[0])
    weights = {w: _weight(rng, w, spec_w.shape, dtype) for w, spec_w in real.weights.items()}
    weight_grads = {w: _unwritten(s.shape, dtype) for w, s in real.weights.items()
                    if learns and s.trainable}
    helpers = {h.name: _unwritten(h.shape, dtype if h.dtype == "float32" else h.dtype)
               for h in real.helpers}
    label = _label(rng, layer_type, input_shapes[0], dtype) if spec.is_loss else None
    if layer_type == "embedding":  # token ids, stored as floats
        inputs[0][...] = rng.integers(0, real.weights["weight"].shape[0], input_shapes[0])
    return LayerCtx(props, inputs, outputs, weights, weight_grads, out_grads, in_derivs,
                    helpers, label, True, (seed + 1,))
