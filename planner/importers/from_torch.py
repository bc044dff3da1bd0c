"""The PyTorch importer: ``--model path/to/file.py:factory`` or ``package.module:factory``.

The factory is a function of no arguments returning an ``nn.Module`` — or a pair
``(module, loss)`` with ``loss`` one of ``nn.CrossEntropyLoss`` (the default), ``nn.MSELoss``,
``nn.BCEWithLogitsLoss``, ``nn.NLLLoss`` (after a final ``log_softmax``). The module, in training
mode, is captured with ``torch.export`` on an example batch of ``--input-shape`` (integer ids
when the module has an ``nn.Embedding``), and its ATen graph mapped onto trainplan's layers
(planner/importers/torch_ops.py); its parameters and buffers become the spec's initial weights.
PyTorch is the optional extra ``trainplan[torch]``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings

from trainplan.planner.errors import InvalidShape, TrainplanError, UnknownModel
from trainplan.planner.spec import ModelSpec

TRACE_BATCH = 2  # the example batch; every mapped op must keep it as its first dimension
INSTALL_HINT = ("pip install 'trainplan[torch]' (CPU-only build: pip install torch "
                "--index-url https://download.pytorch.org/whl/cpu)")


def accepts(value: str) -> bool:
    """``something.py:name`` or ``dotted.module:name``."""
    if ":" not in value:
        return False
    target, fn = value.rsplit(":", 1)
    if not fn.isidentifier() or not target:
        return False
    return target.endswith(".py") or all(p.isidentifier() for p in target.split("."))


def load(value: str, *, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
         classes: int | None = None) -> ModelSpec:
    torch = require_torch()
    from trainplan.planner.importers.torch_ops import map_program
    module, loss = _call_factory(value, torch)
    if input_shape is None:
        raise InvalidShape(f"{value}: a PyTorch model needs --input-shape (its input without "
                           "the batch, e.g. 3:32:32)")
    program = capture(module, tuple(input_shape), torch)
    name = value.rsplit(":", 1)[1]
    return map_program(program, module, loss, tuple(input_shape), name, batch,
                       description=f"PyTorch module from {value}")


def require_torch():
    try:
        import torch
    except ImportError:
        raise TrainplanError(f"importing a PyTorch model needs PyTorch: {INSTALL_HINT}") \
            from None
    return torch


def _model_file(target: str) -> str:
    """A path as given, else a shipped example of that name (planner/zoo/examples)."""
    from trainplan.planner.importers.ini import model_file

    return model_file(target, also=("torch_models.py",))


def source_file(value: str) -> str | None:
    """The Python file defining the factory ``value`` names, None if it has no file."""
    target = value.rsplit(":", 1)[0]
    if target.endswith(".py"):
        return _model_file(target)
    found = importlib.util.find_spec(target)
    return found.origin if found is not None and found.has_location else None


def _factory(value: str):
    target, fn = value.rsplit(":", 1)
    if target.endswith(".py"):
        target = _model_file(target)
        name = "trainplan_user_" + os.path.splitext(os.path.basename(target))[0]
        spec = importlib.util.spec_from_file_location(name, target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise TrainplanError(f"{value}: running {target} failed: {type(exc).__name__}: "
                                 f"{exc}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UnknownModel(f"{value}: cannot import module {target!r}: {exc}") from None
    if not callable(getattr(module, fn, None)):
        raise UnknownModel(f"{value}: {target} has no function {fn!r}")
    return getattr(module, fn)


def _call_factory(value: str, torch):
    try:
        made = _factory(value)()
    except TrainplanError:
        raise
    except Exception as exc:
        raise TrainplanError(f"{value}: the factory failed: {type(exc).__name__}: {exc}") \
            from exc
    module, loss = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    if not isinstance(module, torch.nn.Module):
        raise TrainplanError(f"{value}: the factory returned {type(module).__name__}, not an "
                             "nn.Module (or a (module, loss) pair)")
    return module, loss


def example_input(module, input_shape: tuple[int, ...], torch):
    """A seeded example batch: token ids (zeros) when the module embeds, else normal floats."""
    shape = (TRACE_BATCH, *input_shape)
    if any(isinstance(m, torch.nn.Embedding) for m in module.modules()):
        return torch.zeros(shape, dtype=torch.long)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def capture(module, input_shape: tuple[int, ...], torch):
    """The module's training-mode ATen graph (``torch.export``); a module it cannot capture is
    refused with export's reason."""
    module.train()
    example = example_input(module, input_shape, torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.export.export(module, (example,))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise TrainplanError(f"torch.export cannot capture {type(module).__name__} on an "
                                 f"input of shape {tuple(example.shape)}: "
                                 f"{type(exc).__name__}: {first}") from exc
