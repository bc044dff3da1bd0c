"""Activations, dropout, addition, concat, split, reshape/flatten/identity and multiout kernels.

Activations whose derivative comes from the output (relu, relu6, sigmoid, tanh, softmax, none)
run in place safely: forward is one pass from input to output, backward reads the output and
may overwrite the output gradient. GELU uses the tanh approximation
0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), gelu_erf the exact x·Φ(x); both read their input at
backward.
Softmax is over the last axis.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trainplan.planner.layers.elementwise import concat_axis
from trainplan.runtime.kernels.base import (
    KernelSpec,
    LayerCtx,
    chunks,
    copy_into,
    flat,
    register,
    rows,
    same_memory,
)
from trainplan.runtime.kernels.parallel import split
from trainplan.runtime.kernels.program import Call, call, lane_program

GELU_C = float(np.sqrt(2.0 / np.pi))
GELU_A = 0.044715
INV_SQRT2 = float(1.0 / np.sqrt(2.0))
INV_SQRT_2PI = float(1.0 / np.sqrt(2.0 * np.pi))


def _relu(x, y):
    np.maximum(x, 0, out=y)


def _relu6(x, y):
    np.clip(x, 0, 6, out=y)


def sigmoid(x: np.ndarray, y: np.ndarray) -> None:
    """y = 1 / (1 + exp(-x)); ``y`` may be ``x``."""
    with np.errstate(over="ignore"):
        np.negative(x, out=y)
        np.exp(y, out=y)
    y += 1
    np.reciprocal(y, out=y)


def _tanh(x, y):
    np.tanh(x, out=y)


def _softmax(x, y):
    x2, y2 = rows(x), rows(y)
    peak = np.max(x2, axis=1)
    np.subtract(x2, peak[:, None], out=y2)
    np.exp(y2, out=y2)
    y2 /= np.sum(y2, axis=1)[:, None]


def _gelu(x, y):
    x1, y1 = flat(x), flat(y)
    for s in chunks(x1.size):
        xs = x1[s]
        t = xs * xs
        t *= GELU_C * GELU_A
        t += GELU_C
        t *= xs
        np.tanh(t, out=t)
        t += 1
        t *= xs
        np.multiply(t, 0.5, out=y1[s])


def erf(x: np.ndarray) -> np.ndarray:
    """The error function to a fractional error below 1.2e-7 (Numerical Recipes' Chebyshev
    fit of erfc), so float32 noise: numpy has none of its own."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(x.dtype, copy=False)


def _gelu_erf(x, y):
    x1, y1 = flat(x), flat(y)
    for s in chunks(x1.size):
        xs = x1[s]
        t = erf(xs * INV_SQRT2)
        t += 1
        t *= xs
        np.multiply(t, 0.5, out=y1[s])


def _d_gelu_erf(dy, x, dx):
    """d/dx x·Φ(x) = Φ(x) + x·φ(x)."""
    for s in chunks(dx.size):
        xs = x[s]
        pdf = np.exp(-0.5 * xs * xs)
        pdf *= INV_SQRT_2PI
        pdf *= xs
        t = erf(xs * INV_SQRT2)
        t += 1
        t *= 0.5
        t += pdf
        np.multiply(dy[s], t, out=dx[s])


def _none(x, y):
    copy_into(y, x)


def _d_relu(dy, y, dx):
    for s in chunks(dx.size):
        np.multiply(dy[s], y[s] > 0, out=dx[s])


def _d_relu6(dy, y, dx):
    for s in chunks(dx.size):
        inside = y[s] > 0
        inside &= y[s] < 6
        np.multiply(dy[s], inside, out=dx[s])


def _d_sigmoid(dy, y, dx):
    for s in chunks(dx.size):
        t = 1 - y[s]
        t *= y[s]
        np.multiply(dy[s], t, out=dx[s])


def _d_tanh(dy, y, dx):
    for s in chunks(dx.size):
        t = y[s] * y[s]
        np.subtract(1, t, out=t)
        np.multiply(dy[s], t, out=dx[s])


def _d_gelu(dy, x, dx):
    for s in chunks(dx.size):
        xs = x[s]
        x2 = xs * xs
        th = x2 * (GELU_C * GELU_A)
        th += GELU_C
        th *= xs
        np.tanh(th, out=th)
        x2 *= 3 * GELU_A * GELU_C  # d(inner)/dx = c·(1 + 3a·x²)
        x2 += GELU_C
        x2 *= xs
        x2 *= 0.5
        sech2 = th * th
        np.subtract(1, sech2, out=sech2)
        sech2 *= x2
        th += 1
        th *= 0.5
        th += sech2
        np.multiply(dy[s], th, out=dx[s])


def _d_softmax(dy, y, dx):
    dy2, y2, dx2 = rows(dy), rows(y), rows(dx)
    along = np.einsum("rd,rd->r", dy2, y2)  # before dx (maybe dy's bytes) is written
    np.subtract(dy2, along[:, None], out=dx2)
    dx2 *= y2


def _d_none(dy, y, dx):
    copy_into(dx, dy)


# kind -> (forward(x, y), backward(dy, saved, dx), backward reads the input)
ACTIVATIONS: dict[str, tuple[Callable, Callable, bool]] = {
    "relu": (_relu, _d_relu, False), "relu6": (_relu6, _d_relu6, False),
    "sigmoid": (sigmoid, _d_sigmoid, False), "tanh": (_tanh, _d_tanh, False),
    "softmax": (_softmax, _d_softmax, False), "gelu": (_gelu, _d_gelu, True),
    "gelu_erf": (_gelu_erf, _d_gelu_erf, True),
    "none": (_none, _d_none, False),
}


def _kind(ctx: LayerCtx) -> tuple[Callable, Callable, bool]:
    return ACTIVATIONS[str(ctx.props.get("activation", "relu")).lower()]


def _parts(forward: Callable, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays as the lanes cut them: rows for softmax, elements for the others."""
    return tuple((rows if forward is _softmax else flat)(a) for a in arrays)


def activation_forward(ctx: LayerCtx) -> None:
    forward = _kind(ctx)[0]
    x, y = _parts(forward, ctx.inputs[0], ctx.outputs[0])
    if forward is _relu:  # the common case as a lane program (runtime/kernels/program.py)
        ctx.run(lane_program(ctx, "forward", lambda: [
            [call(np.maximum, x[s], 0, out=y[s])] for s in split(len(x), ctx.lanes)]))
        return
    ctx.over(len(x), lambda s: forward(x[s], y[s]), elementwise=True)


def activation_calc_derivative(ctx: LayerCtx) -> None:
    forward, backward, from_input = _kind(ctx)
    saved = ctx.inputs[0] if from_input else ctx.outputs[0]
    dy, kept, dx = _parts(forward, ctx.out_grads[0], saved, ctx.in_derivs[0])
    if backward is _d_relu:
        ctx.run(lane_program(ctx, "calc_derivative", lambda: [
            _d_relu_calls(ctx, k, dy, kept, dx, s)
            for k, s in enumerate(split(len(dx), ctx.lanes))]))
        return
    ctx.over(len(dx), lambda s: backward(dy[s], kept[s], dx[s]),
               elementwise=True)


def _d_relu_calls(ctx: LayerCtx, lane: int, dy: np.ndarray, y: np.ndarray, dx: np.ndarray,
                  part: slice) -> list[Call]:
    """``_d_relu`` on the elements ``part`` as calls, chunk by chunk."""
    calls = []
    for c in chunks(part.stop - part.start):
        s = slice(part.start + c.start, part.start + c.stop)
        hit = ctx.scratch(lane, (s.stop - s.start,), bool)
        calls += [call(np.greater, y[s], 0, out=hit), call(np.multiply, dy[s], hit, out=dx[s])]
    return calls


def dropout_forward(ctx: LayerCtx) -> None:
    """Inverted dropout: the mask (0 or 1/(1-rate)) is drawn from ctx.rng and kept."""
    rate = float(ctx.props.get("dropout_rate", ctx.props.get("dropout", 0.5)))
    x, y = ctx.inputs[0], ctx.outputs[0]
    if not ctx.training or rate == 0.0:
        copy_into(y, x)
        if ctx.training:
            ctx.helper("mask")[...] = 1
        return
    mask = ctx.helper("mask")
    ctx.rng.random(out=flat(mask), dtype=mask.dtype)
    np.greater_equal(mask, rate, out=mask)
    mask *= 1.0 / (1.0 - rate)
    np.multiply(x, mask, out=y)


def dropout_calc_derivative(ctx: LayerCtx) -> None:
    np.multiply(ctx.out_grads[0], ctx.helper("mask"), out=ctx.in_derivs[0])


def addition_forward(ctx: LayerCtx) -> None:
    x, y = [flat(a) for a in ctx.inputs], flat(ctx.outputs[0])
    if len(x) == 1:
        copy_into(ctx.outputs[0], ctx.inputs[0])
        return

    def lane(s: slice) -> None:
        np.add(x[0][s], x[1][s], out=y[s])
        for other in x[2:]:
            y[s] += other[s]

    ctx.over(y.size, lane, elementwise=True)


def _copy(ctx: LayerCtx, dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` (reshaped) in lanes; nothing when they are the same bytes."""
    if same_memory(dst, src):
        return
    d, s_ = flat(dst), flat(src)
    ctx.over(d.size, lambda s: np.copyto(d[s], s_[s]), elementwise=True)


def copy_to_inputs(ctx: LayerCtx) -> None:
    """Every input receives the output gradient (addition, reshape, flatten, identity)."""
    for dx in ctx.in_derivs:
        if dx is not None:
            _copy(ctx, dx, ctx.out_grads[0])


def _axis_slices(ctx: LayerCtx) -> list[tuple]:
    """Where each input sits in the concatenated output."""
    axis = concat_axis(ctx.inputs[0].shape, ctx.props)
    result, start = [], 0
    for x in ctx.inputs:
        result.append((slice(None),) * axis + (slice(start, start + x.shape[axis]),))
        start += x.shape[axis]
    return result


def _split_slices(ctx: LayerCtx) -> list[tuple]:
    """Where each output of a split sits in its input."""
    axis = int(ctx.props["axis"]) % ctx.inputs[0].ndim
    size = ctx.outputs[0].shape[axis]
    return [(slice(None),) * axis + (slice(k * size, (k + 1) * size),)
            for k in range(len(ctx.outputs))]


def split_forward(ctx: LayerCtx) -> None:
    for y, where in zip(ctx.outputs, _split_slices(ctx)):
        y[...] = ctx.inputs[0][where]


def split_calc_derivative(ctx: LayerCtx) -> None:
    """Each part's gradient back into its place; a part nothing reads gets zeros."""
    dx = ctx.in_derivs[0]
    for dy, where in zip(ctx.out_grads, _split_slices(ctx)):
        if dy is None:
            dx[where] = 0
        else:
            dx[where] = dy


def concat_forward(ctx: LayerCtx) -> None:
    for x, where in zip(ctx.inputs, _axis_slices(ctx)):
        ctx.outputs[0][where] = x


def concat_calc_derivative(ctx: LayerCtx) -> None:
    for dx, where in zip(ctx.in_derivs, _axis_slices(ctx)):
        if dx is not None:
            dx[...] = ctx.out_grads[0][where]


def passthrough_forward(ctx: LayerCtx) -> None:
    """Reshape, flatten, identity: a copy, nothing at all when the output is the input."""
    _copy(ctx, ctx.outputs[0], ctx.inputs[0])


def multiout_forward(ctx: LayerCtx) -> None:
    for y in ctx.outputs:
        _copy(ctx, y, ctx.inputs[0])


def multiout_calc_derivative(ctx: LayerCtx) -> None:
    """The input derivative is the sum of the output gradients, in output order."""
    dx = ctx.in_derivs[0]
    if dx is None:
        return
    grads = [g for g in ctx.out_grads if g is not None]
    if not grads:
        dx[...] = 0
        return
    first = None if same_memory(dx, grads[0]) else flat(grads[0])
    d, rest = flat(dx), [flat(g) for g in grads[1:]]

    def lane(s: slice) -> None:
        if first is not None:
            np.copyto(d[s], first[s])
        for g in rest:
            d[s] += g[s]

    ctx.over(d.size, lane, elementwise=True)


register("activation", KernelSpec(activation_forward, None, activation_calc_derivative))
register("dropout", KernelSpec(dropout_forward, None, dropout_calc_derivative))
register("addition", KernelSpec(addition_forward, None, copy_to_inputs))
register("concat", KernelSpec(concat_forward, None, concat_calc_derivative))
register("split", KernelSpec(split_forward, None, split_calc_derivative))
for _type in ("reshape", "flatten", "identity"):
    register(_type, KernelSpec(passthrough_forward, None, copy_to_inputs))
register("multiout", KernelSpec(multiout_forward, None, multiout_calc_derivative))
