"""Convolution (grouped, dilated, so depthwise too) and pooling."""

from trainplan.planner.errors import InvalidShape
from trainplan.planner.layers.base import (
    AG,
    CD,
    CG,
    F,
    Helper,
    LayerSpec,
    Realised,
    Weight,
    numel,
    pair,
    positive,
    register,
)

# im2col runs on chunks of samples: enough columns per matrix product for BLAS to run near its
# peak and for the filter gradient to be summed over few chunks, within a bounded workspace.
COL_MIN_COLUMNS = 1024
COL_BUDGET_BYTES = 1 << 20
# Column workspace worth holding once per lane: beyond it (one sample of a 224x224, 64-channel
# 3x3 convolution is 116 MB) a step runs in one lane rather than double its largest tensor
LANE_WORKSPACE_MAX = 16 << 20
# Elements added to every row of a column workspace: rows whose stride is a power of two bytes
# (1024 columns) make OpenBLAS's packed panels collide in the cache; resnet18_cifar's first
# stage, 64 x 576 x 1024, ran at 78-83 GFLOP/s against 95-100 with 16 more (64 bytes: rows
# stay 64-byte aligned).
COL_PAD = 16
# The runtime cuts forward and calc_derivative into this many lanes of samples, each with its
# own chunk workspace (the column budget shared among them), so that as many threads can run
# them; the count is fixed, so the results are the same bits on any number of threads.
LANES = 2


# Winograd F(2x2, 3x3) (runtime/kernels/winograd.py) for 3x3 "same" stride-1 convolutions with
# at least this many channels and filters: 16 products of 4 outputs each replace 36, so its
# products do 4/9 of im2col's flops; its transforms cost passes over the input and output in
# proportion to channels + filters, against products in proportion to channels x filters:
# 64 channels ran no faster (resnet18_cifar's first stage), 128-512 a third faster.
WINOGRAD_MIN_CHANNELS = 128
# Each of its workspaces (transformed inputs, filters, products) holds at most this much:
# chunks of samples and blocks of output channels are sized to it.
WINOGRAD_BLOCK_BYTES = 4 << 20


def winograd(kernel, stride, pad, dilation, groups: int, plane, channels: int,
             filters: int) -> bool:
    """Whether the runtime runs the convolution as Winograd F(2x2, 3x3): 3x3, stride 1,
    padding 1, no dilation, one group, even planes, ``WINOGRAD_MIN_CHANNELS`` or more channels
    and filters."""
    return (tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(pad) == (1, 1)
            and tuple(dilation) == (1, 1) and groups == 1
            and plane[0] % 2 == 0 and plane[1] % 2 == 0
            and min(channels, filters) >= WINOGRAD_MIN_CHANNELS)


def _evened(total: int, most: int) -> int:
    """Parts of at most ``most`` covering ``total``, as even as possible: the part size."""
    most = max(1, min(total, most))
    return -(-total // -(-total // most))


def winograd_blocks(batch: int, source: int, outputs: int, plane) -> tuple[int, int]:
    """(samples per chunk, output channels per block) of a Winograd step whose input has
    ``source`` channels: a chunk's transformed input, a block's transformed filters and a
    chunk-block's products each within WINOGRAD_BLOCK_BYTES."""
    tiles = plane[0] // 2 * (plane[1] // 2)
    n = _evened(batch, WINOGRAD_BLOCK_BYTES // (4 * 16 * tiles * source))
    block = _evened(outputs, min(WINOGRAD_BLOCK_BYTES // (4 * 16 * source),
                                 WINOGRAD_BLOCK_BYTES // (4 * 16 * n * tiles)))
    return n, block


def _winograd_helpers(batch: int, channels: int, filters: int, plane) -> list[Helper]:
    """Workspaces of the three Winograd steps (runtime/kernels/winograd.py), each living in
    its own step only. Forward and calc_derivative transform a chunk of their input (the
    layer's input; the output gradient) channel-last — padded (``pad``), its tile rows
    (``rows``), its 16 tile components (``v``) — then per block of outputs the filters
    (``u``), the 16 products (``m``), the output transform's row pass (``s``) and the block's
    output channel-last (``y``). calc_gradient transforms the input likewise and per block of
    filters the output gradient (``dy``, row pass ``r``, components ``dm``), the products'
    sum over the chunk's tiles (``du``) and, past the first chunk, its share of the filter
    gradient (``part``). A block's outputs are cut into LANES shares, each lane's
    per-block workspaces a part of their own (a leading axis of LANES)."""
    h, w = plane
    th, tw = h // 2, w // 2
    helpers = []
    for step, source, outputs in ((F, channels, filters), (CD, filters, channels),
                                  (CG, channels, filters)):
        n, block = winograd_blocks(batch, source, outputs, plane)
        lane = -(-block // LANES)  # a lane's share of a block's outputs
        shapes = {"pad": (n, h + 2, w + 2, source), "rows": (4, n, th, w + 2, source),
                  "v": (16, n, th, tw, source)}
        if step == CG:
            shapes |= {"dy": (LANES, n, h, w, lane), "r": (LANES, 2, n, th, w, lane),
                       "dm": (LANES, 16, n * th * tw, lane), "du": (16, block, source)}
            if n < batch:
                shapes["part"] = (block * source, 9)
        else:
            shapes |= {"u": (block, 16, source) if step == F else (LANES, source, 16, lane),
                       "m": (LANES, 16, n * th * tw, lane),
                       "s": (LANES, 2, 4, n, th, tw, lane), "y": (LANES, n, h, w, lane)}
        helpers += [Helper(f"wino_{name}_{step}", shape, (step,))
                    for name, shape in shapes.items()]
    return helpers


def conv_chunk(batch: int, rows: int, cols: int, lanes: int = 1) -> int:
    """Samples per im2col chunk for a (rows, cols) per-sample column matrix, in one of
    ``lanes`` lanes of samples sharing the column budget."""
    lane_batch = -(-batch // lanes)
    by_cols = -(-COL_MIN_COLUMNS // cols)
    by_bytes = COL_BUDGET_BYTES // lanes // (4 * rows * cols)
    most = max(1, min(lane_batch, max(by_cols, by_bytes)))
    if lanes > 1:  # smaller chunks rather than one lane: every lane's within LANE_WORKSPACE_MAX
        most = max(1, min(most, LANE_WORKSPACE_MAX // (lanes * 4 * rows * cols)))
    return _evened(lane_batch, most)  # as many chunks, evened out


# Output rows this short cost more as separate col2im rows than as extra matrix columns
# (lenet5's 10-wide conv2: calc_derivative 1.2 -> 0.87 ms; its 28-wide conv1 was slower).
WIDE_MAX_ROW = 16


def wide_grid(stride, pad, out_width: int, in_width: int) -> bool:
    """Whether the runtime's calc_derivative of an unpadded stride-1 convolution with short
    output rows works on rows as wide as the input rows (zero gradients past the real
    outputs): every tap is then one shift of the whole flattened plane, so col2im adds one run
    per plane and tap instead of one per output row (runtime/kernels/windows.py); its
    workspaces are that much wider."""
    return (tuple(stride) == (1, 1) and tuple(pad) == (0, 0)
            and out_width < in_width and out_width <= WIDE_MAX_ROW)


def padding(value, kernel, dilation, name):
    """Symmetric padding per axis from an int, a pair, 'same' or 'valid'."""
    if isinstance(value, str) and value.lower() in ("same", "valid"):
        if value.lower() == "valid":
            return 0, 0
        return tuple((dilation[i] * (kernel[i] - 1)) // 2 for i in range(2))
    if isinstance(value, str) and value.count(",") == 3:
        top, bottom, left, right = (int(v) for v in value.split(","))
        if top != bottom or left != right:
            raise InvalidShape(f"{name}: asymmetric padding {value!r} is not supported")
        return top, left
    return pair(value if value is not None else 0)


def out_size(size, kernel, stride, pad, dilation, name):
    n = (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    if n <= 0:
        raise InvalidShape(f"{name}: input of size {size} is too small for kernel {kernel}, "
                           f"stride {stride}, padding {pad}: the output would be empty; "
                           "use a larger input shape or a smaller kernel")
    return n


def realise_conv2d(inputs, props, compat):
    (x,) = inputs
    name = props["name"]
    if len(x) != 4:
        raise InvalidShape(f"{name}: conv2d needs a (batch, channels, height, width) input, "
                           f"got {x}")
    b, c, h, w = x
    filters = positive("filters", props.get("filters"), name)
    k = pair(props.get("kernel_size", 3))
    s = pair(props.get("stride", 1))
    d = pair(props.get("dilation", 1))
    p = padding(props.get("padding", 0), k, d, name)
    groups = positive("groups", props.get("groups", 1), name)
    if c % groups or filters % groups:
        raise InvalidShape(f"{name}: channels {c} and filters {filters} must be multiples of "
                           f"groups {groups}")
    oh, ow = (out_size((h, w)[i], k[i], s[i], p[i], d[i], name) for i in range(2))
    weights = {"filter": Weight((filters, c // groups, k[0], k[1]))}
    if props.get("bias", True):
        weights["bias"] = Weight((filters,), read_at_derivative=False)
    mac = b * filters * oh * ow * (c // groups) * k[0] * k[1]
    if not compat and winograd(k, s, p, d, groups, (h, w), c, filters):
        # 16 products per 2x2 tile of outputs, (channels x filters) each; transforms of the
        # input and output tiles and of the filters in element-wise passes
        work = 2 * 16 * (b * h * w // 4) * c * filters + 6 * b * h * w * (c + filters)
        return Realised(outputs=[(b, filters, oh, ow)], weights=weights,
                        helpers=_winograd_helpers(b, c, filters, (h, w)),
                        flops={F: work, CG: work, CD: work}, input_steps=frozenset({F, CG}))
    pointwise = (k, s, p) == ((1, 1), (1, 1), (0, 0))
    flipped = derivative_as_convolution(s, (oh, ow), (h, w), k, b, c, filters)
    wide = not flipped and wide_grid(s, p, ow, w)
    rows, cols = c * k[0] * k[1], oh * ow
    helpers = [] if compat else _conv_helpers(b, rows, cols, weights["filter"],
                                              pointwise=pointwise, wide_cols=oh * w if wide
                                              else None, flipped=flipped)
    # im2col (forward, calc_gradient) and col2im (calc_derivative) copy one output row of
    # every (sample, channel, tap) — one whole plane when a tap is a flat shift (stride 1,
    # padded, output rows as wide as input rows: runtime/kernels/windows.py), none when the
    # input itself is the column matrix
    shifted = s == (1, 1) and ow == w and p != (0, 0)
    # a shift plan also zeroes the out-of-plane outputs: row bands and column strips, each
    # row of them a separate short copy
    bands, strips = _out_of_plane_rows(k, d, p, oh) if shifted else (0, 0)
    copied = b * c * (k[0] * k[1] + bands + strips if shifted else k[0] * k[1] * oh)
    cg_lanes = LANES if gradient_in_sample_lanes(b, rows, cols, weights["filter"].shape) else 1
    lanes_at = {F: step_lanes(b, rows, cols), CG: cg_lanes, CD: step_lanes(b, rows, cols)}
    gathers = {step: 0 if pointwise and conv_chunk(b, rows, cols, lanes) == 1 else copied
               for step, lanes in lanes_at.items()}
    if shifted and not flipped:  # col2im zeroes only the strips
        gathers[CD] = b * c * (k[0] * k[1] + strips)
    if wide:
        gathers[CD] = b * c * k[0] * k[1]
    if flipped:  # im2col of the output gradient, by flat shifts
        gathers[CD] = b * filters * (k[0] * k[1] + bands + strips)
    return Realised(
        outputs=[(b, filters, oh, ow)], weights=weights, helpers=helpers,
        flops={F: 2 * mac, CG: 2 * mac, CD: 2 * mac}, input_steps=frozenset({F, CG}),
        gather_rows=gathers,
    )


def _out_of_plane_rows(kernel, dilation, pad, out_rows: int) -> tuple[int, int]:
    """Per (sample, channel), the rows a shift plan zeroes (runtime/kernels/windows.py
    ``ShiftPlan``): for each kernel row, its out-of-plane output rows across every kernel
    column (bands); for each kernel column reaching out of the plane, every kernel row's
    output rows (strips, a few elements each)."""
    bands = kernel[1] * sum(min(out_rows, abs(i * dilation[0] - pad[0]))
                            for i in range(kernel[0]))
    strips = kernel[0] * out_rows * sum(j * dilation[1] != pad[1] for j in range(kernel[1]))
    return bands, strips


def derivative_as_convolution(stride, out, plane, kernel, batch: int, channels: int,
                              filters: int) -> bool:
    """Whether the runtime's calc_derivative of a stride-1 convolution whose output planes are
    its input planes ("same") is itself such a convolution: dx = the output gradient convolved
    with the filters flipped and channels and filters swapped (``filter_flipped``), im2col by
    flat shifts and one product, no col2im summing taps back. Worth it when the output
    gradient has no more channels than the input (its columns are no larger than col2im's)
    and the flipped copy of the filters is no larger than the output gradient (input channels
    x taps no more than the batch's output positions): resnet18's first two stages."""
    return (tuple(stride) == (1, 1) and tuple(out) == tuple(plane)
            and tuple(kernel) != (1, 1) and filters <= channels
            and channels * kernel[0] * kernel[1] <= batch * out[0] * out[1])


def step_lanes(batch: int, rows: int, cols: int) -> int:
    """Lanes of samples a forward or calc_derivative step runs, each with its own column
    workspace: LANES (their chunks shrunk until together they fit LANE_WORKSPACE_MAX), or one
    when even a sample per lane would exceed it."""
    g = conv_chunk(batch, rows, cols, LANES)
    return LANES if LANES * 4 * rows * g * cols <= LANE_WORKSPACE_MAX else 1


def gradient_in_sample_lanes(batch: int, rows: int, cols: int, filt_shape) -> bool:
    """Whether calc_gradient runs lanes of samples, each summing its own partial filter
    gradient (added up in lane order), rather than lanes of channels over shared chunks: when
    a filter gradient is no larger than one lane's column chunk, its extra copies cost little
    and the lanes need not meet after every chunk."""
    g = conv_chunk(batch, rows, cols, LANES)
    return 4 * numel(filt_shape) <= 4 * rows * g * cols and step_lanes(batch, rows, cols) > 1


def _conv_helpers(batch, rows, cols, filt, pointwise, wide_cols=None, flipped=False):
    """im2col workspaces for one chunk of samples, each living in its own step only.

    Every step makes one matrix product per chunk with the chunk's samples side by side:
    columns (rows, chunk x cols) — unless the convolution is pointwise and a chunk is one
    sample, when the input itself is the column matrix — and, when a chunk has several
    samples, the output (forward) or output gradient (backward) laid out (filters, chunk x
    cols) — calc_derivative's always when its rows are wide (``wide_grid``: ``wide_cols``
    columns per sample); every row of these workspaces is COL_PAD elements longer.
    Forward and calc_derivative run ``step_lanes`` lanes of samples (``LANES``, or one where
    that many workspaces would be too large), each with its own chunk workspace (a leading
    lane axis). So does calc_gradient when ``gradient_in_sample_lanes``,
    each lane summing into its own partial filter gradient (``filter_grad_lanes``, added up at
    the end); otherwise it splits each chunk's work by channels and has one workspace. Either
    sums a lane's chunks after the first through a partial filter gradient. When
    ``derivative_as_convolution``, calc_derivative's columns are the output gradient's
    (filters x taps rows) and its product is laid out (channels, chunk, cols).
    """
    helpers = []
    sample_lanes = gradient_in_sample_lanes(batch, rows, cols, filt.shape)
    for step in (F, CG, CD):
        wide = step == CD and wide_cols is not None
        width = wide_cols if wide else cols
        flip = step == CD and flipped
        taps = filt.shape[2] * filt.shape[3]
        # the output gradient's columns when flipped: filters x taps rows
        step_rows = filt.shape[0] * taps if flip else rows
        if step == CG:  # lanes of samples, or of channels sharing one workspace
            lanes = LANES if sample_lanes else 1
            lead = (LANES,) if sample_lanes else ()
        else:  # lanes of samples, each its workspace: a leading axis of that many
            lanes = step_lanes(batch, step_rows, width)
            lead = (lanes,)
        g = conv_chunk(batch, step_rows, width, lanes)
        if not (pointwise and g == 1):  # (rows, chunk x width) with padded rows
            helpers.append(Helper(f"col_{step}", (*lead, step_rows, g * width + COL_PAD),
                                  (step,)))
        if flip:
            channels = rows // taps
            per_group = numel(filt.shape) // (channels * taps)  # filters per group
            helpers.append(Helper("filter_flipped", (channels, per_group, *filt.shape[2:]),
                                  (step,)))
            if g > 1:
                helpers.append(Helper("dx_t_calc_derivative",
                                      (*lead, channels, g * width + COL_PAD), (step,)))
        elif g > 1 or wide:
            name = "out_t_forward" if step == F else f"grad_t_{step}"
            helpers.append(Helper(name, (*lead, filt.shape[0], g * width + COL_PAD), (step,)))
        if step == CG and sample_lanes:
            helpers.append(Helper("filter_grad_lanes", (LANES, *filt.shape), (CG,)))
        if step == CG and g < batch:  # (an op too small for threads runs in one lane)
            helpers.append(Helper("filter_grad_part", (*lead, *filt.shape), (CG,)))
    return helpers


POOLINGS = ("max", "average", "global_max", "global_average")


def realise_pooling2d(inputs, props, compat):
    (x,) = inputs
    name = props["name"]
    kind = str(props.get("pooling", "max")).lower()
    if kind not in POOLINGS:
        raise InvalidShape(f"{name}: pooling must be one of {', '.join(POOLINGS)}, got {kind!r}")
    if len(x) != 4:
        raise InvalidShape(f"{name}: pooling2d needs a 4-D input, got {x}")
    b, c, h, w = x
    if kind.startswith("global"):
        k, s, p = (h, w), (1, 1), (0, 0)
    else:
        k = pair(props.get("pool_size", 2))
        s = pair(props.get("stride", 1))
        p = padding(props.get("padding", 0), k, (1, 1), name)
    oh, ow = (out_size((h, w)[i], k[i], s[i], p[i], 1, name) for i in range(2))
    out = (b, c, oh, ow)
    helpers = []
    if compat:
        # NNTrainer requests an index helper the size of the output for every pooling kind but
        # global average, valid over the layer's whole iteration.
        if kind != "global_average":
            helpers = [Helper("helper_idx", out, (F, CG, CD, AG), dtype="int32")]
    elif kind in ("max", "global_max"):
        helpers = [Helper("argmax", out, (F, CD), dtype="int32")]
    work = b * c * oh * ow * k[0] * k[1]
    rows = {} if kind.startswith("global") else _pool_rows(kind, k, s, p, b * c, oh)
    return Realised(outputs=[out], helpers=helpers, flops={F: work, CD: work},
                    gather_rows=rows)


def _pool_rows(kind: str, kernel, stride, pad, planes: int, out_rows: int) -> dict[str, int]:
    """The output rows pooling's passes touch (runtime/kernels/pool.py), each pass over a tap
    a strided copy: max forward starts from the first tap and then, per tap, compares, scales
    the index, keeps the larger index and the larger value; its derivative assigns each tap's
    share (compare, multiply) when the windows tile the plane, else adds it in (compare,
    multiply, add); average adds every tap in, forward and back."""
    taps = kernel[0] * kernel[1]
    if kind == "average":
        return {F: planes * out_rows * taps, CD: planes * out_rows * taps}
    tiled = tuple(stride) == tuple(kernel) and tuple(pad) == (0, 0)
    return {F: planes * out_rows * (1 + 4 * (taps - 1)),
            CD: planes * out_rows * taps * (2 if tiled else 3)}


register(LayerSpec("conv2d", realise_conv2d,
                   description="2-D convolution with stride, padding, dilation and groups"))
register(LayerSpec("pooling2d", realise_pooling2d,
                   description="max / average / global pooling"))
