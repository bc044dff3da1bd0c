"""A ``torch.export`` program (training-mode ATen graph) -> trainplan layers and initial weights.

Every ATen node maps through one table, ``OPS`` (op -> handler, in
planner/importers/torch_handlers.py), onto a layer of planner/layers, or onto nothing where it
only renames bytes (``contiguous``, a reshape that keeps the shape, dropout with p = 0). ``nn.MultiheadAttention`` calls and ``aten.lstm`` are mapped whole
(planner/importers/torch_blocks.py). Layers are named after the module that ran the op
(``layer1.0.conv1``), or ``<module>/<node>`` for ops of container modules. An op outside the
table, or a setting of one no layer computes, is refused naming the op, the node and the source
line (planner/importers/builder.py ``UnsupportedOperator``).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

from trainplan.planner.importers.builder import SpecBuilder, unsupported
from trainplan.planner.importers.from_torch import TRACE_BATCH
from trainplan.planner.spec import ModelSpec


class Constant:
    """A value computed from no input (zeros for an initial state, a counter update)."""


@dataclass
class Mapper:
    """The state of one mapping pass over a program."""

    program: object
    root: object
    builder: SpecBuilder
    params: dict  # placeholder name -> state-dict name
    state: dict  # state-dict name -> numpy array
    values: dict = field(default_factory=dict)  # fx node -> layer ref or marker
    handled: set = field(default_factory=set)  # nodes a block mapped already

    # --- reading nodes ---------------------------------------------------------------------

    def shape(self, node) -> tuple[int, ...]:
        return tuple(int(d) for d in node.meta["val"].shape)

    def ref(self, node, user) -> str:
        """The layer output an argument node stands for; a constant or a parameter used as
        data is refused."""
        value = self.values.get(node)
        if isinstance(value, str):
            return value
        raise self.refuse(user, "reads a value computed from no input (a constant or a "
                          "parameter used as data), which no layer provides")

    def param(self, node, user):
        """(state-dict name, array) of a parameter or buffer argument; None for None."""
        if node is None:
            return None
        if getattr(node, "op", None) != "placeholder" or node.name not in self.params:
            raise self.refuse(user, "its weight is computed in the graph, not a parameter")
        name = self.params[node.name]
        return name, self.state[name]

    def base(self, node) -> str:
        """A layer name: the leaf module that ran ``node``, else ``<module>/<node>``."""
        path = module_path(node)
        if path is None:
            return node.name
        module = self.submodule(path)
        if module is not None and path and not any(True for _ in module.children()):
            return path
        return f"{path}/{node.name}" if path else node.name

    def submodule(self, path: str):
        try:
            return self.root.get_submodule(path) if path else self.root
        except AttributeError:
            return None

    def refuse(self, node, why: str = ""):
        return unsupported(op_name(node), node.name, source_line(node), supported_ops(), why)

    def check_batch(self, node) -> None:
        if self.shape(node)[:1] != (TRACE_BATCH,):
            raise self.refuse(node, f"its output {self.shape(node)} does not keep the batch as "
                              "its first dimension")

    def add(self, node, layer_type: str, inputs, weights=None, sources=None, **props) -> str:
        self.check_batch(node)
        return self.builder.add(self.base(node), layer_type, inputs, weights, sources, **props)


def op_name(node) -> str:
    target = node.target
    if target is operator.getitem:
        return "getitem"
    return str(target) if node.op == "call_function" else f"{node.op} {target}"


def module_path(node) -> str | None:
    """The innermost module path that ran ``node`` (``""`` for the root), None if unknown."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    return clean_path(list(stack.values())[-1][0])


def clean_path(path: str) -> str:
    """``L['self'].layer1[0]`` (strict export) or ``layer1.0`` -> ``layer1.0``."""
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[['\"]?([^\]'\"]+)['\"]?\]", r".\1", path)
    return path.strip(".")


def source_line(node) -> str | None:
    """``file.py:line`` of the innermost frame outside torch that created ``node``."""
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    user = [f for f in frames if f"{'/'}torch{'/'}" not in f[0]]
    if not (user or frames):
        return None
    path, line = (user or frames)[-1]
    return f"{path}:{line}"


def bind(node) -> dict:
    """The node's arguments by name, defaults filled in, from the op's schema."""
    schema = node.target._schema
    out = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            out[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        else:
            out[arg.name] = arg.default_value if arg.has_default_value() else None
    return out


def pair(value) -> tuple[int, int]:
    value = list(value) if isinstance(value, (list, tuple)) else [value]
    return (int(value[0]), int(value[-1]))


def supported_ops() -> list[str]:
    from trainplan.planner.importers.torch_blocks import BLOCKS
    from trainplan.planner.importers.torch_handlers import OPS
    return [*OPS, *BLOCKS, "getitem"]


def map_program(program, root, loss, input_shape, name, batch, description) -> ModelSpec:
    """The ModelSpec of an exported module: layers, the loss, the module's weights."""
    from trainplan.planner.importers.torch_blocks import (
        BLOCK_OPS,
        map_block,
        map_getitem,
        owner_block,
    )
    from trainplan.planner.importers.torch_handlers import OPS
    from trainplan.planner.importers.torch_loss import append_loss
    sig = program.graph_signature
    params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
    state = {k: v.detach().cpu().numpy() for k, v in program.state_dict.items()}
    for k, v in (getattr(program, "constants", None) or {}).items():
        if hasattr(v, "detach"):
            state[k] = v.detach().cpu().numpy()
    m = Mapper(program, root, SpecBuilder(name), params, state)
    user_inputs = list(sig.user_inputs)
    if len(user_inputs) != 1:
        raise unsupported("forward", name, None, ["one input"],
                          f"the module takes {len(user_inputs)} inputs; trainplan imports "
                          "modules of one input")
    output = None
    for node in program.graph.nodes:
        if node in m.handled:
            continue
        if node.op == "placeholder":
            if node.name == user_inputs[0]:
                m.values[node] = m.builder.add("input", "input", (),
                                               input_shape=tuple(input_shape))
            continue
        if node.op == "output":
            output = node
            continue
        block = owner_block(m, node)
        if block is not None:
            map_block(m, node, block)
        elif node.target is operator.getitem:
            m.values[node] = map_getitem(m, node)
        elif str(node.target) in OPS or str(node.target) in BLOCK_OPS:
            handler = OPS.get(str(node.target)) or BLOCK_OPS[str(node.target)]
            m.values[node] = handler(m, node, bind(node))
        else:
            raise m.refuse(node)
    append_loss(m, output, loss)
    return m.builder.spec(batch, description, {"framework": "pytorch"})
