"""Vision models: LeNet-5, VGG-16, ResNet-18, MobileNetV2 (ImageNet and CIFAR sizes).

Layer structure follows the published architectures (torchvision for VGG-16, ResNet-18 and
MobileNetV2), so trainable parameter counts match the published ones exactly.
"""

from __future__ import annotations

from trainplan.planner.spec import ModelSpec
from trainplan.planner.zoo.net import Net


def lenet5(batch=32, input_shape=(1, 32, 32), classes=10) -> ModelSpec:
    """LeNet-5: two 5x5 convolutions with max pooling, three fully-connected layers."""
    n = Net("lenet5")
    n.add("input", "input", input_shape=tuple(input_shape))
    n.conv("conv1", 6, 5)
    n.act("conv1/relu", "relu")
    n.add("pooling2d", "pool1", pooling="max", pool_size=2, stride=2)
    n.conv("conv2", 16, 5)
    n.act("conv2/relu", "relu")
    n.add("pooling2d", "pool2", pooling="max", pool_size=2, stride=2)
    n.add("flatten", "flatten")
    for i, units in enumerate((120, 84), start=1):
        n.add("fully_connected", f"fc{i}", unit=units)
        n.act(f"fc{i}/relu", "relu")
    n.add("fully_connected", "fc3", unit=classes)
    n.add("cross_softmax", "loss")
    return n.spec(batch, description="LeNet-5 (conv 6@5x5, conv 16@5x5, fc 120-84-classes)")


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M")


def vgg16(batch=32, input_shape=(3, 224, 224), classes=1000) -> ModelSpec:
    """VGG-16 (configuration D); 4096-4096 classifier with dropout, or one linear at 32x32."""
    n = Net("vgg16")
    n.add("input", "input", input_shape=tuple(input_shape))
    block, idx = 1, 1
    for v in _VGG16:
        if v == "M":
            n.add("pooling2d", f"pool{block}", pooling="max", pool_size=2, stride=2)
            block, idx = block + 1, 1
            continue
        n.conv(f"conv{block}_{idx}", v, 3, padding=1)
        n.act(f"conv{block}_{idx}/relu", "relu")
        idx += 1
    n.add("flatten", "flatten")
    if input_shape[-1] >= 224:
        for i in (1, 2):
            n.add("fully_connected", f"fc{i}", unit=4096)
            n.act(f"fc{i}/relu", "relu")
            n.add("dropout", f"fc{i}/dropout", dropout_rate=0.5)
    n.add("fully_connected", "classifier", unit=classes)
    n.add("cross_softmax", "loss")
    return n.spec(batch, description="VGG-16")


def _basic_block(n: Net, name: str, channels: int, stride: int) -> None:
    x = n.last
    n.conv(f"{name}/conv1", channels, 3, stride, 1, bias=False)
    n.add("batch_normalization", f"{name}/bn1")
    n.act(f"{name}/relu1", "relu")
    n.conv(f"{name}/conv2", channels, 3, 1, 1, bias=False)
    main = n.add("batch_normalization", f"{name}/bn2")
    skip = x
    if stride != 1 or n.channels != channels:
        n.conv(f"{name}/down", channels, 1, stride, 0, inputs=x, bias=False)
        skip = n.add("batch_normalization", f"{name}/down_bn")
    n.add("addition", f"{name}/add", [main, skip])
    n.act(f"{name}/relu2", "relu")
    n.channels = channels


def resnet18(batch=32, input_shape=(3, 224, 224), classes=1000, blocks=(2, 2, 2, 2),
             widths=(64, 128, 256, 512)) -> ModelSpec:
    """ResNet-18 (``blocks`` basic blocks per stage); at 32x32 inputs the CIFAR stem (3x3 conv,
    no max pooling)."""
    n = Net("resnet18")
    n.add("input", "input", input_shape=tuple(input_shape))
    if input_shape[-1] >= 64:
        n.conv("conv1", widths[0], 7, 2, 3, bias=False)
    else:
        n.conv("conv1", widths[0], 3, 1, 1, bias=False)
    n.add("batch_normalization", "bn1")
    n.act("relu", "relu")
    if input_shape[-1] >= 64:
        n.add("pooling2d", "maxpool", pooling="max", pool_size=3, stride=2, padding=1)
    n.channels = widths[0]
    for stage, (channels, count) in enumerate(zip(widths, blocks), start=1):
        for b in range(count):
            _basic_block(n, f"layer{stage}.{b}", channels, 2 if (b == 0 and stage > 1) else 1)
    n.add("pooling2d", "avgpool", pooling="global_average")
    n.add("flatten", "flatten")
    n.add("fully_connected", "fc", unit=classes)
    n.add("cross_softmax", "loss")
    return n.spec(batch, description="ResNet-18")


_MBV2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
         (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn(n: Net, name: str, filters: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> str:
    n.conv(name, filters, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
    out = n.add("batch_normalization", f"{name}/bn")
    return n.act(f"{name}/relu6", "relu6") if act else out


def mobilenetv2(batch=32, input_shape=(3, 224, 224), classes=1000) -> ModelSpec:
    """MobileNetV2 (width 1.0): inverted residual blocks with depthwise convolutions."""
    n = Net("mobilenetv2")
    n.add("input", "input", input_shape=tuple(input_shape))
    first_stride = 2 if input_shape[-1] >= 64 else 1
    _conv_bn(n, "stem", 32, 3, first_stride)
    channels, block = 32, 0
    for t, c, reps, s in _MBV2:
        for i in range(reps):
            stride = s if i == 0 else 1
            if first_stride == 1 and block < 3 and stride == 2:
                stride = 1  # CIFAR variant keeps resolution in the early blocks
            x, hidden, name = n.last, channels * t, f"block{block}"
            if t != 1:
                _conv_bn(n, f"{name}/expand", hidden, 1)
            _conv_bn(n, f"{name}/dw", hidden, 3, stride, groups=hidden)
            out = _conv_bn(n, f"{name}/project", c, 1, act=False)
            if stride == 1 and channels == c:
                n.add("addition", f"{name}/add", [out, x])
            channels, block = c, block + 1
    _conv_bn(n, "head", 1280, 1)
    n.add("pooling2d", "avgpool", pooling="global_average")
    n.add("flatten", "flatten")
    n.add("dropout", "dropout", dropout_rate=0.2)
    n.add("fully_connected", "classifier", unit=classes)
    n.add("cross_softmax", "loss")
    return n.spec(batch, description="MobileNetV2 (width 1.0)")
