"""The loss of an imported ONNX model: a final Softmax or Sigmoid fuses into cross-entropy
(NNTrainer's rule); otherwise cross-entropy on a (batch, classes) output, else mean squared
error."""

from __future__ import annotations

from trainplan.planner.importers.from_onnx import Data


def append_loss(m, graph) -> None:
    outputs = [o.name for o in graph.output if isinstance(m.values.get(o.name), Data)]
    if len(outputs) != 1:
        raise m.refuse(graph.node[-1], f"the graph has {len(outputs)} data outputs; trainplan "
                       "trains a model with one")
    out = m.values[outputs[0]]
    last = m.builder.layers[-1]
    if last[0] == out.ref and last[1] == "activation" and last[2]["activation"] in (
            "softmax", "sigmoid"):
        m.builder.layers.pop()
        kind = "cross_softmax" if last[2]["activation"] == "softmax" else "cross_sigmoid"
        m.builder.add("loss", kind, last[3])
        return
    m.builder.add("loss", "cross_softmax" if len(out.shape) == 2 else "mse", [out.ref])
