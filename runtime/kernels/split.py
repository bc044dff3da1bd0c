"""Kernels of the op phases of split steps (planner/split_steps.py), one registry
``PHASE_KERNELS[phase]``; the op's chunk is ``ctx.props["chunk"]`` (rows ``start:stop`` of
the batch, piece ``index`` of ``count``).

Split and merge copy one chunk's rows between a whole tensor and the chunk's own tensor.
Batch normalisation over chunks keeps whole-batch statistics: ``bn_statistics`` folds each
chunk's per-channel count, mean and sum of squared deviations into the ``statistics`` helper
(float64, Chan et al.'s pairwise update), and at the last chunk derives ``invstd`` and updates
the running statistics once; ``bn_normalize`` normalises a chunk; ``bn_reduce`` sums Σdy and
Σdy·x̂ over the chunks into ``sums`` (float64) and at the last chunk writes the weight
gradients from them; ``bn_derivative`` gives each chunk's input derivative from those sums.
Conventions as in runtime/kernels/norm.py; in inference (``training=False``) the statistics
phase does nothing and the normalisation uses the running statistics.

A fully-connected layer split over its output units (planner/split_units.py) runs one block
of units ``start:stop`` per op: forward writes the block's output columns, calc_gradient the
block's weight and bias gradients, calc_derivative adds the block's share to the input
derivative (the first block writes it).
"""

from __future__ import annotations

import numpy as np

from trainplan.runtime.kernels.base import Kernel, LayerCtx, chunks, matmul_acc, rows, view
from trainplan.runtime.kernels.norm import EPSILON, MOMENTUM, _channels, bn_forward

PHASE_KERNELS: dict[str, Kernel] = {}


def _planes(a3: np.ndarray) -> np.ndarray:
    """(rows * channels, positions) of a (rows, channels, positions) view."""
    return view(a3, (a3.shape[0] * a3.shape[1], a3.shape[2]))


def _per_plane(coef: np.ndarray, s: slice) -> np.ndarray:
    """Per-channel coefficients for planes ``s`` of a (rows * channels, positions) view."""
    return coef[np.arange(s.start, s.stop) % coef.size][:, None]


def register_phase(phase: str, kernel: Kernel) -> Kernel:
    PHASE_KERNELS[phase] = kernel
    return kernel


def _rows(ctx: LayerCtx) -> slice:
    chunk = ctx.props["chunk"]
    return slice(chunk.start, chunk.stop)


def split_forward(ctx: LayerCtx) -> None:
    """The chunk's rows of the whole tensor into the chunk's tensor."""
    np.copyto(ctx.outputs[0], ctx.inputs[0][_rows(ctx)])


def split_derivative(ctx: LayerCtx) -> None:
    """The chunk's gradient into its rows of the whole gradient."""
    np.copyto(ctx.in_derivs[0][_rows(ctx)], ctx.out_grads[0])


def merge_forward(ctx: LayerCtx) -> None:
    """The chunk's tensor into its rows of the whole tensor."""
    np.copyto(ctx.outputs[0][_rows(ctx)], ctx.inputs[0])


def merge_derivative(ctx: LayerCtx) -> None:
    """The chunk's rows of the whole gradient into the chunk's gradient."""
    np.copyto(ctx.in_derivs[0], ctx.out_grads[0][_rows(ctx)])


def _last(ctx: LayerCtx) -> bool:
    chunk = ctx.props["chunk"]
    return chunk.index == chunk.count - 1


def bn_statistics(ctx: LayerCtx) -> None:
    """Fold the chunk's per-channel count, mean and squared deviations into the statistics."""
    if not ctx.training:
        return
    x3 = _channels(ctx.inputs[0], ctx.props)
    stats = ctx.helper("statistics")  # rows: count, mean, sum of squared deviations
    count = x3.shape[0] * x3.shape[2]
    mean = np.sum(x3, axis=(0, 2)) / count
    channels = x3.shape[1]
    squares = np.zeros(channels, dtype=np.float64)
    x = _planes(x3)
    for s in chunks(x.shape[0], x.shape[1]):
        d = x[s] - _per_plane(mean, s)
        np.square(d, out=d)
        squares += np.bincount(np.arange(s.start, s.stop) % channels,
                               weights=np.sum(d, axis=1), minlength=channels)
    if ctx.props["chunk"].index == 0:
        stats[0], stats[1], stats[2] = count, mean, squares
    else:
        before = stats[0].copy()
        delta = mean - stats[1]
        total = before + count
        stats[1] += delta * (count / total)
        stats[2] += squares + delta * delta * (before * count / total)
        stats[0] = total
    if _last(ctx):
        _finish_statistics(ctx, stats)


def _finish_statistics(ctx: LayerCtx, stats: np.ndarray) -> None:
    """Inverse standard deviation from the whole batch; running statistics updated once."""
    eps = float(ctx.props.get("epsilon", EPSILON))
    var = stats[2] / stats[0]
    invstd = ctx.helper("invstd")
    np.divide(1.0, np.sqrt(var + eps), out=invstd, casting="unsafe")
    momentum = float(ctx.props.get("momentum", MOMENTUM))
    w = ctx.weights
    for name, batch in (("moving_mean", stats[1]), ("moving_variance", var)):
        w[name] *= momentum
        w[name] += ((1.0 - momentum) * batch).astype(w[name].dtype)


def bn_normalize(ctx: LayerCtx) -> None:
    """x̂ = (x − mean)·invstd saved, y = γ·x̂ + β (y may overwrite x)."""
    if not ctx.training:
        bn_forward(ctx)  # the running statistics
        return
    x3, y3 = _channels(ctx.inputs[0], ctx.props), _channels(ctx.outputs[0], ctx.props)
    n3 = _channels(ctx.helper("normalized"), ctx.props)
    mean = ctx.helper("statistics")[1].astype(x3.dtype)
    np.subtract(x3, mean[:, None], out=n3)  # the last read of x: y may overwrite it now
    n3 *= ctx.helper("invstd")[:, None]
    np.multiply(n3, ctx.weights["gamma"][:, None], out=y3)
    y3 += ctx.weights["beta"][:, None]


def bn_reduce(ctx: LayerCtx) -> None:
    """Σdy and Σdy·x̂ per channel over the chunks; the last chunk writes dγ and dβ."""
    dy3 = _channels(ctx.out_grads[0], ctx.props)
    n3 = _channels(ctx.helper("normalized"), ctx.props)
    sums = ctx.helper("sums")
    part = (np.sum(dy3, axis=(0, 2)), np.einsum("rcp,rcp->c", dy3, n3))
    if ctx.props["chunk"].index == 0:
        sums[0], sums[1] = part
    else:
        sums[0] += part[0]
        sums[1] += part[1]
    if _last(ctx):
        g = ctx.weight_grads
        if "gamma" in g:
            g["gamma"][...] = sums[1]
        if "beta" in g:
            g["beta"][...] = sums[0]


def bn_derivative(ctx: LayerCtx) -> None:
    """dx = γ·invstd · (dy − Σdy/n − x̂ · Σdy·x̂/n), n over the whole batch."""
    dy3 = _channels(ctx.out_grads[0], ctx.props)
    n3 = _channels(ctx.helper("normalized"), ctx.props)
    chunk = ctx.props["chunk"]  # values per channel in the whole batch:
    count = dy3.shape[0] * dy3.shape[2] // (chunk.stop - chunk.start) * chunk.total
    sums = ctx.helper("sums")
    a = ctx.weights["gamma"] * ctx.helper("invstd")
    shift = a * (sums[0] / count).astype(a.dtype)
    slope = a * (sums[1] / count).astype(a.dtype)
    dy, n, dx = _planes(dy3), _planes(n3), _planes(_channels(ctx.in_derivs[0], ctx.props))
    for s in chunks(dx.shape[0], dx.shape[1]):
        t = n[s] * _per_plane(slope, s)
        np.multiply(dy[s], _per_plane(a, s), out=dx[s])
        dx[s] -= _per_plane(shift, s)
        dx[s] -= t


def _units(ctx: LayerCtx) -> slice:
    chunk = ctx.props["chunk"]
    return slice(chunk.start, chunk.stop)


def fc_units_forward(ctx: LayerCtx) -> None:
    """y[:, block] = x W_block + b_block."""
    y = rows(ctx.outputs[0])[:, _units(ctx)]
    np.matmul(rows(ctx.inputs[0]), ctx.weights["weight"], out=y)
    if "bias" in ctx.weights:
        y += ctx.weights["bias"]


def fc_units_gradient(ctx: LayerCtx) -> None:
    """dW_block = xᵀ dy[:, block], db_block = Σ dy[:, block]."""
    dy = rows(ctx.out_grads[0])[:, _units(ctx)]
    np.matmul(rows(ctx.inputs[0]).T, dy, out=ctx.weight_grads["weight"])
    if "bias" in ctx.weight_grads:
        np.sum(dy, axis=0, out=ctx.weight_grads["bias"])


def fc_units_derivative(ctx: LayerCtx) -> None:
    """dx (+)= dy[:, block] W_blockᵀ."""
    dy = rows(ctx.out_grads[0])[:, _units(ctx)]
    dx, w = rows(ctx.in_derivs[0]), ctx.weights["weight"]
    if ctx.props["chunk"].index == 0:
        np.matmul(dy, w.T, out=dx)
    else:
        matmul_acc(dy, w.T, dx)


for _phase, _kernel in (("split_forward", split_forward), ("split_derivative", split_derivative),
                        ("merge_forward", merge_forward), ("merge_derivative", merge_derivative),
                        ("bn_statistics", bn_statistics), ("bn_normalize", bn_normalize),
                        ("bn_reduce", bn_reduce), ("bn_derivative", bn_derivative),
                        ("fc_units_forward", fc_units_forward),
                        ("fc_units_gradient", fc_units_gradient),
                        ("fc_units_derivative", fc_units_derivative)):
    register_phase(_phase, _kernel)
