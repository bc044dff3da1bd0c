"""Numpy kernels, one registry: ``KERNELS[layer_type] -> KernelSpec(forward, calc_gradient,
calc_derivative)``, one module per layer family as in planner/layers."""

from trainplan.runtime.kernels import (  # noqa: F401
    conv, dense, elementwise, loss, norm, pool, sequence,
)
from trainplan.runtime.kernels.base import KERNELS, KernelError, KernelSpec, LayerCtx

__all__ = ["KERNELS", "KernelError", "KernelSpec", "LayerCtx"]
