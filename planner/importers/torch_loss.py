"""The loss of an imported PyTorch model: the module's output goes into the loss module the
factory names (cross-entropy by default), mapped onto trainplan's loss layers."""

from __future__ import annotations

from trainplan.planner.importers.builder import unsupported

LOSSES = ("CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss", "NLLLoss")


def append_loss(m, output, loss) -> None:
    """Append the loss layer after the module's single output."""
    results = output.args[0]
    results = [r for r in (results if isinstance(results, (list, tuple)) else [results])
               if r is not None]
    kind = type(loss).__name__ if loss is not None else "CrossEntropyLoss"
    if len(results) != 1:
        raise unsupported("forward", "output", None, ["one output tensor"],
                          f"the module returns {len(results)} values; trainplan trains a "
                          "module with one output")
    if kind not in LOSSES:
        raise unsupported(kind, "loss", None, LOSSES)
    if getattr(loss, "reduction", "mean") != "mean" or getattr(loss, "weight", None) is not None \
            or getattr(loss, "label_smoothing", 0.0) or getattr(loss, "pos_weight", None) \
            is not None:
        raise unsupported(kind, "loss", None, LOSSES, "only the plain mean reduction is "
                          "supported (no weight, pos_weight or label smoothing)")
    node = results[0]
    shape = m.shape(node)
    if kind in ("CrossEntropyLoss", "NLLLoss") and len(shape) != 2:
        raise unsupported(kind, node.name, None, LOSSES, f"cross-entropy over an output of "
                          f"shape {shape}: trainplan's takes (batch, classes)")
    source = m.ref(node, node)
    if kind == "NLLLoss":
        source = _before_log_softmax(m, node)
    layer = {"CrossEntropyLoss": "cross_softmax", "NLLLoss": "cross_softmax",
             "MSELoss": "mse", "BCEWithLogitsLoss": "cross_sigmoid"}[kind]
    m.builder.add("loss", layer, [source])


def _before_log_softmax(m, node) -> str:
    """NLLLoss reads log-probabilities: the output must be a log_softmax, which the fused
    cross-entropy computes itself."""
    if not str(node.target).startswith("aten._log_softmax") and \
            not str(node.target).startswith("aten.log_softmax"):
        raise unsupported("NLLLoss", node.name, None, LOSSES,
                          "NLLLoss needs the module to end in log_softmax")
    return m.ref(node.args[0], node)
