"""Batch and layer normalisation kernels (planner/layers/norm.py), safe in place.

Forward computes the statistics and saves the normalised input in the ``normalized`` helper
before it writes the output, so the output may overwrite the input; the output array then
serves as scratch for the squared deviations. Backward reads only ``normalized``, ``invstd``,
gamma and the output gradient, which the input derivative may overwrite.

Every step runs in lanes of channels (batch norm) or rows (layer norm): each lane's statistics
are its own, so the thread count changes no bit.

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


def bn_forward(ctx: LayerCtx) -> None:
    x3, y3 = _channels(ctx.inputs[0], ctx.props), _channels(ctx.outputs[0], ctx.props)
    w = ctx.weights
    eps = float(ctx.props.get("epsilon", EPSILON))
    if not ctx.training:
        ctx.over(x3.shape[1], lambda c: _bn_inference(x3, y3, w, eps, c))
        return
    n3, invstd = _channels(_normalized(ctx), ctx.props), ctx.helper("invstd")
    # a recomputation (ctx.replay) leaves the running statistics alone: updated the first time
    momentum = None if ctx.replay else float(ctx.props.get("momentum", MOMENTUM))
    ctx.over(x3.shape[1], lambda c: _bn_train(x3[:, c], y3[:, c], n3[:, c], invstd[c],
                                              {k: v[c] for k, v in w.items()}, eps, momentum))


def _bn_inference(x3, y3, w, eps: float, c: slice) -> None:
    scale = w["gamma"][c] / np.sqrt(w["moving_variance"][c] + eps)
    np.subtract(x3[:, c], w["moving_mean"][c, None], out=y3[:, c])
    y3[:, c] *= scale[:, None]
    y3[:, c] += w["beta"][c, None]


def _bn_train(x3, y3, n3, invstd, w: dict, eps: float, momentum: float | None) -> None:
    """One lane's channels: statistics, x̂ into ``normalized``, then the output, and the
    running statistics unless ``momentum`` is None."""
    count = x3.shape[0] * x3.shape[2]
    mean = np.sum(x3, axis=(0, 2)) / count
    np.subtract(x3, mean[:, None], out=n3)  # the last read of x: y may overwrite it now
    np.square(n3, out=y3)
    var = np.sum(y3, axis=(0, 2)) / count
    np.divide(1.0, np.sqrt(var + eps), out=invstd)
    n3 *= invstd[:, None]
    np.multiply(n3, w["gamma"][:, None], out=y3)
    y3 += w["beta"][:, None]
    if momentum is None:
        return
    for name, batch in (("moving_mean", mean), ("moving_variance", var)):
        w[name] *= momentum
        w[name] += (1.0 - momentum) * batch


def bn_calc_gradient(ctx: LayerCtx) -> None:
    """dgamma = Σ dy · x̂, dbeta = Σ dy per channel."""
    dy3, n3 = _channels(ctx.out_grads[0], ctx.props), _channels(_normalized(ctx), ctx.props)
    g = ctx.weight_grads

    def lane(c: slice) -> None:
        if "gamma" in g:
            np.einsum("rcp,rcp->c", dy3[:, c], n3[:, c], out=g["gamma"][c])
        if "beta" in g:
            np.sum(dy3[:, c], axis=(0, 2), out=g["beta"][c])

    ctx.over(dy3.shape[1], lane)


def bn_calc_derivative(ctx: LayerCtx) -> None:
    """dx = γ·invstd · (dy − mean(dy) − x̂ · mean(dy · x̂)), per channel."""
    dy3, n3 = _channels(ctx.out_grads[0], ctx.props), _channels(_normalized(ctx), ctx.props)
    dx3 = _channels(ctx.in_derivs[0], ctx.props)
    gamma, invstd = ctx.weights["gamma"], ctx.helper("invstd")

    def lane(c: slice) -> None:
        dy, n, dx = dy3[:, c], n3[:, c], dx3[:, c]
        count = dy.shape[0] * dy.shape[2]
        a = gamma[c] * invstd[c]
        shift = (a * (np.sum(dy, axis=(0, 2)) / count))[:, None]
        slope = (a * (np.einsum("rcp,rcp->c", dy, n) / count))[:, None]
        a = a[:, None]
        for s in chunks(dx.shape[0], dx[0].size):  # samples: x̂ · slope stays within CHUNK
            t = n[s] * slope
            np.multiply(dy[s], a, out=dx[s])
            dx[s] -= shift
            dx[s] -= t

    ctx.over(dy3.shape[1], lane)


def ln_forward(ctx: LayerCtx) -> None:
    x, y = rows(ctx.inputs[0]), rows(ctx.outputs[0])
    n, invstd = rows(ctx.helper("normalized")), flat(ctx.helper("invstd"))
    eps = float(ctx.props.get("epsilon", EPSILON))
    gamma, beta = ctx.weights["gamma"], ctx.weights["beta"]
    ctx.over(x.shape[0], lambda r: _ln_rows(x[r], y[r], n[r], invstd[r], gamma, beta, eps))


def _ln_rows(x, y, n, invstd, gamma, beta, eps: float) -> None:
    width = x.shape[1]
    mean = np.sum(x, axis=1) / width
    np.subtract(x, mean[:, None], out=n)  # the last read of x: y may overwrite it now
    np.square(n, out=y)
    var = np.sum(y, axis=1) / width
    np.divide(1.0, np.sqrt(var + eps), out=invstd)
    n *= invstd[:, None]
    np.multiply(n, gamma, out=y)
    y += beta


def ln_calc_gradient(ctx: LayerCtx) -> None:
    """dgamma = Σ dy · x̂, dbeta = Σ dy over rows, in lanes of columns."""
    dy, n = rows(ctx.out_grads[0]), rows(ctx.helper("normalized"))
    g = ctx.weight_grads

    def lane(d: slice) -> None:
        if "gamma" in g:
            np.einsum("rd,rd->d", dy[:, d], n[:, d], out=g["gamma"][d])
        if "beta" in g:
            np.sum(dy[:, d], axis=0, out=g["beta"][d])

    ctx.over(dy.shape[1], lane)


def ln_calc_derivative(ctx: LayerCtx) -> None:
    """dx = invstd · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · γ, per row."""
    dy, n = rows(ctx.out_grads[0]), rows(ctx.helper("normalized"))
    invstd, gamma = flat(ctx.helper("invstd")), ctx.weights["gamma"]
    dx = rows(ctx.in_derivs[0])
    ctx.over(dx.shape[0], lambda r: _ln_back_rows(dy[r], n[r], invstd[r], gamma, dx[r]))


def _ln_back_rows(dy, n, invstd, gamma, dx) -> None:
    width = dy.shape[1]
    shift = (dy @ gamma) / width
    slope = np.einsum("rd,d,rd->r", dy, gamma, n) / width
    for s in chunks(dx.shape[0], width):
        t = n[s] * slope[s, None]
        np.multiply(dy[s], gamma, out=dx[s])
        dx[s] -= shift[s, None]
        dx[s] -= t
        dx[s] *= invstd[s, None]


register("batch_normalization", KernelSpec(bn_forward, bn_calc_gradient, bn_calc_derivative))
register("layer_normalization", KernelSpec(ln_forward, ln_calc_gradient, ln_calc_derivative))
