"""A small helper for writing model builders: layers appended in order, inputs default to
the previous layer."""

from __future__ import annotations

from trainplan.planner.spec import LayerDef, ModelSpec


class Net:
    """Collects LayerDefs; ``add`` returns the new layer's name for wiring branches."""

    def __init__(self, name: str):
        self.name = name
        self.layers: list[LayerDef] = []
        self.channels = 0  # running channel count, for builders that need it

    @property
    def last(self) -> str:
        return self.layers[-1].name

    def add(self, type_: str, name: str, inputs: str | list[str] | None = None, **props) -> str:
        if inputs is None:
            inputs = [self.last] if self.layers else []
        elif isinstance(inputs, str):
            inputs = [inputs]
        self.layers.append(LayerDef(name, type_, props, tuple(inputs)))
        return name

    def conv(self, name: str, filters: int, kernel: int, stride: int = 1, padding=0,
             inputs=None, **props) -> str:
        return self.add("conv2d", name, inputs, filters=filters, kernel_size=kernel,
                        stride=stride, padding=padding, **props)

    def act(self, name: str, kind: str, inputs=None) -> str:
        return self.add("activation", name, inputs, activation=kind)

    def spec(self, batch: int, optimizer: str = "adam", description: str = "",
             **meta) -> ModelSpec:
        return ModelSpec(self.name, tuple(self.layers), batch, optimizer, description, meta)
