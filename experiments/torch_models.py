"""The zoo's lenet5, resnet18_cifar and transformer written in PyTorch, layer for layer.

Used by ``trainplan.experiments.bench_runtime`` to train the same model side by side with the numpy
runtime. Each builder mirrors planner/zoo: the same layer sizes, activations (ReLU, GELU in its
tanh form as runtime/kernels/elementwise.py computes it), max pooling, conv bias flags, batch
and layer norm with NNTrainer's epsilon 1e-3 and running-statistics momentum (0.99 there, 0.01
in PyTorch's convention), post-norm transformer blocks without dropout. PyTorch is an optional
extra (``pip install 'trainplan[torch]'``); importing this module without it raises ImportError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

EPSILON = 1e-3  # runtime/kernels/norm.py EPSILON
BN_MOMENTUM = 0.01  # PyTorch's weight of the batch statistic: 1 - NNTrainer's 0.99
ADAM_EPSILON = 1e-7  # runtime/optimizers.py Hyper.epsilon (NNTrainer's)


@dataclass(frozen=True)
class TorchModel:
    """A module with the shapes of the data it trains on (batch axis excluded)."""

    module: nn.Module
    input_shape: tuple[int, ...]
    classes: int
    vocab: int | None = None  # token ids in [0, vocab) when the input feeds an embedding


def lenet5(classes: int = 10) -> TorchModel:
    """LeNet-5 on 1x32x32: conv 6@5x5, max pool, conv 16@5x5, max pool, fc 120-84-classes."""
    module = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, classes))
    return TorchModel(module, (1, 32, 32), classes)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=EPSILON, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn, plus the input (1x1 conv + bn when the shape changes), relu."""

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)  # torchvision's choice
        self.down = None
        if stride != 1 or inplanes != planes:
            self.down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, 0, bias=False),
                                      _bn(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.down is None else self.down(x)
        return self.relu(out + skip)


def resnet18_cifar(classes: int = 10, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2)
                   ) -> TorchModel:
    """ResNet-18 with the CIFAR stem (3x3 conv, no max pooling), global average pooling."""
    layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), _bn(widths[0]),
                               nn.ReLU(inplace=True)]
    inplanes = widths[0]
    for stage, (planes, count) in enumerate(zip(widths, blocks)):
        for b in range(count):
            layers.append(BasicBlock(inplanes, planes, 2 if (b == 0 and stage > 0) else 1))
            inplanes = planes
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inplanes, classes)]
    return TorchModel(nn.Sequential(*layers), (3, 32, 32), classes)


class EncoderBlock(nn.Module):
    """Post-norm: x = LN(x + attention(x)); x = LN(x + ff2(gelu(ff1(x))))."""

    def __init__(self, d_model: int, heads: int, d_ff: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model, eps=EPSILON)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.gelu = nn.GELU(approximate="tanh")
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm2 = nn.LayerNorm(d_model, eps=EPSILON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn, _ = self.attention(x, x, x, need_weights=False)
        x = self.norm1(x + attn)
        return self.norm2(x + self.ff2(self.gelu(self.ff1(x))))


def transformer(classes: int = 10, seq: int = 128, vocab: int = 8000, d_model: int = 256,
                heads: int = 4, d_ff: int = 1024, blocks: int = 4) -> TorchModel:
    """Embedding, ``blocks`` post-norm encoder blocks, flatten, one linear classifier."""
    module = nn.Sequential(
        nn.Embedding(vocab, d_model),
        *(EncoderBlock(d_model, heads, d_ff) for _ in range(blocks)),
        nn.Flatten(),
        nn.Linear(seq * d_model, classes))
    return TorchModel(module, (seq,), classes, vocab)


TORCH_MODELS: dict[str, Callable[[], TorchModel]] = {
    "lenet5": lenet5,
    "resnet18_cifar": resnet18_cifar,
    "transformer": transformer,
}


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters (batch norm's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def adam(module: nn.Module, learning_rate: float = 1e-3) -> torch.optim.Adam:
    """Adam as the runtime runs it: lr 1e-3, betas (0.9, 0.999), epsilon 1e-7."""
    return torch.optim.Adam(module.parameters(), lr=learning_rate, betas=(0.9, 0.999),
                            eps=ADAM_EPSILON)
