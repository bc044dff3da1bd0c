"""Winograd F(2x2, 3x3) convolutions (runtime/kernels/winograd.py): which layers run it, its
results against im2col's and against PyTorch, its chunks and blocks, and the same bits on one
thread or two."""

import numpy as np
import pytest

from trainplan.planner.layers.conv import winograd, winograd_blocks
from trainplan.runtime.kernels import KERNELS
from trainplan.runtime.kernels.standalone import standalone_ctx

pytestmark = pytest.mark.usefixtures("one_blas_thread")

CONV = KERNELS["conv2d"]
SAME = {"kernel_size": 3, "padding": 1}


def _run(shape, props, dtype=np.float64, threads=1, lanes=2):
    ctx = standalone_ctx("conv2d", [shape], props, dtype=dtype)
    ctx.threads, ctx.lanes = threads, lanes
    CONV.forward(ctx)
    CONV.calc_gradient(ctx)
    CONV.calc_derivative(ctx)
    out = {"y": ctx.outputs[0], "dx": ctx.in_derivs[0], **ctx.weight_grads}
    return ctx, {k: v.copy() for k, v in out.items()}


def test_which_convolutions_run_winograd():
    args = {"kernel": (3, 3), "stride": (1, 1), "pad": (1, 1), "dilation": (1, 1), "groups": 1}
    assert winograd(**args, plane=(16, 16), channels=128, filters=128)
    assert winograd(**args, plane=(4, 4), channels=512, filters=256)
    assert not winograd(**args, plane=(32, 32), channels=64, filters=64)  # too few channels
    assert not winograd(**args, plane=(7, 7), channels=512, filters=512)  # odd plane
    assert not winograd(**{**args, "stride": (2, 2)}, plane=(8, 8), channels=256, filters=256)
    assert not winograd(**{**args, "groups": 2}, plane=(8, 8), channels=256, filters=256)
    ctx = standalone_ctx("conv2d", [(2, 128, 4, 4)], {"filters": 128, **SAME})
    assert {"wino_v_forward", "wino_v_calc_derivative", "wino_du_calc_gradient"} <= set(
        ctx.helpers) and "col_forward" not in ctx.helpers
    ctx = standalone_ctx("conv2d", [(2, 64, 4, 4)], {"filters": 64, **SAME})
    assert not any(name.startswith("wino_") for name in ctx.helpers)


def test_blocks_keep_each_workspace_within_the_budget():
    # resnet18_cifar's stages: one chunk per 8 / 16 / 32 samples, the last stage's 512
    # filters in blocks of 128 (its transformed filters would be 16 MiB at once)
    assert winograd_blocks(32, 128, 128, (16, 16)) == (8, 128)
    assert winograd_blocks(32, 256, 256, (8, 8)) == (16, 256)
    assert winograd_blocks(32, 512, 512, (4, 4)) == (32, 128)


@pytest.mark.parametrize("shape,filters,bias", [((3, 128, 4, 6), 128, True),
                                                ((2, 256, 4, 4), 128, False)])
def test_same_results_as_im2col_and_pytorch(shape, filters, bias, monkeypatch):
    torch = pytest.importorskip("torch")
    props = {"filters": filters, "bias": bias, **SAME}
    ctx, wino = _run(shape, props)
    assert "wino_v_forward" in ctx.helpers
    monkeypatch.setattr("trainplan.planner.layers.conv.WINOGRAD_MIN_CHANNELS", 1 << 30)
    ctx2, direct = _run(shape, props)
    assert "col_forward" in ctx2.helpers
    for key in direct:
        np.testing.assert_allclose(wino[key], direct[key], rtol=1e-11, atol=1e-11)
    x = torch.tensor(ctx.inputs[0], requires_grad=True)
    w = torch.tensor(ctx.weights["filter"], requires_grad=True)
    b = torch.tensor(ctx.weights["bias"], requires_grad=True) if bias else None
    y = torch.nn.functional.conv2d(x, w, b, padding=1)
    y.backward(torch.tensor(ctx.out_grads[0]))
    np.testing.assert_allclose(wino["y"], y.detach().numpy(), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(wino["dx"], x.grad.numpy(), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(wino["filter"], w.grad.numpy(), rtol=1e-11, atol=1e-11)


def test_same_bits_on_one_thread_or_two_in_chunks_and_blocks(monkeypatch):
    monkeypatch.setattr("trainplan.planner.layers.conv.WINOGRAD_BLOCK_BYTES", 64 << 10)
    shape, props = (5, 128, 4, 4), {"filters": 150, **SAME}
    assert winograd_blocks(5, 128, 150, (4, 4)) == (2, 8)  # 3 chunks, 19 blocks, the last 6
    _, one = _run(shape, props, np.float32, threads=1)
    _, two = _run(shape, props, np.float32, threads=2)
    for key in one:
        assert np.array_equal(one[key], two[key]), key
    monkeypatch.setattr("trainplan.planner.layers.conv.WINOGRAD_BLOCK_BYTES", 4 << 20)
    _, whole = _run(shape, props, np.float32)
    for key in one:  # other cuts, other rounding: float32 noise only
        np.testing.assert_allclose(one[key], whole[key], rtol=1e-4, atol=1e-4)
