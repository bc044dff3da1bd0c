"""The model zoo: one registry of builders, each ``(batch, input_shape, classes) -> ModelSpec``;
``get_model`` reaches every importer (planner/importers), the zoo among them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainplan.planner.importers.ini import EXAMPLES_DIR, example_files  # noqa: F401
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


def model_names() -> list[str]:
    return list(MODELS)


def get_model(name: str, *, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
              classes: int | None = None) -> ModelSpec:
    """The model ``name`` names, through the importers' registry (planner/importers): a zoo
    model, an NNTrainer INI file (a path or a shipped example), an ONNX file or a PyTorch
    factory."""
    from trainplan.planner.importers import import_model
    return import_model(name, batch=batch, input_shape=input_shape, classes=classes)
