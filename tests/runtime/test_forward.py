"""Forward kernels against direct numpy formulas, in float64 (the gradient checks only show
that each backward agrees with its forward; these show the forward is the right function).
Conventions checked too: batch norm's running statistics and inference, dropout's mask."""

import numpy as np
import pytest

from trainplan.runtime.kernels import KERNELS
from trainplan.runtime.kernels.standalone import standalone_ctx

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _forward(layer_type, shapes, props, **kw):
    ctx = standalone_ctx(layer_type, shapes, props, dtype=np.float64, **kw)
    loss = KERNELS[layer_type].forward(ctx)
    return ctx, loss


def _conv_reference(x, w, b, stride, pad, dilation, groups):
    n, _, h, wd = x.shape
    f, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, f, oh, ow))
    fg = f // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, i * dilation:i * dilation + stride * oh:stride,
                           j * dilation:j * dilation + stride * ow:stride]
                out[:, g * fg:(g + 1) * fg] += np.einsum("fc,ncyx->nfyx",
                                                         w[g * fg:(g + 1) * fg, :, i, j], patch)
    return out + b[None, :, None, None]


@pytest.mark.parametrize("props", [
    {"filters": 6, "kernel_size": 3, "padding": 1, "stride": 2, "groups": 2},
    {"filters": 4, "kernel_size": 3, "padding": 2, "dilation": 2},
    {"filters": 4, "kernel_size": 3, "padding": 1, "groups": 4},
    {"filters": 5, "kernel_size": 1},
    {"filters": 3, "kernel_size": 5},
])
def test_conv2d(props):
    ctx, _ = _forward("conv2d", [(2, 4, 7, 7)], props)
    ref = _conv_reference(ctx.inputs[0], ctx.weights["filter"], ctx.weights["bias"],
                          props.get("stride", 1), props.get("padding", 0),
                          props.get("dilation", 1), props.get("groups", 1))
    np.testing.assert_allclose(ctx.outputs[0], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "average"])
def test_pooling_windows(kind):
    ctx, _ = _forward("pooling2d", [(2, 3, 7, 7)],
                      {"pooling": kind, "pool_size": 3, "stride": 2, "padding": 1})
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(ctx.inputs[0], ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=fill)
    windows = np.stack([xp[:, :, i:i + 7:2, j:j + 7:2] for i in range(3) for j in range(3)])
    ref = windows.max(0) if kind == "max" else windows.sum(0) / 9  # padding counts as zeros
    np.testing.assert_allclose(ctx.outputs[0], ref, rtol=1e-12)


def test_global_pooling():
    for kind, reduce in (("global_max", np.max), ("global_average", np.mean)):
        ctx, _ = _forward("pooling2d", [(2, 3, 4, 5)], {"pooling": kind})
        ref = reduce(ctx.inputs[0], axis=(2, 3), keepdims=True)
        np.testing.assert_allclose(ctx.outputs[0], ref, rtol=1e-12)


def test_batch_norm_training_running_statistics_and_inference():
    ctx, _ = _forward("batch_normalization", [(4, 3, 5, 5)], {"momentum": 0.9})
    x, w = ctx.inputs[0], {k: v.copy() for k, v in ctx.weights.items()}
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    ref = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3)
    gamma, beta = w["gamma"][:, None, None], w["beta"][:, None, None]
    np.testing.assert_allclose(ctx.outputs[0], ref * gamma + beta, rtol=1e-10, atol=1e-12)
    fresh = standalone_ctx("batch_normalization", [(4, 3, 5, 5)], {}, dtype=np.float64)
    np.testing.assert_allclose(w["moving_mean"], 0.9 * fresh.weights["moving_mean"] + 0.1 * mean)
    np.testing.assert_allclose(w["moving_variance"],
                               0.9 * fresh.weights["moving_variance"] + 0.1 * var)
    ctx.training = False
    KERNELS["batch_normalization"].forward(ctx)
    mm, mv = w["moving_mean"][:, None, None], w["moving_variance"][:, None, None]
    np.testing.assert_allclose(ctx.outputs[0], (x - mm) / np.sqrt(mv + 1e-3) * gamma + beta,
                               rtol=1e-10, atol=1e-12)


def test_layer_norm():
    ctx, _ = _forward("layer_normalization", [(2, 3, 6)], {})
    x = ctx.inputs[0]
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(ctx.outputs[0], ref * ctx.weights["gamma"] + ctx.weights["beta"],
                               rtol=1e-10, atol=1e-12)


ACTS = {
    "relu": lambda x: np.maximum(x, 0), "relu6": lambda x: np.clip(x, 0, 6),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "tanh": np.tanh,
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
    "none": lambda x: x,
}


@pytest.mark.parametrize("kind", list(ACTS))
def test_activations(kind):
    ctx, _ = _forward("activation", [(3, 7)], {"activation": kind})
    np.testing.assert_allclose(ctx.outputs[0], ACTS[kind](ctx.inputs[0]), rtol=1e-12)


def test_losses():
    ctx, loss = _forward("cross_softmax", [(4, 5)], {})
    x, label = ctx.inputs[0], ctx.label
    log_p = x - np.log(np.exp(x).sum(1, keepdims=True))
    assert loss == pytest.approx(-(label * log_p).sum() / 4, rel=1e-12)
    np.testing.assert_allclose(ctx.outputs[0], np.exp(log_p), rtol=1e-12)
    ctx, loss = _forward("mse", [(4, 5)], {})
    err = (ctx.inputs[0] - ctx.label) ** 2
    assert loss == pytest.approx(err.mean(), rel=1e-12)
    np.testing.assert_allclose(ctx.outputs[0][:, 0], err.mean(1), rtol=1e-12)


@pytest.mark.parametrize("shapes", [[(2, 3, 4)], [(2, 3, 4), (2, 5, 6), (2, 5, 3)]])
def test_multi_head_attention(shapes):
    ctx, _ = _forward("multi_head_attention", shapes, {"num_heads": 2})
    w, xs = ctx.weights, ctx.inputs
    q = xs[0] @ w["query_weight"] + w["query_bias"]
    k = xs[min(1, len(xs) - 1)] @ w["key_weight"] + w["key_bias"]
    v = xs[min(2, len(xs) - 1)] @ w["value_weight"] + w["value_bias"]
    heads = []
    for h in range(2):
        s = slice(h * 2, h * 2 + 2)
        scores = q[..., s] @ k[..., s].transpose(0, 2, 1) / np.sqrt(2)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append(p / p.sum(-1, keepdims=True) @ v[..., s])
    ref = np.concatenate(heads, -1) @ w["output_weight"] + w["output_bias"]
    np.testing.assert_allclose(ctx.outputs[0], ref, rtol=1e-10, atol=1e-12)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_lstm():
    ctx, _ = _forward("lstm", [(2, 4, 3)], {"unit": 5, "return_sequences": True})
    w = ctx.weights
    h, c, outs = np.zeros((2, 5)), np.zeros((2, 5)), []
    for t in range(4):
        z = ctx.inputs[0][:, t] @ w["weight_ih"] + h @ w["weight_hh"] + w["bias_h"]
        i, f, o = _sigmoid(z[:, :5]), _sigmoid(z[:, 5:10]), _sigmoid(z[:, 15:])
        g = np.tanh(z[:, 10:15])
        c = f * c + i * g
        h = o * np.tanh(c)
        outs.append(h)
    np.testing.assert_allclose(ctx.outputs[0], np.stack(outs, 1), rtol=1e-10, atol=1e-12)


def test_embedding_concat_and_dropout():
    ctx, _ = _forward("embedding", [(2, 5)], {"in_dim": 3, "out_dim": 4})
    ids = ctx.inputs[0].astype(int)
    np.testing.assert_array_equal(ctx.outputs[0], ctx.weights["weight"][ids])
    ctx, _ = _forward("concat", [(2, 3, 4), (2, 3, 1)], {"axis": 2})
    np.testing.assert_array_equal(ctx.outputs[0], np.concatenate(ctx.inputs, 2))
    ctx, _ = _forward("dropout", [(200, 50)], {"dropout_rate": 0.3})
    mask = ctx.helpers["mask"]
    assert set(np.unique(mask)) <= {0.0, 1 / 0.7}
    assert abs((mask == 0).mean() - 0.3) < 0.02
    np.testing.assert_array_equal(ctx.outputs[0], ctx.inputs[0] * mask)
    ctx.training = False
    KERNELS["dropout"].forward(ctx)
    np.testing.assert_array_equal(ctx.outputs[0], ctx.inputs[0])
