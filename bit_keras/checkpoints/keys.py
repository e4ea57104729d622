"""Pure mappings between bit_keras layer names and the official BiT checkpoint keys.

The official ``.npz`` layout (``BiT-M-R50x1.npz`` and friends; ``docs/design.md``):

    resnet/root_block/standardized_conv2d/kernel               (7, 7, 3, 64*w)
    resnet/block{b}/unit{uu}/{a,b,c}/group_norm/{gamma,beta}
    resnet/block{b}/unit{uu}/{a,b,c}/standardized_conv2d/kernel
    resnet/block{b}/unit01/a/proj/standardized_conv2d/kernel
    resnet/group_norm/{gamma,beta}                              (2048*w,)
    resnet/head/conv2d/kernel                                   (1, 1, 2048*w, classes)
    resnet/head/conv2d/bias                                     (classes,)

(some official files number the convolutions, ``standardized_conv2d_1``; read as the plain
name), big_vision's ``bit_paper`` parameters (flattened with ``/``, bare or under
``params/`` or ``opt/target/``):

    root_block/conv_root/kernel
    block{b}/unit{uu}/{conv1,conv2,conv3,conv_proj}/kernel
    block{b}/unit{uu}/{gn1,gn2,gn3}/{scale,bias}                (1, 1, 1, C)
    norm-pre-head/{scale,bias}                                  (1, 1, 1, 2048*w)
    head/{kernel,bias}                                          (2048*w, classes), (classes,)

and timm's ``ResNetV2`` state dict (OIHW kernels):

    stem.conv.weight
    stages.{i}.blocks.{j}.{norm1,norm2,norm3}.{weight,bias}
    stages.{i}.blocks.{j}.{conv1,conv2,conv3}.weight
    stages.{i}.blocks.0.downsample.conv.weight
    norm.{weight,bias}
    head.fc.{weight,bias}                                       (classes, C, 1, 1), (classes,)
"""

import re

import numpy as np

from bit_keras.utils import names

PREFIX = "resnet/"
HEAD_KEYS = (PREFIX + "head/conv2d/kernel", PREFIX + "head/conv2d/bias")
ROOT_KEY = PREFIX + "root_block/standardized_conv2d/kernel"

_UNIT = re.compile(r"^block(\d)_unit(\d\d)_(a|b|c|proj)_(gn|conv)$")


def official_key(layer_name, weight_name):
    """The official key of one weight, e.g. ('block1_unit01_a_gn', 'gamma')."""
    if layer_name == "root_conv":
        return ROOT_KEY
    if layer_name == "final_gn":
        return f"{PREFIX}group_norm/{weight_name}"
    if layer_name == "head":
        return f"{PREFIX}head/conv2d/{'kernel' if weight_name == 'kernel' else 'bias'}"
    m = _UNIT.match(layer_name)
    if not m:
        raise ValueError(f"Layer {layer_name!r} has no place in the official BiT layout")
    block, unit, part, kind = m.groups()
    base = f"{PREFIX}block{block}/unit{unit}/"
    if part == "proj":
        return base + "a/proj/standardized_conv2d/kernel"
    if kind == "gn":
        return base + f"{part}/group_norm/{weight_name}"
    return base + f"{part}/standardized_conv2d/kernel"


def model_to_official(model):
    """Maps every weight of a BiT model to its official key.

    Returns:
        dict official key -> (keras variable, official shape). The head kernel is stored
        as a 1x1 convolution officially and as a dense kernel here.
    """
    out = {}
    for layer in model.layers:
        for var in layer.weights:
            wname = var.path.rsplit("/", 1)[-1]
            key = official_key(layer.name, wname)
            shape = tuple(var.shape)
            if key == HEAD_KEYS[0]:
                shape = (1, 1) + shape
            if key in out:
                raise ValueError(f"Two weights map to {key}")
            out[key] = (var, shape)
    return out


def to_model_value(key, array):
    """Official array -> the value a Keras variable holds."""
    if key == HEAD_KEYS[0]:
        return array.reshape(array.shape[2:])
    return array


def to_official_value(key, array):
    """Keras variable value -> the official array."""
    if key == HEAD_KEYS[0]:
        return array.reshape((1, 1) + array.shape)
    return array


# --- timm ------------------------------------------------------------------------------

_TIMM_UNIT = re.compile(
    r"^stages\.(\d+)\.blocks\.(\d+)\.(norm1|norm2|norm3|conv1|conv2|conv3|downsample\.conv)\.(weight|bias)$")
_TIMM_PART = {"norm1": "a", "conv1": "a", "norm2": "b", "conv2": "b", "norm3": "c", "conv3": "c"}


def timm_to_official_key(key):
    """One timm ResNetV2 key -> official key, or None if it has no official counterpart."""
    gn = {"weight": "gamma", "bias": "beta"}
    if key == "stem.conv.weight":
        return ROOT_KEY
    if key in ("norm.weight", "norm.bias"):
        return f"{PREFIX}group_norm/{gn[key.rsplit('.', 1)[1]]}"
    if key == "head.fc.weight":
        return HEAD_KEYS[0]
    if key == "head.fc.bias":
        return HEAD_KEYS[1]
    m = _TIMM_UNIT.match(key)
    if not m:
        return None
    stage, blk, part, param = m.groups()
    base = f"{PREFIX}block{int(stage) + 1}/unit{int(blk) + 1:02d}/"
    if part == "downsample.conv":
        return base + "a/proj/standardized_conv2d/kernel" if param == "weight" else None
    letter = _TIMM_PART[part]
    if part.startswith("norm"):
        return base + f"{letter}/group_norm/{gn[param]}"
    return base + f"{letter}/standardized_conv2d/kernel" if param == "weight" else None


def timm_to_official_value(key, array):
    """timm tensors are OIHW (and the head a (K, C, 1, 1) conv); official ones HWIO."""
    if array.ndim == 4:
        return np.transpose(array, (2, 3, 1, 0))
    if key == HEAD_KEYS[0] and array.ndim == 2:  # a linear head (K, C)
        return array.T.reshape((1, 1) + array.T.shape)
    return array


def official_to_timm(weights):
    """Official dict -> timm state dict (used by tests and by ``save_npz(format='timm')``)."""
    out = {}
    for key, array in weights.items():
        rest = key[len(PREFIX):]
        if array.ndim == 4:
            array = np.transpose(array, (3, 2, 0, 1))
        if rest == "root_block/standardized_conv2d/kernel":
            out["stem.conv.weight"] = array
        elif rest.startswith("group_norm/"):
            out["norm." + ("weight" if rest.endswith("gamma") else "bias")] = array
        elif rest.startswith("head/"):
            out["head.fc." + ("weight" if rest.endswith("kernel") else "bias")] = array
        else:
            block, unit, part, *tail = rest.split("/")
            base = f"stages.{int(block[5:]) - 1}.blocks.{int(unit[4:]) - 1}."
            if tail[0] == "proj":
                out[base + "downsample.conv.weight"] = array
            elif tail[0] == "group_norm":
                idx = "abc".index(part) + 1
                out[base + f"norm{idx}." + ("weight" if tail[1] == "gamma" else "bias")] = array
            else:
                out[base + f"conv{'abc'.index(part) + 1}.weight"] = array
    return out


# --- big_vision's bit_paper model -------------------------------------------------------

BIG_VISION_PREFIXES = ("params/", "opt/target/", "")  # its checkpoints, old and new, and bare
_BV_UNIT = re.compile(r"^block(\d+)/unit(\d\d)/(conv[123]|conv_proj|gn[123])/(kernel|scale|bias)$")
_BV_GN = {"scale": "gamma", "bias": "beta"}


def big_vision_to_official_key(key):
    """One big_vision ``bit_paper`` key (prefix removed) -> official key, or None."""
    if key == "root_block/conv_root/kernel":
        return ROOT_KEY
    if key in ("norm-pre-head/scale", "norm-pre-head/bias"):
        return f"{PREFIX}group_norm/{_BV_GN[key.rsplit('/', 1)[1]]}"
    if key == "head/kernel":
        return HEAD_KEYS[0]
    if key == "head/bias":
        return HEAD_KEYS[1]
    m = _BV_UNIT.match(key)
    if not m:
        return None
    block, unit, part, param = m.groups()
    base = f"{PREFIX}block{block}/unit{unit}/"
    if part == "conv_proj":
        return base + "a/proj/standardized_conv2d/kernel" if param == "kernel" else None
    letter = "abc"[int(part[-1]) - 1]
    if part.startswith("gn"):
        return base + f"{letter}/group_norm/{_BV_GN[param]}" if param != "kernel" else None
    return base + f"{letter}/standardized_conv2d/kernel" if param == "kernel" else None


def big_vision_to_official_value(key, array):
    """big_vision keeps GroupNorm parameters as (1, 1, 1, C) and a Dense head (C, K)."""
    if "/group_norm/" in key and array.ndim == 4 and array.shape[:3] == (1, 1, 1):
        return array.reshape(array.shape[-1:])
    if key == HEAD_KEYS[0] and array.ndim == 2:
        return array.reshape((1, 1) + array.shape)
    return array


def official_to_big_vision(weights, prefix="params/"):
    """Official dict -> big_vision ``bit_paper`` parameters, flattened with ``/``."""
    out = {}
    for key, array in weights.items():
        rest = key[len(PREFIX):]
        if rest == "root_block/standardized_conv2d/kernel":
            name = "root_block/conv_root/kernel"
        elif rest.startswith("group_norm/"):
            name = "norm-pre-head/" + ("scale" if rest.endswith("gamma") else "bias")
            array = array.reshape((1, 1, 1) + array.shape)
        elif rest.startswith("head/"):
            name = "head/" + ("kernel" if rest.endswith("kernel") else "bias")
            array = array.reshape(array.shape[2:]) if array.ndim == 4 else array
        else:
            block, unit, part, *tail = rest.split("/")
            index = "abc".index(part) + 1
            if tail[0] == "proj":
                name = f"{block}/{unit}/conv_proj/kernel"
            elif tail[0] == "group_norm":
                name = f"{block}/{unit}/gn{index}/" + ("scale" if tail[1] == "gamma" else "bias")
                array = array.reshape((1, 1, 1) + array.shape)
            else:
                name = f"{block}/{unit}/conv{index}/kernel"
        out[prefix + name] = array
    return out


# Some official .npz files number their convolutions (``.../standardized_conv2d_1/kernel``);
# big_vision's ``bit_paper`` loader renames them the same way before reading.
_NUMBERED_CONV = re.compile(r"/standardized_conv2d_\d+/")


def unnumbered(key):
    """An official key with a numbered convolution name made plain."""
    return _NUMBERED_CONV.sub("/standardized_conv2d/", key)


# --- Keras 2 .h5 (official bit_tf2) ------------------------------------------------------

_H5_TAIL = (
    re.compile(r"(?:^|/)(root_block/standardized_conv2d/kernel)$"),
    re.compile(r"(?:^|/)(block\d+/unit\d+/(?:a/proj/|[abc]/)(?:standardized_conv2d/kernel|group_norm/(?:gamma|beta)))$"),
    re.compile(r"(?:^|/)(head/(?:conv2d|dense)/(?:kernel|bias))$"),
    re.compile(r"(?:^|/)(group_norm/(?:gamma|beta))$"),
)


def h5_to_official_key(weight_name):
    """A Keras 2 weight name such as ``resnet/block1/unit01/a/group_norm/gamma:0``."""
    name = weight_name.split(":")[0]
    for pattern in _H5_TAIL:
        m = pattern.search(name)
        if m:
            return PREFIX + m.group(1).replace("head/dense/", "head/conv2d/")
    return None


def h5_to_official_value(key, array):
    """bit_tf2 has a Dense head (C, K); the official layout a 1x1 convolution."""
    if key == HEAD_KEYS[0] and array.ndim == 2:
        return array.reshape((1, 1) + array.shape)
    return array


def describe_architecture(shapes):
    """Which architecture a dict official key -> shape looks like, as a short string."""
    units = []
    for b in range(1, 5):
        pat = re.compile(rf"^{PREFIX}block{b}/unit(\d\d)/")
        units.append(len({m.group(1) for k in shapes for m in [pat.match(k)] if m}))
    root = shapes.get(ROOT_KEY)
    stem = root[-1] if root is not None and len(root) == 4 else None
    head = shapes.get(HEAD_KEYS[1])
    parts = [f"units per block {tuple(units)}"]
    if stem is not None:
        parts.append(f"stem width {stem}")
        if stem % 64 == 0 and any(units):
            parts.insert(0, names.architecture_name(units, stem // 64))
    parts.append(f"{head[0]}-way head" if head is not None else "no head")
    return ", ".join(parts)
