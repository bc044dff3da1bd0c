"""Layer types, one registry: ``LAYERS[type] -> LayerSpec``."""

from trainplan.planner.layers import conv, dense, elementwise, loss, norm, sequence  # noqa: F401  (register)
from trainplan.planner.layers.base import LAYERS, LayerSpec, Realised

__all__ = ["LAYERS", "LayerSpec", "Realised"]
