"""Every backward kernel against central finite differences, in float64.

For a layer with outputs y_k and random output gradients G_k the checked scalar is
L = Σ_k Σ G_k · y_k (a loss layer: the loss its forward returns), so calc_gradient must give
dL/dW and calc_derivative dL/dx. Up to ``SAMPLES`` elements of every input and trainable weight
are perturbed by ±H. Tolerance: |numeric − analytic| <= ATOL + RTOL · |analytic|.
"""

import numpy as np
import pytest

from trainplan.planner.layers import LAYERS
from trainplan.runtime.kernels import KERNELS
from trainplan.runtime.kernels.standalone import standalone_ctx

pytestmark = pytest.mark.usefixtures("one_blas_thread")

H, ATOL, RTOL, SAMPLES = 1e-6, 1e-7, 1e-5, 12

CONV = "conv2d"
# (id, layer type, input shapes, props)
CASES = [
    ("fc", "fully_connected", [(3, 5)], {"unit": 4}),
    ("fc_3d_nobias", "fully_connected", [(2, 3, 5)], {"unit": 4, "bias": False}),
    ("embedding", "embedding", [(2, 5)], {"in_dim": 3, "out_dim": 4}),
    ("conv3x3", CONV, [(2, 3, 5, 5)], {"filters": 4, "kernel_size": 3, "padding": 1}),
    ("conv3x3_s2_nobias", CONV, [(2, 3, 6, 5)],
     {"filters": 4, "kernel_size": 3, "stride": 2, "padding": 1, "bias": False}),
    ("conv5x5_valid", CONV, [(2, 2, 7, 7)], {"filters": 3, "kernel_size": 5}),
    ("conv_rect_same", CONV, [(2, 2, 5, 6)], {"filters": 3, "kernel_size": "3,1",
                                               "padding": "same"}),
    ("conv1x1", CONV, [(3, 4, 3, 3)], {"filters": 5, "kernel_size": 1}),
    ("conv_one_channel", CONV, [(2, 1, 6, 6)], {"filters": 2, "kernel_size": 3}),
    # "same", no more filters than channels: calc_derivative convolves dY with flipped filters
    ("conv_same_flipped", CONV, [(4, 4, 4, 4)], {"filters": 3, "kernel_size": 3, "padding": 1}),
    # filters larger than a lane's columns: calc_gradient in lanes of channels
    ("conv_large_filter", CONV, [(2, 4, 2, 2)], {"filters": 16, "kernel_size": 3, "padding": 1}),
    ("conv_one_channel_same", CONV, [(2, 1, 5, 5)],
     {"filters": 2, "kernel_size": 3, "padding": 1, "bias": False}),
    ("conv1x1_s2", CONV, [(2, 4, 5, 5)], {"filters": 3, "kernel_size": 1, "stride": 2}),
    ("conv_depthwise", CONV, [(2, 4, 5, 5)],
     {"filters": 4, "kernel_size": 3, "padding": 1, "groups": 4}),
    ("conv_grouped", CONV, [(2, 4, 5, 5)],
     {"filters": 6, "kernel_size": 3, "padding": 1, "groups": 2, "stride": 2}),
    ("conv_dilated", CONV, [(2, 3, 7, 7)],
     {"filters": 2, "kernel_size": 3, "padding": 2, "dilation": 2}),
    ("pool_max", "pooling2d", [(2, 3, 4, 4)], {"pooling": "max", "pool_size": 2, "stride": 2}),
    ("pool_max_overlap_pad", "pooling2d", [(2, 2, 5, 5)],
     {"pooling": "max", "pool_size": 3, "stride": 2, "padding": 1}),
    ("pool_average", "pooling2d", [(2, 2, 4, 4)], {"pooling": "average", "pool_size": 2}),
    ("pool_average_pad", "pooling2d", [(2, 2, 5, 5)],
     {"pooling": "average", "pool_size": 3, "stride": 2, "padding": 1}),
    ("pool_global_max", "pooling2d", [(2, 3, 3, 4)], {"pooling": "global_max"}),
    ("pool_global_average", "pooling2d", [(2, 3, 3, 4)], {"pooling": "global_average"}),
    ("bn_4d", "batch_normalization", [(3, 2, 3, 3)], {}),
    ("bn_2d", "batch_normalization", [(5, 3)], {}),
    ("bn_3d", "batch_normalization", [(2, 3, 4)], {}),
    ("ln", "layer_normalization", [(2, 3, 5)], {}),
    *[(f"act_{k}", "activation", [(3, 7)], {"activation": k})
      for k in ("relu", "relu6", "sigmoid", "tanh", "softmax", "gelu", "gelu_erf", "none")],
    ("dropout", "dropout", [(4, 6)], {"dropout_rate": 0.3}),
    ("addition", "addition", [(2, 3, 4)] * 3, {}),
    ("concat_axis1", "concat", [(2, 3, 4), (2, 2, 4)], {"axis": 1}),
    ("concat_axis2", "concat", [(2, 3, 4), (2, 3, 1)], {"axis": 2}),
    ("reshape", "reshape", [(2, 3, 4)], {"target_shape": (4, 3)}),
    ("flatten", "flatten", [(2, 3, 2, 2)], {}),
    ("identity", "identity", [(2, 5)], {}),
    ("multiout", "multiout", [(2, 5)], {"outputs": 3}),
    ("mha_self", "multi_head_attention", [(2, 3, 4)], {"num_heads": 2}),
    ("mha_memory", "multi_head_attention", [(2, 3, 4), (2, 5, 6)], {"num_heads": 2}),
    ("mha_qkv", "multi_head_attention", [(2, 3, 4), (2, 5, 6), (2, 5, 3)],
     {"num_heads": 2, "projected_dim": 6}),
    ("lstm_seq", "lstm", [(2, 4, 3)], {"unit": 5, "return_sequences": True}),
    ("lstm_last", "lstm", [(3, 4, 3)], {"unit": 2}),
    ("bn_4d_one_channel", "batch_normalization", [(2, 1, 3, 4)], {}),
    ("bn_axis", "batch_normalization", [(2, 3, 4)], {"axis": 1}),
    ("embedding_4d", "embedding", [(2, 1, 1, 3)], {"in_dim": 4, "out_dim": 2}),
    ("concat_nntrainer_width", "concat", [(2, 3, 1, 2), (2, 3, 1, 3)], {}),
    ("concat_nntrainer_channel", "concat", [(2, 1, 2, 2), (2, 1, 2, 2)], {}),
    ("split_width", "split", [(2, 1, 2, 4)], {"axis": 3, "split_number": 2}),
    ("split_ones", "split", [(3, 3)], {"axis": 1}),
    ("lstm_nntrainer_4d", "lstm", [(2, 1, 4, 3)],
     {"unit": 3, "return_sequences": True, "integrate_bias": False}),
    ("lstm_4d_last_nobias", "lstm", [(2, 1, 3, 2)], {"unit": 2, "bias": False}),
    ("cross_softmax", "cross_softmax", [(4, 5)], {}),
    ("cross_sigmoid", "cross_sigmoid", [(3, 4)], {}),
    ("mse", "mse", [(3, 4)], {}),
]
# conv with forced chunking: (id, input shapes, props, columns per chunk)
CHUNKED = [
    ("per_sample", [(3, 2, 4, 4)], {"filters": 3, "kernel_size": 3, "padding": 1}, 1),
    ("uneven", [(5, 2, 4, 4)], {"filters": 3, "kernel_size": 3, "padding": 1}, 32),
    ("pointwise_per_sample", [(3, 4, 3, 3)], {"filters": 2, "kernel_size": 1}, 1),
    ("pointwise_chunks", [(5, 4, 3, 3)], {"filters": 2, "kernel_size": 1}, 18),
]


def _prepare(ctx, layer_type: str, props: dict) -> None:
    """Inputs away from kinks: relu6 needs values past 6."""
    if props.get("activation") == "relu6":
        ctx.inputs[0] *= 5.0


def _snapshot(ctx) -> dict:
    return {"inputs": [x.copy() for x in ctx.inputs],
            "weights": {k: w.copy() for k, w in ctx.weights.items()},
            "grads": [g.copy() if g is not None else None for g in ctx.out_grads]}


def _restore(ctx, snap) -> None:
    for x, saved in zip(ctx.inputs, snap["inputs"]):
        x[...] = saved
    for k, w in ctx.weights.items():
        w[...] = snap["weights"][k]
    for g, saved in zip(ctx.out_grads, snap["grads"]):
        if g is not None:
            g[...] = saved


def _objective(ctx, layer_type: str, snap) -> float:
    ctx.rng_key = (99,)  # the same dropout mask at every evaluation
    loss = KERNELS[layer_type].forward(ctx)
    if LAYERS[layer_type].is_loss:
        return loss
    return sum(float(np.sum(g * y)) for g, y in zip(snap["grads"], ctx.outputs))


def _analytic(ctx, layer_type: str, snap) -> None:
    _restore(ctx, snap)
    _objective(ctx, layer_type, snap)
    spec = KERNELS[layer_type]
    if ctx.weight_grads:
        spec.calc_gradient(ctx)
    if any(d is not None for d in ctx.in_derivs):
        spec.calc_derivative(ctx)


def _numeric(ctx, layer_type, snap, target: np.ndarray, index) -> float:
    values = []
    for step in (H, -H):
        _restore(ctx, snap)
        target[index] += step
        values.append(_objective(ctx, layer_type, snap))
    return (values[0] - values[1]) / (2 * H)


def _check(ctx, layer_type: str, props: dict) -> int:
    """Compare every sampled element; returns how many were checked."""
    _prepare(ctx, layer_type, props)
    snap = _snapshot(ctx)
    _analytic(ctx, layer_type, snap)
    pairs = [(f"input {j}", ctx.inputs[j], d.copy()) for j, d in enumerate(ctx.in_derivs)
             if d is not None]
    pairs += [(f"weight {k}", ctx.weights[k], g.copy()) for k, g in ctx.weight_grads.items()]
    rng = np.random.default_rng(7)
    checked = 0
    for name, target, analytic in pairs:
        assert np.all(np.isfinite(analytic)), f"{name}: unwritten or non-finite values"
        flat = rng.permutation(target.size)[:SAMPLES]
        for index in (np.unravel_index(i, target.shape) for i in flat):
            numeric = _numeric(ctx, layer_type, snap, target, index)
            assert abs(numeric - analytic[index]) <= ATOL + RTOL * abs(analytic[index]), (
                f"{name}{index}: numeric {numeric} analytic {analytic[index]}")
            checked += 1
    return checked


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_backward_matches_finite_differences(case):
    _, layer_type, shapes, props = case
    ctx = standalone_ctx(layer_type, shapes, props, dtype=np.float64)
    assert _check(ctx, layer_type, props) > 0


@pytest.mark.parametrize("case", [c for c in CASES if c[1] in (CONV, "pooling2d")]
                         + [("lenet5_conv2", CONV, [(4, 6, 14, 14)], {"filters": 16,
                                                                     "kernel_size": 5})],
                         ids=lambda c: c[0])
def test_one_lane_matches_finite_differences(case):
    """An op too small for threads runs in one lane (the engine's choice): lane 0 then takes
    every sample, chunk after chunk, in the workspaces declared for its share."""
    _, layer_type, shapes, props = case
    ctx = standalone_ctx(layer_type, shapes, props, dtype=np.float64)
    ctx.lanes = 1
    assert _check(ctx, layer_type, props) > 0


@pytest.mark.parametrize("case", CHUNKED, ids=[c[0] for c in CHUNKED])
def test_conv_chunks_match_finite_differences(case, monkeypatch):
    _, shapes, props, columns = case
    monkeypatch.setattr("trainplan.planner.layers.conv.COL_MIN_COLUMNS", columns)
    monkeypatch.setattr("trainplan.planner.layers.conv.COL_BUDGET_BYTES", 0)
    ctx = standalone_ctx(CONV, shapes, props, dtype=np.float64)
    assert _check(ctx, CONV, props) > 0


# Winograd F(2x2, 3x3) with its channel threshold lowered: (id, input, props, block bytes)
# — one chunk and block; chunks of samples and blocks of outputs both uneven (calc_gradient
# adds chunks after the first through its partial gradient)
WINOGRAD = [
    ("whole", [(2, 3, 4, 4)], {"filters": 4, "kernel_size": 3, "padding": 1}, 1 << 20),
    ("chunks_blocks", [(5, 3, 4, 6)], {"filters": 5, "kernel_size": 3, "padding": 1,
                                       "bias": False}, 16 * 4 * 6 * 3 * 2),
]


@pytest.mark.parametrize("case", WINOGRAD, ids=[c[0] for c in WINOGRAD])
@pytest.mark.parametrize("lanes", [1, 2])
def test_winograd_matches_finite_differences(case, lanes, monkeypatch):
    _, shapes, props, block_bytes = case
    monkeypatch.setattr("trainplan.planner.layers.conv.WINOGRAD_MIN_CHANNELS", 3)
    monkeypatch.setattr("trainplan.planner.layers.conv.WINOGRAD_BLOCK_BYTES", block_bytes)
    ctx = standalone_ctx(CONV, shapes, props, dtype=np.float64)
    assert "wino_v_forward" in ctx.helpers
    ctx.lanes = lanes
    assert _check(ctx, CONV, props) > 0


def test_every_layer_type_but_input_is_checked():
    assert {c[1] for c in CASES} == set(LAYERS) - {"input"}
    assert set(KERNELS) == set(LAYERS)
