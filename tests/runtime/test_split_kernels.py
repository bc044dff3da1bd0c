"""Kernels of split steps (runtime/kernels/split.py), in float64.

Oracles: the unsplit layer kernels (themselves checked against finite differences in
test_gradcheck.py) run on the whole batch must give what the phase kernels give chunk by
chunk; and central finite differences of the chunked forward pass check the chunked backward
directly: L = Σ G · y over every chunk, dL/dx, dL/dγ, dL/dβ (batch norm) and dL/dW, dL/db
(unit blocks).
"""

import numpy as np
import pytest

from trainplan.planner.graph import Chunk
from trainplan.planner.split_build import chunk_bounds
from trainplan.planner.split_steps import PHASES
from trainplan.runtime.kernels import KERNELS, PHASE_KERNELS
from trainplan.runtime.kernels.base import LayerCtx

H, ATOL, RTOL = 1e-6, 1e-7, 1e-5


def test_every_phase_has_a_kernel():
    assert set(PHASES) == set(PHASE_KERNELS)


# --- batch normalisation over chunks -----------------------------------------------------

def _bn_data(shape, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1] if len(shape) == 4 else shape[-1]
    return {"x": rng.standard_normal(shape) * 3 + 1, "dy": rng.standard_normal(shape),
            "gamma": rng.standard_normal(c), "beta": rng.standard_normal(c),
            "moving_mean": rng.standard_normal(c), "moving_variance": rng.uniform(0.5, 2, c)}


def _weights(d):
    return {k: d[k].copy() for k in ("gamma", "beta", "moving_mean", "moving_variance")}


def _unsplit_bn(d, training=True):
    spec = KERNELS["batch_normalization"]
    c = d["gamma"].size
    ctx = LayerCtx({}, [d["x"].copy()], [np.full_like(d["x"], np.nan)], _weights(d),
                   {"gamma": np.empty(c), "beta": np.empty(c)}, [d["dy"].copy()],
                   [np.full_like(d["x"], np.nan)],
                   {"normalized": np.empty_like(d["x"]), "invstd": np.empty(c)},
                   training=training)
    spec.forward(ctx)
    if training:
        spec.calc_gradient(ctx)
        spec.calc_derivative(ctx)
    return {"y": ctx.outputs[0], "dx": ctx.in_derivs[0], **ctx.weights,
            "dgamma": ctx.weight_grads["gamma"], "dbeta": ctx.weight_grads["beta"]}


def _split_bn(d, chunks, training=True, backward=True):
    """The four phases, chunk by chunk, in the order a split graph runs them."""
    n, c = len(d["x"]), d["gamma"].size
    bounds = chunk_bounds(n, chunks)
    w = _weights(d)
    grads = {"gamma": np.full(c, np.nan), "beta": np.full(c, np.nan)}
    shared = {"statistics": np.full((3, c), np.nan), "sums": np.full((2, c), np.nan),
              "invstd": np.full(c, np.nan)}
    xs = [d["x"][a:b].copy() for a, b in bounds]
    dys = [d["dy"][a:b].copy() for a, b in bounds]
    normalized = [np.full_like(x, np.nan) for x in xs]
    ys = [np.full_like(x, np.nan) for x in xs]
    dxs = [np.full_like(x, np.nan) for x in xs]

    def ctx(k, **kw):
        return LayerCtx({"chunk": Chunk(k, chunks, *bounds[k], n)}, weights=w,
                        weight_grads=grads, helpers={**shared, "normalized": normalized[k]},
                        training=training, **kw)

    for phase, kw in (("bn_statistics", lambda k: dict(inputs=[xs[k]], outputs=[None])),
                      ("bn_normalize", lambda k: dict(inputs=[xs[k]], outputs=[ys[k]]))):
        for k in range(chunks):
            PHASE_KERNELS[phase](ctx(k, **kw(k)))
    if backward:
        for k in range(chunks):
            PHASE_KERNELS["bn_reduce"](ctx(k, inputs=[], outputs=[], out_grads=[dys[k]]))
        for k in range(chunks):
            PHASE_KERNELS["bn_derivative"](ctx(k, inputs=[], outputs=[], out_grads=[dys[k]],
                                               in_derivs=[dxs[k]]))
    return {"y": np.concatenate(ys), "dx": np.concatenate(dxs), **w,
            "dgamma": grads["gamma"], "dbeta": grads["beta"]}


@pytest.mark.parametrize("shape,chunks", [((5, 3, 4, 4), 2), ((5, 3, 4, 4), 5),
                                          ((7, 4), 3), ((4, 3, 5), 4)])
def test_batch_norm_over_chunks_matches_the_whole_batch(shape, chunks):
    d = _bn_data(shape)
    whole, split = _unsplit_bn(d), _split_bn(d, chunks)
    for key, value in whole.items():
        assert np.allclose(split[key], value, rtol=1e-12, atol=1e-12), key


def test_batch_norm_over_chunks_in_inference_uses_the_running_statistics():
    d = _bn_data((4, 3, 2, 2), seed=1)
    whole = _unsplit_bn(d, training=False)
    split = _split_bn(d, 2, training=False, backward=False)
    assert np.allclose(split["y"], whole["y"], rtol=1e-12)
    assert np.array_equal(split["moving_mean"], d["moving_mean"])  # not updated


@pytest.mark.parametrize("shape,chunks", [((5, 2, 3, 3), 3), ((6, 3), 2)])
def test_batch_norm_over_chunks_matches_finite_differences(shape, chunks):
    d = _bn_data(shape, seed=2)
    g = np.random.default_rng(5).standard_normal(shape)
    d["dy"] = g  # L = Σ G · y, so dL/dy = G

    def loss(values):
        return float(np.sum(g * _split_bn({**d, **values}, chunks, backward=False)["y"]))

    analytic = _split_bn(d, chunks)
    rng = np.random.default_rng(3)
    for key, grad in (("x", "dx"), ("gamma", "dgamma"), ("beta", "dbeta")):
        target = d[key]
        for i in rng.permutation(target.size)[:10]:
            index = np.unravel_index(i, target.shape)
            values = []
            for step in (H, -H):
                moved = target.copy()
                moved[index] += step
                values.append(loss({key: moved}))
            numeric = (values[0] - values[1]) / (2 * H)
            exact = analytic[grad][index]
            assert abs(numeric - exact) <= ATOL + RTOL * abs(exact), (key, index)


# --- split and merge copies --------------------------------------------------------------

def test_split_and_merge_copy_rows_both_ways():
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    bounds = chunk_bounds(5, 2)
    merged, dx = np.full_like(x, np.nan), np.full_like(x, np.nan)
    for k, (a, b) in enumerate(bounds):
        props = {"chunk": Chunk(k, 2, a, b, 5)}
        piece, piece_grad = np.full((b - a, 3), np.nan), np.full((b - a, 3), np.nan)
        PHASE_KERNELS["split_forward"](LayerCtx(props, [x], [piece]))
        PHASE_KERNELS["merge_forward"](LayerCtx(props, [piece], [merged]))
        PHASE_KERNELS["merge_derivative"](LayerCtx(props, [], [], out_grads=[dy],
                                                   in_derivs=[piece_grad]))
        PHASE_KERNELS["split_derivative"](LayerCtx(props, [], [], out_grads=[piece_grad],
                                                   in_derivs=[dx]))
        assert np.array_equal(piece, x[a:b])
    assert np.array_equal(merged, x) and np.array_equal(dx, dy)


# --- a fully-connected layer over blocks of units -----------------------------------------

def _fc_data(rows=(3, 2), n_in=5, units=7, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((*rows, n_in)), "w": rng.standard_normal((n_in, units)),
            "b": rng.standard_normal(units), "dy": rng.standard_normal((*rows, units))}


def _fc_blocks(d, blocks, backward=True):
    units = d["w"].shape[1]
    y, dx = np.full_like(d["dy"], np.nan), np.full_like(d["x"], np.nan)
    dw, db = np.full_like(d["w"], np.nan), np.full_like(d["b"], np.nan)
    for k, (a, b) in enumerate(chunk_bounds(units, blocks)):
        ctx = LayerCtx({"chunk": Chunk(k, blocks, a, b, units, -1)}, [d["x"]], [y],
                       {"weight": d["w"][:, a:b].copy(), "bias": d["b"][a:b].copy()},
                       {"weight": dw[:, a:b], "bias": db[a:b]}, [d["dy"]], [dx])
        PHASE_KERNELS["fc_units_forward"](ctx)
        if backward:
            ctx.weight_grads = {k: np.empty_like(v) for k, v in ctx.weight_grads.items()}
            PHASE_KERNELS["fc_units_gradient"](ctx)
            dw[:, a:b], db[a:b] = ctx.weight_grads["weight"], ctx.weight_grads["bias"]
            PHASE_KERNELS["fc_units_derivative"](ctx)
    return {"y": y, "dx": dx, "dw": dw, "db": db}


def test_fc_blocks_match_the_whole_layer():
    d = _fc_data()
    spec = KERNELS["fully_connected"]
    ctx = LayerCtx({}, [d["x"]], [np.empty_like(d["dy"])], {"weight": d["w"], "bias": d["b"]},
                   {"weight": np.empty_like(d["w"]), "bias": np.empty_like(d["b"])},
                   [d["dy"]], [np.empty_like(d["x"])])
    spec.forward(ctx)
    spec.calc_gradient(ctx)
    spec.calc_derivative(ctx)
    split = _fc_blocks(d, 3)
    assert np.allclose(split["y"], ctx.outputs[0], rtol=1e-12)
    assert np.allclose(split["dx"], ctx.in_derivs[0], rtol=1e-12)
    assert np.allclose(split["dw"], ctx.weight_grads["weight"], rtol=1e-12)
    assert np.allclose(split["db"], ctx.weight_grads["bias"], rtol=1e-12)


def test_fc_blocks_match_finite_differences():
    d = _fc_data(seed=4)
    analytic = _fc_blocks(d, 3)
    rng = np.random.default_rng(1)
    for key, grad in (("x", "dx"), ("w", "dw"), ("b", "db")):
        for i in rng.permutation(d[key].size)[:8]:
            index = np.unravel_index(i, d[key].shape)
            values = []
            for step in (H, -H):
                moved = d[key].copy()
                moved[index] += step
                values.append(float(np.sum(d["dy"] * _fc_blocks({**d, key: moved}, 3,
                                                                 backward=False)["y"])))
            numeric = (values[0] - values[1]) / (2 * H)
            assert abs(numeric - analytic[grad][index]) <= ATOL + RTOL * abs(
                analytic[grad][index]), (key, index)
