"""Numpy kernels, one registry: ``KERNELS[layer_type] -> KernelSpec(forward, calc_gradient,
calc_derivative)``, one module per layer family as in planner/layers; and the kernels of the
op phases of split steps, ``PHASE_KERNELS[phase]`` (runtime/kernels/split.py)."""

from trainplan.runtime.kernels import (  # noqa: F401
    conv,
    dense,
    elementwise,
    loss,
    norm,
    pool,
    sequence,
)
from trainplan.runtime.kernels.base import KERNELS, KernelError, KernelSpec, LayerCtx
from trainplan.runtime.kernels.split import PHASE_KERNELS

__all__ = ["KERNELS", "PHASE_KERNELS", "KernelError", "KernelSpec", "LayerCtx"]
