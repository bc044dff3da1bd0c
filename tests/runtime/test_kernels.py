"""Kernel contract: in-place aliasing gives the same bits, nothing tensor-sized is allocated,
and results do not depend on where the arrays sit in memory."""

import tracemalloc

import numpy as np
import pytest

from tests.runtime.test_gradcheck import CASES
from trainplan.planner.layers import LAYERS
from trainplan.planner.layers.base import NONE
from trainplan.runtime.kernels import KERNELS, KernelError
from trainplan.runtime.kernels.base import same_memory, view
from trainplan.runtime.kernels.standalone import standalone_ctx

pytestmark = pytest.mark.usefixtures("one_blas_thread")

# Medium shapes, so that BLAS and SIMD loops take their full-width paths.
MEDIUM = [
    ("conv", "conv2d", [(4, 8, 12, 12)], {"filters": 16, "kernel_size": 3, "padding": 1}),
    ("conv_s2", "conv2d", [(4, 8, 12, 12)], {"filters": 16, "kernel_size": 3, "stride": 2}),
    ("fc", "fully_connected", [(64, 100)], {"unit": 70}),
    ("bn", "batch_normalization", [(4, 16, 10, 10)], {}),
    ("ln", "layer_normalization", [(4, 20, 33)], {}),
    ("mha", "multi_head_attention", [(2, 16, 32)], {"num_heads": 4}),
    ("lstm", "lstm", [(4, 6, 10)], {"unit": 12, "return_sequences": True}),
    ("pool", "pooling2d", [(4, 8, 12, 12)], {"pooling": "max", "pool_size": 3, "stride": 2}),
    *[(f"act_{k}", "activation", [(64, 101)], {"activation": k})
      for k in ("gelu", "sigmoid", "tanh", "softmax")],
    ("cross_softmax", "cross_softmax", [(64, 10)], {}),
]
INPLACE = [c for c in CASES
           if LAYERS[c[1]].realise(c[2], {"name": "x", "batch": c[2][0][0], **c[3]}, False)
           .inplace != NONE]


def _run(ctx, layer_type: str):
    spec = KERNELS[layer_type]
    loss = spec.forward(ctx)
    if ctx.weight_grads and spec.calc_gradient:
        spec.calc_gradient(ctx)
    if spec.calc_derivative and any(d is not None for d in ctx.in_derivs):
        spec.calc_derivative(ctx)
    return loss


def _results(ctx) -> dict[str, np.ndarray]:
    named = {f"out{k}": y for k, y in enumerate(ctx.outputs)}
    named.update({f"dx{k}": d for k, d in enumerate(ctx.in_derivs) if d is not None})
    named.update({f"w:{k}": w for k, w in ctx.weights.items()})
    named.update({f"dw:{k}": g for k, g in ctx.weight_grads.items()})
    named.update({f"h:{k}": h for k, h in ctx.helpers.items()})
    return {k: v.copy() for k, v in named.items()}


def _assert_same_bits(a: dict, b: dict, where: str) -> None:
    assert a.keys() == b.keys()
    for k, value in a.items():
        assert value.tobytes() == b[k].tobytes(), f"{where}: {k} differs"


@pytest.mark.parametrize("case", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_aliasing_gives_the_same_bits(case):
    _, layer_type, shapes, props = case
    separate = standalone_ctx(layer_type, shapes, props)
    aliased = standalone_ctx(layer_type, shapes, props, inplace=True)
    assert same_memory(aliased.outputs[0], aliased.inputs[0])
    _run(separate, layer_type)
    _run(aliased, layer_type)
    _assert_same_bits(_results(separate), _results(aliased), "aliased")


def test_inplace_cases_cover_every_inplace_layer_type():
    kinds = {c[1] for c in INPLACE}
    assert kinds == {"batch_normalization", "layer_normalization", "activation", "reshape",
                     "flatten", "identity", "multiout"}


def _placed(ctx, offset: int, arena: np.ndarray | None = None):
    """A copy of ``ctx`` whose arrays sit ``offset`` bytes past 64-byte boundaries of one
    buffer (``arena``, or a new one), aliases kept, as in a planned arena."""
    need = 64 + sum(a.nbytes + 128 for a in _arrays(ctx))
    arena = np.zeros(need, np.uint8) if arena is None else arena[:need]
    placed: dict[tuple[int, int], np.ndarray] = {}
    cursor = 0

    def place(a):
        nonlocal cursor
        if a is None:
            return None
        key = (a.__array_interface__["data"][0], a.nbytes)
        if key not in placed:
            start = -(-cursor // 64) * 64 + offset
            new = arena[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
            new[...] = a
            placed[key] = new
            cursor = start + a.nbytes
        return view(placed[key], a.shape)

    return type(ctx)(
        ctx.props, [place(a) for a in ctx.inputs], [place(a) for a in ctx.outputs],
        {k: place(a) for k, a in ctx.weights.items()},
        {k: place(a) for k, a in ctx.weight_grads.items()},
        [place(a) for a in ctx.out_grads], [place(a) for a in ctx.in_derivs],
        {k: place(a) for k, a in ctx.helpers.items()}, place(ctx.label), ctx.training,
        (5,))


def _arrays(ctx):
    groups = [ctx.inputs, ctx.outputs, ctx.weights.values(), ctx.weight_grads.values(),
              ctx.out_grads, ctx.in_derivs, ctx.helpers.values(), [ctx.label]]
    return [a for g in groups for a in g if a is not None]


@pytest.mark.parametrize("case", CASES + MEDIUM, ids=[c[0] for c in CASES + MEDIUM])
def test_results_do_not_depend_on_placement(case):
    _, layer_type, shapes, props = case
    base = standalone_ctx(layer_type, shapes, props, seed=3)
    runs = []
    for offset in (0, 4, 8, 12, 28, 0):
        ctx = _placed(base, offset)
        loss = _run(ctx, layer_type)
        runs.append((loss, _results(ctx)))
    for loss, results in runs[1:]:
        assert loss == runs[0][0]
        _assert_same_bits(runs[0][1], results, layer_type)


def _traced_peak(ctx, layer_type: str) -> int:
    _run(ctx, layer_type)  # warm caches (tap tables, BLAS buffers) first
    tracemalloc.start()
    try:
        _run(ctx, layer_type)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("layer_type, shapes, props", [
    ("conv2d", [(8, 8, 128, 128)], {"filters": 8, "kernel_size": 3, "padding": 1}),
    ("conv2d", [(32, 64, 32, 32)], {"filters": 256, "kernel_size": 1, "stride": 2}),
    ("fully_connected", [(8192, 256)], {"unit": 256}),
    ("batch_normalization", [(32, 64, 32, 32)], {}),
    ("layer_normalization", [(32, 256, 256)], {}),
    ("multi_head_attention", [(1024, 32, 32)], {"num_heads": 2}),
    ("pooling2d", [(32, 64, 64, 64)], {"pooling": "max", "pool_size": 2, "stride": 2}),
    ("activation", [(32, 256, 256)], {"activation": "gelu"}),
], ids=["conv3x3", "conv1x1_s2", "fc", "bn", "ln", "mha", "maxpool", "gelu"])
def test_kernels_allocate_nothing_tensor_sized(layer_type, shapes, props):
    """Temporaries are bounded slices (CHUNK elements) and per-row vectors: a constant
    2 MiB at most, whatever the tensors' size (here 4 to 32 MiB)."""
    ctx = standalone_ctx(layer_type, shapes, props)
    smallest = min(a.nbytes for a in ctx.inputs + ctx.outputs)
    assert smallest >= 4 << 20
    peak = _traced_peak(ctx, layer_type)
    assert peak < min(2 << 20, smallest // 4), f"peak {peak} bytes, tensors of {smallest}"


def test_missing_helper_is_named():
    ctx = standalone_ctx("conv2d", [(2, 3, 5, 5)], {"filters": 2, "kernel_size": 3})
    del ctx.helpers["col_forward"]
    with pytest.raises(KernelError, match="col_forward"):
        KERNELS["conv2d"].forward(ctx)


def test_frozen_attention_cannot_send_a_derivative():
    ctx = standalone_ctx("multi_head_attention", [(2, 3, 4)], {"num_heads": 2}, learns=False)
    KERNELS["multi_head_attention"].forward(ctx)
    with pytest.raises(KernelError, match="frozen"):
        KERNELS["multi_head_attention"].calc_derivative(ctx)


THREADED = CASES + MEDIUM + [
    ("conv_lanes", "conv2d", [(5, 3, 9, 9)], {"filters": 4, "kernel_size": 3, "padding": 1}),
    ("conv_one_channel", "conv2d", [(3, 1, 8, 8)], {"filters": 3, "kernel_size": 5}),
    ("conv_grouped_lanes", "conv2d", [(3, 4, 6, 6)],
     {"filters": 8, "kernel_size": 3, "padding": 1, "groups": 4}),
]


@pytest.mark.parametrize("case", THREADED, ids=[c[0] for c in THREADED])
def test_results_do_not_depend_on_the_thread_count(case):
    """Kernels cut their work into fixed lanes: two threads give one thread's bits."""
    _, layer_type, shapes, props = case
    runs = []
    for threads in (1, 2, 1):
        ctx = standalone_ctx(layer_type, shapes, props, seed=4)
        ctx.threads = threads
        runs.append((_run(ctx, layer_type), _results(ctx)))
    for loss, results in runs[1:]:
        assert loss == runs[0][0]
        _assert_same_bits(runs[0][1], results, layer_type)


def test_calc_gradient_lanes_follow_the_filter_size():
    """Samples in lanes, each its own partial sum, for a small filter; channels in lanes over
    shared chunks for a filter larger than a lane's columns."""
    small = standalone_ctx("conv2d", [(4, 3, 8, 8)], {"filters": 4, "kernel_size": 3})
    large = standalone_ctx("conv2d", [(2, 4, 2, 2)],
                           {"filters": 16, "kernel_size": 3, "padding": 1})
    assert small.helpers["filter_grad_lanes"].shape == (2, 4, 3, 3, 3)
    assert small.helpers["col_calc_gradient"].shape[0] == 2  # a workspace per lane
    assert "filter_grad_lanes" not in large.helpers
    assert large.helpers["col_calc_gradient"].ndim == 2  # one (rows, columns) workspace


def test_same_convolutions_take_their_derivative_as_a_convolution():
    """Stride 1, output planes the input's, no more filters than channels: calc_derivative
    gathers dY's columns (filters x taps rows) and a flipped copy of the filters; more filters
    than channels keep col2im."""
    same = standalone_ctx("conv2d", [(4, 4, 4, 4)], {"filters": 3, "kernel_size": 3,
                                                      "padding": 1})
    assert same.helpers["filter_flipped"].shape == (4, 3, 3, 3)
    assert same.helpers["col_calc_derivative"].shape[1] == 3 * 9
    wider = standalone_ctx("conv2d", [(4, 3, 4, 4)], {"filters": 4, "kernel_size": 3,
                                                       "padding": 1})
    assert "filter_flipped" not in wider.helpers
    assert wider.helpers["col_calc_derivative"].shape[1] == 3 * 9


def test_large_convolutions_run_two_lanes_of_smaller_chunks():
    """resnet18_cifar's third stage (2,304 x 64 columns a sample, batch 32): two lanes of 8
    samples fit LANE_WORKSPACE_MAX where 16 did not (it ran on one thread); a sample too large
    for two workspaces (224 x 224, 64 channels) keeps one lane."""
    from trainplan.planner.layers.conv import LANE_WORKSPACE_MAX, conv_chunk, step_lanes

    assert step_lanes(32, 2304, 64) == 2 and conv_chunk(32, 2304, 64, 2) == 8
    assert 2 * 4 * 2304 * 8 * 64 <= LANE_WORKSPACE_MAX
    assert step_lanes(32, 576, 224 * 224) == 1


def test_column_workspace_rows_are_padded_off_a_power_of_two():
    """A chunk of 1,024 columns (4 KiB rows) makes OpenBLAS's panels collide in the cache: every
    column and transposed workspace row is COL_PAD elements longer, and the kernels' results
    do not depend on it (the finite-difference and thread tests above run on padded rows)."""
    from trainplan.planner.layers.conv import COL_PAD

    ctx = standalone_ctx("conv2d", [(4, 8, 16, 16)], {"filters": 8, "kernel_size": 3,
                                                      "padding": 1})
    for name in ("col_forward", "col_calc_gradient", "col_calc_derivative"):
        width = ctx.helpers[name].shape[-1]
        assert (width - COL_PAD) % 256 == 0 and width % 256 == COL_PAD, (name, width)
