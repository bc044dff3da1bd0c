"""Multi-head attention and LSTM kernels (planner/layers/sequence.py).

Both do their whole backward pass at calc_gradient — it is what the weight gradients need —
and leave the gradients of their projections (``dq``/``dk``/``dv``, ``d_gates``) in helpers for
calc_derivative, which only multiplies them by the input weights. A layer that sends a
derivative without learning (frozen in the middle of a learning network) is not supported.
LSTM time steps use (batch, units)-sized temporaries: one time step, not the sequence.
Attention runs in lanes of samples (its many small per-head products are too small for BLAS to
share among threads) and sums its weight gradients in lanes of their columns; the LSTM's
products are BLAS's to thread.
"""

from __future__ import annotations

import numpy as np

from trainplan.planner.layers.sequence import lstm_dims
from trainplan.runtime.kernels.base import (
    KernelError,
    KernelSpec,
    LayerCtx,
    matmul_acc,
    register,
    rows,
    view,
)
from trainplan.runtime.kernels.elementwise import sigmoid
from trainplan.runtime.kernels.parallel import split


def _needs_gradient_step(ctx: LayerCtx) -> None:
    if not ctx.weight_grads:
        raise KernelError(f"{ctx.props.get('name', '?')}: calc_derivative needs the "
                          "projection gradients of calc_gradient; a frozen layer that must "
                          "send a derivative is not supported")


# --- multi-head attention ------------------------------------------------------------------

def _qkv_inputs(ctx: LayerCtx, arrays: list) -> tuple:
    """(query, key, value) sources: one input is self-attention, two share key and value."""
    q = arrays[0]
    k = arrays[1] if len(arrays) > 1 else q
    v = arrays[2] if len(arrays) > 2 else k
    return q, k, v


def _heads(a: np.ndarray, heads: int) -> np.ndarray:
    """(b, t, d) -> (b, heads, t, d / heads), a view."""
    b, t, d = a.shape
    return view(a, (b, t, heads, d // heads)).transpose(0, 2, 1, 3)


def _project(x: np.ndarray, w: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    np.matmul(rows(x), w, out=rows(out))
    rows(out)[...] += bias


def mha_forward(ctx: LayerCtx) -> None:
    """Per lane of samples: the projections, scaled dot-product attention, the output."""
    heads = int(ctx.props.get("num_heads", 1))
    w, h = ctx.weights, ctx.helpers
    xq, xk, xv = _qkv_inputs(ctx, ctx.inputs)
    probs, context, y = ctx.helper("probs"), ctx.helper("context"), ctx.outputs[0]

    def lane(b: slice) -> None:
        for name, x in (("query", xq), ("key", xk), ("value", xv)):
            _project(x[b], w[f"{name}_weight"], w[f"{name}_bias"], ctx.helper(name[0])[b])
        q4, k4, v4 = (_heads(h[n][b], heads) for n in "qkv")
        p = probs[b]
        np.matmul(q4, k4.transpose(0, 1, 3, 2), out=p)
        p *= 1.0 / np.sqrt(q4.shape[-1])
        p2 = rows(p)
        p2 -= np.max(p2, axis=1)[:, None]
        np.exp(p2, out=p2)
        p2 /= np.sum(p2, axis=1)[:, None]
        np.matmul(p, v4, out=_heads(context[b], heads))
        _project(context[b], w["output_weight"], w["output_bias"], y[b])

    ctx.over(xq.shape[0], lane)


def mha_calc_gradient(ctx: LayerCtx) -> None:
    """The attention backward: per lane of samples dq, dk, dv (for calc_derivative too); then
    the weight and bias gradients, sums over every sample, per lane of their columns."""
    heads = int(ctx.props.get("num_heads", 1))
    w, g, h = ctx.weights, ctx.weight_grads, ctx.helpers
    dy = ctx.out_grads[0]
    dq, dk, dv = ctx.helper("dq"), ctx.helper("dk"), ctx.helper("dv")
    probs, dprobs = ctx.helper("probs"), ctx.helper("dprobs")

    def samples(b: slice) -> None:
        np.matmul(rows(dy[b]), w["output_weight"].T, out=rows(dq[b]))  # d context, for now
        q4, k4, v4 = (_heads(h[n][b], heads) for n in "qkv")
        p, dp = probs[b], dprobs[b]
        dctx4 = _heads(dq[b], heads)
        np.matmul(p.transpose(0, 1, 3, 2), dctx4, out=_heads(dv[b], heads))
        np.matmul(dctx4, v4.transpose(0, 1, 3, 2), out=dp)
        d2, p2 = rows(dp), rows(p)
        along = np.einsum("rk,rk->r", d2, p2)
        d2 -= along[:, None]
        d2 *= p2
        d2 *= 1.0 / np.sqrt(q4.shape[-1])  # now d scores
        np.matmul(dp.transpose(0, 1, 3, 2), q4, out=_heads(dk[b], heads))
        np.matmul(dp, k4, out=dctx4)  # dq replaces d context

    ctx.over(dy.shape[0], samples)
    xq, xk, xv = _qkv_inputs(ctx, ctx.inputs)
    pairs = [(rows(ctx.helper("context")), rows(dy), "output"),
             *((rows(x), rows(d), name) for name, x, d in
               (("query", xq, dq), ("key", xk, dk), ("value", xv, dv)))]

    parts = [split(d.shape[1], ctx.lanes) for _, d, _ in pairs]

    def columns(lane: int) -> None:
        for (x, d, name), cut in zip(pairs, parts):
            c = cut[lane]
            np.matmul(x.T, d[:, c], out=g[f"{name}_weight"][:, c])
            np.sum(d[:, c], axis=0, out=g[f"{name}_bias"][c])

    ctx.each_lane(columns)


def mha_calc_derivative(ctx: LayerCtx) -> None:
    """dx = dq Wqᵀ (+ dk Wkᵀ + dv Wvᵀ where key and value read the same input)."""
    _needs_gradient_step(ctx)
    w = ctx.weights
    sources = [0, min(1, len(ctx.inputs) - 1), min(2, len(ctx.inputs) - 1)]

    def lane(b: slice) -> None:
        written: set[int] = set()
        for name, src in zip(("query", "key", "value"), sources):
            dx = ctx.in_derivs[src]
            if dx is None:
                continue
            d, wt = rows(ctx.helper("d" + name[0])[b]), w[f"{name}_weight"].T
            if src in written:
                matmul_acc(d, wt, rows(dx[b]))
            else:
                np.matmul(d, wt, out=rows(dx[b]))
                written.add(src)

    ctx.over(ctx.inputs[0].shape[0], lane)


# --- LSTM ----------------------------------------------------------------------------------
# NNTrainer-compatible graphs name the saved tensors as NNTrainer does.
_LSTM_HELPERS = {"gates": "ifgo", "cell": "cell_state", "hidden": "hidden_state",
                 "d_gates": "ifgo:grad"}


def _saved(ctx: LayerCtx, name: str) -> np.ndarray:
    if name in ctx.helpers:
        return ctx.helpers[name]
    return ctx.helper(_LSTM_HELPERS[name])


def _sequence(ctx: LayerCtx, a: np.ndarray) -> np.ndarray:
    """An LSTM input (or its derivative) as (batch, time, features)."""
    return view(a, lstm_dims(a.shape, ctx.props.get("name", "lstm")))


def _bias(w: dict) -> list[np.ndarray]:
    return [w[b] for b in ("bias_h", "bias_ih", "bias_hh") if b in w]


def lstm_forward(ctx: LayerCtx) -> None:
    """Gates i, f, g, o; c_t = f·c_{t-1} + i·g, h_t = o·tanh(c_t); zero initial state."""
    x = _sequence(ctx, ctx.inputs[0])
    gates, cell, hidden = (_saved(ctx, n) for n in ("gates", "cell", "hidden"))
    w = ctx.weights
    units = cell.shape[2]
    np.matmul(rows(x), w["weight_ih"], out=rows(gates))
    for bias in _bias(w):
        rows(gates)[...] += bias
    for t in range(x.shape[1]):
        gt = gates[:, t]
        if t:
            gt += hidden[:, t - 1] @ w["weight_hh"]
        i, f, gg, o = (gt[:, k * units:(k + 1) * units] for k in range(4))
        for sig in (i, f, o):
            sigmoid(sig, sig)
        np.tanh(gg, out=gg)
        c = cell[:, t]
        np.multiply(i, gg, out=c)
        if t:
            c += f * cell[:, t - 1]
        np.tanh(c, out=hidden[:, t])
        hidden[:, t] *= o
    y = ctx.outputs[0]
    if y.size == hidden.size:
        view(y, hidden.shape)[...] = hidden
    else:
        view(y, hidden[:, -1].shape)[...] = hidden[:, -1]


def _lstm_step_back(t: int, ctx: LayerCtx, dh: np.ndarray, dc: np.ndarray | None) -> np.ndarray:
    """Gate gradients of step t into d_gates; returns the cell gradient for step t - 1."""
    gates, cell, dgates = (_saved(ctx, n) for n in ("gates", "cell", "d_gates"))
    units = cell.shape[2]
    i, f, g, o = (gates[:, t, k * units:(k + 1) * units] for k in range(4))
    di, df, dg, do = (dgates[:, t, k * units:(k + 1) * units] for k in range(4))
    tc = np.tanh(cell[:, t])
    np.multiply(dh, tc, out=do)
    do *= o * (1 - o)
    np.multiply(tc, tc, out=tc)
    np.subtract(1, tc, out=tc)
    tc *= o
    tc *= dh  # the cell gradient from h_t
    if dc is not None:
        tc += dc
    np.multiply(tc, g, out=di)
    di *= i * (1 - i)
    np.multiply(tc, i, out=dg)
    dg *= 1 - g * g
    if t:
        np.multiply(tc, cell[:, t - 1], out=df)
        df *= f * (1 - f)
    else:
        df[...] = 0
    tc *= f
    return tc


def lstm_calc_gradient(ctx: LayerCtx) -> None:
    """Backpropagation through time, then the weight gradients from the gate gradients."""
    w, g = ctx.weights, ctx.weight_grads
    hidden, dgates = _saved(ctx, "hidden"), _saved(ctx, "d_gates")
    batch, steps = hidden.shape[:2]
    sequences = ctx.out_grads[0].size == hidden.size
    dy = view(ctx.out_grads[0], hidden.shape if sequences else (batch, hidden.shape[2]))
    dc = None
    for t in reversed(range(steps)):
        if sequences:
            dh = dy[:, t].copy()
        else:
            dh = dy.copy() if t == steps - 1 else np.zeros_like(dy)
        if t < steps - 1:
            dh += dgates[:, t + 1] @ w["weight_hh"].T
        dc = _lstm_step_back(t, ctx, dh, dc)
    x2, dg2 = rows(_sequence(ctx, ctx.inputs[0])), rows(dgates)
    np.matmul(x2.T, dg2, out=g["weight_ih"])
    for bias in ("bias_h", "bias_ih", "bias_hh"):
        if bias in g:
            np.sum(dg2, axis=0, out=g[bias])
    # Σ_t h_{t-1}ᵀ dg_t as one product over consecutive rows, the rows that pair one sample's
    # last step with the next sample's first step zeroed for the while
    first = dgates[1:, 0].copy()
    dgates[1:, 0] = 0
    np.matmul(rows(hidden)[:-1].T, dg2[1:], out=g["weight_hh"])
    dgates[1:, 0] = first


def lstm_calc_derivative(ctx: LayerCtx) -> None:
    _needs_gradient_step(ctx)
    np.matmul(rows(_saved(ctx, "d_gates")), ctx.weights["weight_ih"].T,
              out=rows(_sequence(ctx, ctx.in_derivs[0])))


register("multi_head_attention", KernelSpec(mha_forward, mha_calc_gradient, mha_calc_derivative))
register("lstm", KernelSpec(lstm_forward, lstm_calc_gradient, lstm_calc_derivative,
                            blas=True))
