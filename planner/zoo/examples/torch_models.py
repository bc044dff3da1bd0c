"""Models written in PyTorch for the importer tests: torchvision's ResNet-18 and MobileNetV2
architectures (torchvision itself does not install beside this PyTorch), an
``nn.TransformerEncoder`` classifier and an LSTM classifier shaped like the zoo's, and small
models for the cross-framework checks. Each factory returns an ``nn.Module``
(``--model torch_models.py:resnet18``, a file shipped with trainplan)."""

from __future__ import annotations

import torch
from torch import nn

# --- torchvision's ResNet-18 (torchvision/models/resnet.py: BasicBlock, [2, 2, 2, 2]) --------

class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, inplanes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(inplanes, planes, stride),
                                        BasicBlock(planes, planes)))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- torchvision's MobileNetV2 (torchvision/models/mobilenetv2.py, width 1.0) ---------------

def conv_bn_relu6(inp: int, oup: int, kernel: int = 3, stride: int = 1, groups: int = 1):
    """torchvision's Conv2dNormActivation with BatchNorm2d and ReLU6."""
    return nn.Sequential(nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups,
                                   bias=False), nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [conv_bn_relu6(inp, hidden, 1)] if expand_ratio != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        features, inp = [conv_bn_relu6(3, 32, stride=2)], 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        features.append(conv_bn_relu6(inp, 1280, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# --- sequence models shaped like the zoo's transformer and lstm ------------------------------

class TransformerClassifier(nn.Module):
    """Embedding, post-norm ``nn.TransformerEncoder`` blocks (tanh GELU, no dropout),
    flatten, one linear classifier: the zoo's ``transformer``."""

    def __init__(self, vocab=8000, d_model=256, heads=4, d_ff=1024, blocks=4, seq=128,
                 classes=10):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=0.0,
                                           activation=nn.GELU(approximate="tanh"),
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.classifier = nn.Linear(seq * d_model, classes)

    def forward(self, tokens):
        return self.classifier(torch.flatten(self.encoder(self.embedding(tokens)), 1))


class LSTMClassifier(nn.Module):
    """Two stacked LSTM layers, the last step into a linear classifier: the zoo's ``lstm``."""

    def __init__(self, features=28, hidden=128, classes=10, layers=2):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.classifier(out[:, -1, :])


def resnet18():
    return ResNet18()


def mobilenetv2():
    return MobileNetV2()


def transformer():
    return TransformerClassifier()


def lstm():
    return LSTMClassifier()


# --- small models for the cross-framework checks ---------------------------------------------

def small_cnn():
    """Convolutions (plain, strided, grouped, dilated), batch norm, pooling, a residual add,
    concat, relu6, sigmoid, adaptive pooling, linear."""
    torch.manual_seed(0)
    return SmallCNN()


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(inplace=True))
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4),
                                    nn.BatchNorm2d(8))
        self.down = nn.Conv2d(16, 12, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 16),
                                  nn.Tanh(), nn.Linear(16, 5))

    def forward(self, x):
        x = self.stem(x)
        y = self.branch(x) + x
        z = torch.cat([nn.functional.relu6(y), torch.sigmoid(x)], 1)
        return self.head(self.avg(self.pool(self.down(z))))


def small_transformer():
    torch.manual_seed(0)
    return TransformerClassifier(vocab=50, d_model=16, heads=4, d_ff=32, blocks=2, seq=6,
                                 classes=3)


def small_lstm():
    torch.manual_seed(0)
    return LSTMClassifier(features=4, hidden=8, classes=3)


def small_mlp_mse():
    """A regression MLP (exact GELU) trained with mean squared error (a (module, loss)
    factory)."""
    torch.manual_seed(0)
    return (nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 4)),
            nn.MSELoss())


def unsupported_op():
    """A module calling an op no trainplan layer computes (torch.sort)."""
    return Sorting()


class Sorting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(torch.sort(x, dim=1).values)
