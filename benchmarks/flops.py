"""Multiply-add count of a BiT network, from its architecture alone (no TensorFlow).

FLOPs are 2 x multiply-adds of the convolutions and the head, the convention of the BiT and
ResNet papers (R50x1 at 224x224: 4.2 G multiply-adds, 8.4 GFLOP). GroupNorm, ReLU, padding
and pooling are a few operations per activation, under 0.5% of the total, and not counted:
they are what an implementation spends *memory* time on, not arithmetic.
"""


def _out(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


def bit_flops(units=(3, 4, 6, 3), width=1, resolution=224, num_classes=1000, base_filters=64):
    """FLOPs (2 x multiply-adds) of one image through a BiT ResNet-v2.

    Args:
        units, width, base_filters: the architecture, as ``bit_keras.resnet_v2``.
        resolution: the square input side in pixels.
        num_classes: head size (0 for a feature extractor).

    Returns:
        An int: floating-point operations per image.

    Example:

    >>> benchmarks.flops.bit_flops((3, 4, 6, 3), 1, 224) / 1e9  # about 8.4
    """
    macs = 0
    stem = base_filters * width
    h = w = _out(resolution, 7, 2, 3)
    macs += h * w * 7 * 7 * 3 * stem
    h, w = _out(h, 3, 2, 1), _out(w, 3, 2, 1)
    channels = stem
    for b, n in enumerate(units, start=1):
        filters = base_filters * width * 2 ** (b - 1)
        for u in range(1, n + 1):
            stride = 2 if (u == 1 and b > 1) else 1
            ho, wo = _out(h, 3, stride, 1), _out(w, 3, stride, 1)
            if stride != 1 or channels != filters * 4:
                macs += ho * wo * channels * filters * 4      # projection 1x1
            macs += h * w * channels * filters                # a: 1x1
            macs += ho * wo * 9 * filters * filters           # b: 3x3, stride s
            macs += ho * wo * filters * filters * 4           # c: 1x1
            h, w, channels = ho, wo, filters * 4
    macs += channels * num_classes
    return 2 * macs
