"""Batch and layer normalisation kernels (planner/layers/norm.py), safe in place.

Forward computes the statistics and saves the normalised input in the ``normalized`` helper
before it writes the output, so the output may overwrite the input; the output array then
serves as scratch for the squared deviations. Backward reads only ``normalized``, ``invstd``,
gamma and the output gradient, which the input derivative may overwrite.

Conventions (NNTrainer's): ``epsilon`` 0.001; batch norm's running statistics follow
``running = momentum * running + (1 - momentum) * batch`` with ``momentum`` 0.99 and the biased
batch variance; inference (``training=False``) normalises with the running statistics.
"""

from __future__ import annotations

import numpy as np

from trainplan.planner.layers.norm import channel_axis
from trainplan.runtime.kernels.base import KernelSpec, LayerCtx, chunks, flat, register, rows, view

EPSILON = 1e-3
MOMENTUM = 0.99


def _channels(a: np.ndarray, props: dict) -> np.ndarray:
    """(rows, channels, positions) around the channel axis (planner/layers/norm.py)."""
    axis = channel_axis(a.shape, props)
    c = a.shape[axis]
    rows = int(np.prod(a.shape[:axis], dtype=np.int64))
    return view(a, (rows, c, a.size // (rows * c)))


def _normalized(ctx: LayerCtx) -> np.ndarray:
    """The saved x̂: ``normalized``, or NNTrainer's ``deviation`` in compatible graphs."""
    return ctx.helpers["deviation"] if "deviation" in ctx.helpers else ctx.helper("normalized")


def _planes(a3: np.ndarray) -> np.ndarray:
    return view(a3, (a3.shape[0] * a3.shape[1], a3.shape[2]))


def _per_plane(coef: np.ndarray, s: slice) -> np.ndarray:
    """Per-channel coefficients for planes ``s`` of a (rows * channels, positions) view."""
    return coef[np.arange(s.start, s.stop) % coef.size][:, None]


def bn_forward(ctx: LayerCtx) -> None:
    x3, y3 = _channels(ctx.inputs[0], ctx.props), _channels(ctx.outputs[0], ctx.props)
    w = ctx.weights
    eps = float(ctx.props.get("epsilon", EPSILON))
    if not ctx.training:
        scale = w["gamma"] / np.sqrt(w["moving_variance"] + eps)
        np.subtract(x3, w["moving_mean"][:, None], out=y3)
        y3 *= scale[:, None]
        y3 += w["beta"][:, None]
        return
    n3, invstd = _channels(_normalized(ctx), ctx.props), ctx.helper("invstd")
    count = x3.shape[0] * x3.shape[2]
    mean = np.sum(x3, axis=(0, 2)) / count
    np.subtract(x3, mean[:, None], out=n3)  # the last read of x: y may overwrite it now
    np.square(n3, out=y3)
    var = np.sum(y3, axis=(0, 2)) / count
    np.divide(1.0, np.sqrt(var + eps), out=invstd)
    n3 *= invstd[:, None]
    np.multiply(n3, w["gamma"][:, None], out=y3)
    y3 += w["beta"][:, None]
    if ctx.replay:
        return  # a recomputation: the running statistics were updated the first time
    momentum = float(ctx.props.get("momentum", MOMENTUM))
    for name, batch in (("moving_mean", mean), ("moving_variance", var)):
        w[name] *= momentum
        w[name] += (1.0 - momentum) * batch


def bn_calc_gradient(ctx: LayerCtx) -> None:
    """dgamma = Σ dy · x̂, dbeta = Σ dy per channel."""
    dy3, n3 = _channels(ctx.out_grads[0], ctx.props), _channels(_normalized(ctx), ctx.props)
    g = ctx.weight_grads
    if "gamma" in g:
        np.einsum("rcp,rcp->c", dy3, n3, out=g["gamma"])
    if "beta" in g:
        np.sum(dy3, axis=(0, 2), out=g["beta"])


def bn_calc_derivative(ctx: LayerCtx) -> None:
    """dx = γ·invstd · (dy − mean(dy) − x̂ · mean(dy · x̂)), per channel."""
    dy3, n3 = _channels(ctx.out_grads[0], ctx.props), _channels(_normalized(ctx), ctx.props)
    count = dy3.shape[0] * dy3.shape[2]
    a = ctx.weights["gamma"] * ctx.helper("invstd")
    shift = a * (np.sum(dy3, axis=(0, 2)) / count)
    slope = a * (np.einsum("rcp,rcp->c", dy3, n3) / count)
    dy, n, dx = _planes(dy3), _planes(n3), _planes(_channels(ctx.in_derivs[0], ctx.props))
    for s in chunks(dx.shape[0], dx.shape[1]):
        t = n[s] * _per_plane(slope, s)
        np.multiply(dy[s], _per_plane(a, s), out=dx[s])
        dx[s] -= _per_plane(shift, s)
        dx[s] -= t


def ln_forward(ctx: LayerCtx) -> None:
    x, y = rows(ctx.inputs[0]), rows(ctx.outputs[0])
    n, invstd = rows(ctx.helper("normalized")), flat(ctx.helper("invstd"))
    eps = float(ctx.props.get("epsilon", EPSILON))
    width = x.shape[1]
    mean = np.sum(x, axis=1) / width
    np.subtract(x, mean[:, None], out=n)  # the last read of x: y may overwrite it now
    np.square(n, out=y)
    var = np.sum(y, axis=1) / width
    np.divide(1.0, np.sqrt(var + eps), out=invstd)
    n *= invstd[:, None]
    np.multiply(n, ctx.weights["gamma"], out=y)
    y += ctx.weights["beta"]


def ln_calc_gradient(ctx: LayerCtx) -> None:
    dy, n = rows(ctx.out_grads[0]), rows(ctx.helper("normalized"))
    g = ctx.weight_grads
    if "gamma" in g:
        np.einsum("rd,rd->d", dy, n, out=g["gamma"])
    if "beta" in g:
        np.sum(dy, axis=0, out=g["beta"])


def ln_calc_derivative(ctx: LayerCtx) -> None:
    """dx = invstd · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · γ, per row."""
    dy, n = rows(ctx.out_grads[0]), rows(ctx.helper("normalized"))
    invstd, gamma = flat(ctx.helper("invstd")), ctx.weights["gamma"]
    width = dy.shape[1]
    shift = (dy @ gamma) / width
    slope = np.einsum("rd,d,rd->r", dy, gamma, n) / width
    dx = rows(ctx.in_derivs[0])
    for s in chunks(dx.shape[0], width):
        t = n[s] * slope[s, None]
        np.multiply(dy[s], gamma, out=dx[s])
        dx[s] -= shift[s, None]
        dx[s] -= t
        dx[s] *= invstd[s, None]


register("batch_normalization", KernelSpec(bn_forward, bn_calc_gradient, bn_calc_derivative))
register("layer_normalization", KernelSpec(ln_forward, ln_calc_gradient, ln_calc_derivative))
