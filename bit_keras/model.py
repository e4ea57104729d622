"""The BiT network: a pre-activation ResNet-v2 with GroupNorm and Weight Standardization.

Built exactly as the official code builds it (arXiv 1912.11370; DESIGN.md "The BiT model"),
as a Keras 3 functional model with flat, deterministic layer names. Layer names are the
checkpoint contract: ``bit_keras.checkpoint_keys`` maps them to the official key layout.
"""

import keras

from bit_keras import layers as bit_layers

# Block b has 64 * width * 2**(b-1) bottleneck channels and 4x that at its output.
BASE_FILTERS = 64
EXPANSION = 4
# Names of the multi-scale feature outputs (see ``feature_extractor``).
FEATURE_NAMES = ("stem", "block1", "block2", "block3", "block4", "pre_logits")


def unit_prefix(block, unit):
    return f"block{block}_unit{unit:02d}"


def _conv(filters, kernel_size, strides, name, padding="valid", dtype=None):
    return bit_layers.StandardizedConv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        name=name, dtype=dtype)


def apply_unit(x, filters, strides, prefix, groups, dtype=None):
    """One pre-activation bottleneck unit; the stride sits on the 3x3 convolution."""
    preact = bit_layers.GroupNormalization(
        groups, activation="relu", name=f"{prefix}_a_gn", dtype=dtype)(x)
    shortcut = x
    if strides != 1 or x.shape[-1] != filters * EXPANSION:
        shortcut = _conv(filters * EXPANSION, 1, strides, f"{prefix}_proj_conv", dtype=dtype)(preact)
    y = _conv(filters, 1, 1, f"{prefix}_a_conv", dtype=dtype)(preact)
    y = bit_layers.GroupNormalization(groups, activation="relu", name=f"{prefix}_b_gn", dtype=dtype)(y)
    if strides == 1:
        # Symmetric padding of 1 is what 'same' does for a 3x3 kernel at stride 1.
        y = _conv(filters, 3, 1, f"{prefix}_b_conv", padding="same", dtype=dtype)(y)
    else:
        # At stride 2 'same' would pad (0, 1); the weights were trained with (1, 1).
        y = keras.layers.ZeroPadding2D(1, name=f"{prefix}_b_pad", dtype=dtype)(y)
        y = _conv(filters, 3, strides, f"{prefix}_b_conv", dtype=dtype)(y)
    y = bit_layers.GroupNormalization(groups, activation="relu", name=f"{prefix}_c_gn", dtype=dtype)(y)
    y = _conv(filters * EXPANSION, 1, 1, f"{prefix}_c_conv", dtype=dtype)(y)
    return keras.layers.Add(name=f"{prefix}_add", dtype=dtype)([y, shortcut])


def apply_stem(x, filters, dtype=None):
    """7x7/2 convolution and 3x3/2 max-pool, each after explicit zero padding."""
    x = keras.layers.ZeroPadding2D(3, name="root_pad", dtype=dtype)(x)
    x = _conv(filters, 7, 2, "root_conv", dtype=dtype)(x)
    # Zero (not -inf) padding before the pool is what the weights were trained with.
    x = keras.layers.ZeroPadding2D(1, name="root_pool_pad", dtype=dtype)(x)
    return keras.layers.MaxPooling2D(3, strides=2, padding="valid", name="stem", dtype=dtype)(x)


def resnet_v2(units=(3, 4, 6, 3), width=1, num_classes=1000, include_top=True,
              base_filters=BASE_FILTERS, groups=bit_layers.GN_GROUPS, input_shape=(None, None, 3),
              dtype=None, name=None):
    """Builds a BiT ResNet-v2 of any depth and width, randomly initialized.

    Use ``bit_keras.build`` for the named BiT models; this generic builder serves small
    models (R26, tiny test models) with no special code.

    Args:
        units: units per block, e.g. ``(3, 4, 6, 3)`` for R50.
        width: width multiplier; block b has ``base_filters * width * 2**(b-1)``
            bottleneck channels.
        num_classes: size of the zero-initialized head (ignored when ``include_top=False``).
        include_top: if False, the model outputs the pooled pre-logits features
            (``base_filters * width * 32`` of them: 2048 * width for BiT).
        base_filters: 64 for BiT; smaller values make tiny test models.
        groups: GroupNorm groups, 32 for BiT.
        input_shape: NHWC shape without batch; height and width may be None.
        dtype: a Keras dtype policy name such as ``"mixed_bfloat16"``; the head always
            computes in float32.
        name: the model name.

    Returns:
        A ``keras.Model`` mapping float32 images in [0, 1] to logits (or features).

    Example:

    >>> model = bit_keras.model.resnet_v2(units=(2, 2, 2, 2), width=1, num_classes=10)
    >>> logits = model(np.random.rand(2, 64, 64, 3).astype("float32"))
    """
    units = tuple(int(u) for u in units)
    if len(units) != 4 or min(units) < 1:
        raise ValueError(f"units must be four positive ints. Received: units={units!r}")
    if include_top and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(
            f"num_classes must be a positive int when include_top=True. Received: num_classes={num_classes!r}")
    images = keras.Input(shape=input_shape, name="images")
    # Images come in [0, 1]; the BiT weights expect [-1, 1] (the official (x - 127.5) / 127.5).
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="rescale", dtype=dtype)(images)
    x = apply_stem(x, base_filters * width, dtype=dtype)
    for b, n in enumerate(units, start=1):
        filters = base_filters * width * 2 ** (b - 1)
        for u in range(1, n + 1):
            strides = 2 if (u == 1 and b > 1) else 1
            x = apply_unit(x, filters, strides, unit_prefix(b, u), groups, dtype=dtype)
        x = keras.layers.Identity(name=f"block{b}", dtype=dtype)(x)
    x = bit_layers.GroupNormalization(groups, activation="relu", name="final_gn", dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(name="pre_logits", dtype=dtype)(x)
    if include_top:
        x = keras.layers.Dense(num_classes, kernel_initializer="zeros", name="head",
                               dtype="float32")(x)
    else:
        x = keras.layers.Activation("linear", name="features", dtype="float32")(x)
    name = name or f"bit_{architecture_tag(units, width)}"
    return keras.Model(images, x, name=name)


def architecture_tag(units, width):
    return f"r{3 * sum(units) + 2}x{width}"


def feature_extractor(model, names=FEATURE_NAMES):
    """A model with the same weights whose outputs are named intermediate features.

    Args:
        model: a BiT model from ``bit_keras.build``/``load``/``resnet_v2``.
        names: any of ``"stem"``, ``"block1"`` .. ``"block4"`` (pre-activation block
            outputs, strides 4, 4, 8, 16, 32) and ``"pre_logits"``.

    Returns:
        A ``keras.Model`` returning a dict name -> tensor, sharing ``model``'s variables.

    Example:

    >>> backbone = bit_keras.feature_extractor(bit_keras.build("BiT-M-R50x1"))
    >>> feats = backbone(images)  # feats["block3"] has stride 16
    """
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ValueError(f"Unknown feature names {unknown}. Valid names are: {list(FEATURE_NAMES)}")
    outputs = {n: model.get_layer(n).output for n in names}
    return keras.Model(model.input, outputs, name=f"{model.name}_features")


def model_structure(model):
    """(units per block, width, base_filters, groups, head size or None) read off a model."""
    names = [layer.name for layer in model.layers]
    units = tuple(sum(1 for n in names if n.startswith(f"block{b}_unit") and n.endswith("_add"))
                  for b in range(1, 5))
    root = model.get_layer("root_conv")
    head = _find(model, "head")
    gn = model.get_layer("final_gn")
    return {"units": units, "stem_filters": root.filters, "groups": gn.groups,
            "num_classes": head.units if head is not None else None}


def _find(model, name):
    for layer in model.layers:
        if layer.name == name:
            return layer
    return None
