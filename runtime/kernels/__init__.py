"""Numpy kernels, one registry: ``KERNELS[layer_type] -> KernelSpec(forward, calc_gradient,
calc_derivative)``, one module per layer family as in planner/layers."""

from trainplan.runtime.kernels import conv, dense, elementwise, loss, norm, sequence  # noqa: F401
from trainplan.runtime.kernels.base import KERNELS, KernelError, KernelSpec, LayerCtx

__all__ = ["KERNELS", "KernelError", "KernelSpec", "LayerCtx"]
