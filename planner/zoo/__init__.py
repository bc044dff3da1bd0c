"""The model zoo: one registry of builders, each ``(batch, input_shape, classes) -> ModelSpec``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from trainplan.planner.errors import UnknownModel
from trainplan.planner.spec import ModelSpec
from trainplan.planner.zoo.sequence import lstm_classifier, mlp, tacotron2_decoder, transformer
from trainplan.planner.zoo.vision import lenet5, mobilenetv2, resnet18, vgg16


@dataclass(frozen=True)
class ZooEntry:
    builder: Callable[..., ModelSpec]
    defaults: dict
    description: str


_CIFAR = {"input_shape": (3, 32, 32), "classes": 10}
_IMAGENET = {"input_shape": (3, 224, 224), "classes": 1000}

MODELS: dict[str, ZooEntry] = {
    "mlp": ZooEntry(mlp, {"input_shape": (784,), "classes": 10}, "MLP 784-256-128-10"),
    "lenet5": ZooEntry(lenet5, {"input_shape": (1, 32, 32), "classes": 10}, "LeNet-5"),
    "vgg16": ZooEntry(vgg16, _IMAGENET, "VGG-16, ImageNet 224x224"),
    "vgg16_cifar": ZooEntry(vgg16, _CIFAR, "VGG-16, CIFAR 32x32"),
    "resnet18": ZooEntry(resnet18, _IMAGENET, "ResNet-18, ImageNet 224x224"),
    "resnet18_cifar": ZooEntry(resnet18, _CIFAR, "ResNet-18, CIFAR 32x32"),
    "mobilenetv2": ZooEntry(mobilenetv2, _IMAGENET, "MobileNetV2, ImageNet 224x224"),
    "mobilenetv2_cifar": ZooEntry(mobilenetv2, _CIFAR, "MobileNetV2, CIFAR 32x32"),
    "transformer": ZooEntry(transformer, {"input_shape": (128,), "classes": 10},
                            "Transformer encoder, 4 blocks, d=256, seq 128"),
    "lstm": ZooEntry(lstm_classifier, {"input_shape": (28, 28), "classes": 10},
                     "LSTM classifier, 2x128 over 28 steps"),
    "tacotron2": ZooEntry(tacotron2_decoder, {"input_shape": (200, 80), "classes": None},
                          "Tacotron2-like decoder, 200 frames, 80 mels"),
}


EXAMPLES_DIR = os.path.join(os.path.dirname(__file__), "examples")


def example_files() -> list[str]:
    """The NNTrainer INI files shipped with the package, reachable by file name
    (``--model mnist.ini``)."""
    return sorted(f for f in os.listdir(EXAMPLES_DIR) if f.endswith(".ini"))


def model_names() -> list[str]:
    return list(MODELS)


def _model_file(name: str) -> str:
    """A path as given, else a shipped example of that name; UnknownModel naming both."""
    if os.path.exists(name):
        return name
    shipped = os.path.join(EXAMPLES_DIR, name)
    if os.path.sep not in name and os.path.exists(shipped):
        return shipped
    raise UnknownModel(f"model file {name!r} does not exist (the shipped examples: "
                       f"{', '.join(example_files())})")


def get_model(name: str, *, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
              classes: int | None = None) -> ModelSpec:
    """Build a zoo model, or load an NNTrainer INI file when ``name`` is a path or the name of
    a shipped example."""
    if name.lower().endswith(".ini") or os.path.sep in name:
        from trainplan.planner.ini import load_ini
        return load_ini(_model_file(name), batch=batch)
    if name not in MODELS:
        raise UnknownModel(f"unknown model {name!r}; valid: {', '.join(MODELS)} "
                           "(or a path to an NNTrainer .ini file, or a shipped example: "
                           f"{', '.join(example_files())})")
    entry = MODELS[name]
    kwargs = dict(entry.defaults)
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if classes is not None:
        kwargs["classes"] = classes
    spec = entry.builder(batch=32 if batch is None else batch, **kwargs)
    return spec if spec.name == name else _renamed(spec, name)


def _renamed(spec: ModelSpec, name: str) -> ModelSpec:
    return replace(spec, name=name)
