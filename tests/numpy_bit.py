"""An independent float64 NumPy BiT forward pass, written from DESIGN.md, for parity tests.

It reads weights in the official key layout and shares no code with bit_keras.
"""

import numpy as np


def standardize(w, eps=1e-10):
    w = w.astype(np.float64)
    mean = w.mean(axis=(0, 1, 2), keepdims=True)
    var = ((w - mean) ** 2).mean(axis=(0, 1, 2), keepdims=True)
    return (w - mean) / np.sqrt(var + eps)


def conv(x, w, stride=1, pad=0):
    """NHWC x HWIO convolution with symmetric zero padding."""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = w.shape[:2]
    n, h, wd, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
            out += patch @ w[i, j]
    return out


def dilate(w, rate):
    """A k x k kernel dilated by ``rate``: the taps spread out, zeros between them."""
    if rate == 1:
        return w
    kh, kw = w.shape[:2]
    out = np.zeros(((kh - 1) * rate + 1, (kw - 1) * rate + 1) + w.shape[2:])
    out[::rate, ::rate] = w
    return out


def group_norm(x, gamma, beta, groups=32, eps=1e-5):
    n, h, w, c = x.shape
    g = x.reshape(n, h, w, groups, c // groups)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = ((g - mean) ** 2).mean(axis=(1, 2, 4), keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(n, h, w, c) * gamma + beta


def max_pool_3x3_s2_zero_pad(x):
    x = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    n, h, w, c = x.shape
    oh, ow = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    out = np.full((n, oh, ow, c), -np.inf)
    for i in range(3):
        for j in range(3):
            out = np.maximum(out, x[:, i:i + 2 * (oh - 1) + 1:2, j:j + 2 * (ow - 1) + 1:2, :])
    return out


def relu(x):
    return np.maximum(x, 0)


def forward(weights, images, groups=32, include_top=True, plan=None, block_outputs=None):
    """images in [0, 1], NHWC -> logits (or pre-logits) in float64.

    ``plan`` maps (block, unit) to (stride, dilation) of that unit's 3x3 convolution
    (default: stride 2 on each later block's first unit, no dilation); ``block_outputs``, a
    dict, receives each block's output.
    """
    p = {k: v.astype(np.float64) for k, v in weights.items()}
    x = images.astype(np.float64) * 2 - 1
    x = conv(x, standardize(p["resnet/root_block/standardized_conv2d/kernel"]), 2, 3)
    x = max_pool_3x3_s2_zero_pad(x)
    b = 1
    while f"resnet/block{b}/unit01/a/standardized_conv2d/kernel" in p:
        u = 1
        while (pre := f"resnet/block{b}/unit{u:02d}/") + "a/standardized_conv2d/kernel" in p:
            stride, rate = (plan or {}).get((b, u), (2 if (u == 1 and b > 1) else 1, 1))
            gn = lambda part, y: relu(group_norm(y, p[pre + part + "/group_norm/gamma"],
                                                 p[pre + part + "/group_norm/beta"], groups))
            a = gn("a", x)
            shortcut = x
            if pre + "a/proj/standardized_conv2d/kernel" in p:
                shortcut = conv(a, standardize(p[pre + "a/proj/standardized_conv2d/kernel"]), stride)
            y = conv(a, standardize(p[pre + "a/standardized_conv2d/kernel"]))
            y = conv(gn("b", y), dilate(standardize(p[pre + "b/standardized_conv2d/kernel"]),
                                        rate), stride, rate)
            y = conv(gn("c", y), standardize(p[pre + "c/standardized_conv2d/kernel"]))
            x = y + shortcut
            u += 1
        if block_outputs is not None:
            block_outputs[f"block{b}"] = x
        b += 1
    x = relu(group_norm(x, p["resnet/group_norm/gamma"], p["resnet/group_norm/beta"], groups))
    x = x.mean(axis=(1, 2))
    if not include_top:
        return x
    k = p["resnet/head/conv2d/kernel"]
    return x @ k.reshape(k.shape[2:]) + p["resnet/head/conv2d/bias"]


def random_weights(units, width, num_classes, base=64, seed=0):
    """Random float32 weights in the official layout for any units and width."""
    rng = np.random.default_rng(seed)
    w = {}

    def conv_w(key, shape):
        w[key] = rng.normal(0.0, 1.0, shape).astype(np.float32)

    def gn_w(key, c):
        w[key + "/group_norm/gamma"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        w[key + "/group_norm/beta"] = rng.normal(0.0, 0.2, c).astype(np.float32)

    stem = base * width
    conv_w("resnet/root_block/standardized_conv2d/kernel", (7, 7, 3, stem))
    cin = stem
    for b, n in enumerate(units, start=1):
        f = base * width * 2 ** (b - 1)
        for u in range(1, n + 1):
            pre = f"resnet/block{b}/unit{u:02d}/"
            gn_w(pre + "a", cin)
            if u == 1:
                conv_w(pre + "a/proj/standardized_conv2d/kernel", (1, 1, cin, 4 * f))
            conv_w(pre + "a/standardized_conv2d/kernel", (1, 1, cin, f))
            gn_w(pre + "b", f)
            conv_w(pre + "b/standardized_conv2d/kernel", (3, 3, f, f))
            gn_w(pre + "c", f)
            conv_w(pre + "c/standardized_conv2d/kernel", (1, 1, f, 4 * f))
            cin = 4 * f
    w["resnet/group_norm/gamma"] = rng.uniform(0.5, 1.5, cin).astype(np.float32)
    w["resnet/group_norm/beta"] = rng.normal(0.0, 0.2, cin).astype(np.float32)
    if num_classes:
        w["resnet/head/conv2d/kernel"] = rng.normal(0, 0.05, (1, 1, cin, num_classes)).astype(np.float32)
        w["resnet/head/conv2d/bias"] = rng.normal(0, 0.1, num_classes).astype(np.float32)
    return w
