"""The BiT network: a pre-activation ResNet-v2 with GroupNorm and Weight Standardization.

Built exactly as the official code builds it (arXiv 1912.11370; ``docs/design.md``, "The BiT
model"), as a functional Keras 3 model with flat, deterministic layer names. Layer names are
the checkpoint contract: ``bit_keras.checkpoints.keys`` maps them to the official key layout.
``BiTModel`` keeps its architecture as public attributes (keras-hub's ``Backbone`` idiom), so
nothing downstream recovers it from the model's name.
"""

import keras

from bit_keras import layers as bit_layers
from bit_keras.models import variants
from bit_keras.models.plan import OUTPUT_STRIDES, block_plan
from bit_keras.utils import checks

# Block b has 64 * width * 2**(b-1) bottleneck channels and 4x that at its output.
BASE_FILTERS = 64
EXPANSION = 4
# Names of the multi-scale feature outputs (see ``feature_extractor``).
FEATURE_NAMES = ("stem", "block1", "block2", "block3", "block4", "pre_logits")
BLOCK_NAMES = FEATURE_NAMES[1:5]  # the four blocks' outputs (a feature pyramid)


def unit_prefix(block, unit):
    return f"block{block}_unit{unit:02d}"


def _conv(filters, kernel_size, strides, name, padding="valid", dtype=None, dilation=1):
    return bit_layers.StandardizedConv2D(
        filters, kernel_size, strides=strides, padding=padding, dilation_rate=dilation,
        use_bias=False, name=name, dtype=dtype)


def apply_unit(x, filters, strides, prefix, groups, dtype=None, dilation=1, drop_path=0.0):
    """One pre-activation bottleneck unit; the stride (or the dilation) sits on the 3x3
    convolution; ``drop_path`` > 0 drops the branch per example in training."""
    preact = bit_layers.GroupNormalization(
        groups, activation="relu", name=f"{prefix}_a_gn", dtype=dtype)(x)
    shortcut = x
    if strides != 1 or x.shape[-1] != filters * EXPANSION:
        shortcut = _conv(filters * EXPANSION, 1, strides, f"{prefix}_proj_conv", dtype=dtype)(preact)
    y = _conv(filters, 1, 1, f"{prefix}_a_conv", dtype=dtype)(preact)
    y = bit_layers.GroupNormalization(groups, activation="relu", name=f"{prefix}_b_gn", dtype=dtype)(y)
    if strides == 1:
        # Symmetric padding of 1 (of the dilation) is what 'same' does for a 3x3 kernel at
        # stride 1.
        y = _conv(filters, 3, 1, f"{prefix}_b_conv", padding="same", dtype=dtype,
                  dilation=dilation)(y)
    else:
        # At stride 2 'same' would pad (0, 1); the weights were trained with (1, 1).
        y = keras.layers.ZeroPadding2D(1, name=f"{prefix}_b_pad", dtype=dtype)(y)
        y = _conv(filters, 3, strides, f"{prefix}_b_conv", dtype=dtype)(y)
    y = bit_layers.GroupNormalization(groups, activation="relu", name=f"{prefix}_c_gn", dtype=dtype)(y)
    y = _conv(filters * EXPANSION, 1, 1, f"{prefix}_c_conv", dtype=dtype)(y)
    if drop_path:
        y = bit_layers.DropPath(drop_path, name=f"{prefix}_drop_path", dtype=dtype)(y)
    return bit_layers.ResidualAdd(name=f"{prefix}_add", dtype=dtype)([y, shortcut])


def apply_stem(x, filters, dtype=None):
    """7x7/2 convolution and 3x3/2 max-pool, each after explicit zero padding."""
    x = keras.layers.ZeroPadding2D(3, name="root_pad", dtype=dtype)(x)
    x = _conv(filters, 7, 2, "root_conv", dtype=dtype)(x)
    # Zero (not -inf) padding before the pool is what the weights were trained with.
    x = keras.layers.ZeroPadding2D(1, name="root_pool_pad", dtype=dtype)(x)
    return keras.layers.MaxPooling2D(3, strides=2, padding="valid", name="stem", dtype=dtype)(x)


def _check_spec(units, width, num_classes, include_top, base_filters, groups, output_stride,
                drop_path_rate):
    units = tuple(units)
    if not 1 <= len(units) <= 4 or not all(checks._is_int(u) and u >= 1 for u in units):
        raise ValueError("units must be one to four positive ints, one per block (BiT has "
                         f"four; ViT-hybrids three). Received: units={units!r}")
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}. Received: "
                         f"output_stride={output_stride!r}")
    if not isinstance(drop_path_rate, (int, float)) or isinstance(drop_path_rate, bool) \
            or not 0 <= drop_path_rate < 1:
        raise ValueError("drop_path_rate must be a number in [0, 1). Received: "
                         f"drop_path_rate={drop_path_rate!r}")
    checks.positive_int(width, "width")
    checks.positive_int(base_filters, "base_filters")
    checks.positive_int(groups, "groups")
    if include_top:
        checks.positive_int(num_classes, "num_classes",
                            accepted="a positive int when include_top=True")
    return tuple(int(u) for u in units)


def _top(x, num_classes, include_top):
    if include_top:
        return keras.layers.Dense(num_classes, kernel_initializer="zeros", name="head",
                                  dtype="float32")(x)
    return keras.layers.Activation("linear", name="features", dtype="float32")(x)


def _graph(units, width, num_classes, include_top, base_filters, groups, input_shape, dtype,
           output_stride=32, drop_path_rate=0.0):
    images = keras.Input(shape=input_shape, name="images")
    # Images come in [0, 1]; the BiT weights expect [-1, 1] (the official (x - 127.5) / 127.5).
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="rescale", dtype=dtype)(images)
    x = apply_stem(x, base_filters * width, dtype=dtype)
    for b, u, strides, dilation, drop_path in block_plan(units, output_stride, drop_path_rate):
        filters = base_filters * width * 2 ** (b - 1)
        x = apply_unit(x, filters, strides, unit_prefix(b, u), groups, dtype=dtype,
                       dilation=dilation, drop_path=drop_path)
        if u == units[b - 1]:
            x = keras.layers.Identity(name=f"block{b}", dtype=dtype)(x)
    x = bit_layers.GroupNormalization(groups, activation="relu", name="final_gn", dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(name="pre_logits", dtype=dtype)(x)
    return images, _top(x, num_classes, include_top)


@keras.saving.register_keras_serializable(package="bit_keras")
class BiTModel(keras.Model):
    """A BiT ResNet-v2 of any depth and width that knows its own architecture.

    A functional ``keras.Model`` (float32 images in [0, 1] -> logits, or pre-logits features)
    whose constructor arguments are public attributes and its ``get_config``, so the model
    round-trips through ``.keras`` files and the HyperRule, ``fine_tune`` and the exporter
    read the architecture from it. ``bit_keras.build``/``load`` name the published models;
    ``bit_keras.resnet_v2`` is this constructor.

    Args:
        units: units per block, e.g. ``(3, 4, 6, 3)`` for R50 (one to four blocks; the
            ViT-hybrids use three).
        width: width multiplier; block b has ``base_filters * width * 2**(b-1)``
            bottleneck channels.
        num_classes: size of the zero-initialized head (ignored when ``include_top=False``).
        include_top: if False, the model outputs the pooled pre-logits features
            (``base_filters * width * 32`` of them: 2048 * width for BiT).
        base_filters: 64 for BiT; smaller values make tiny test models.
        groups: GroupNorm groups, 32 for BiT.
        input_shape: NHWC shape without batch; height and width may be None.
        variant: the ``bit_keras.VARIANTS`` name the model was built as, or None.
        output_stride: 32 (BiT), or 16 or 8 for dense prediction: the later blocks keep
            their resolution and dilate their 3x3 convolutions (the same weights).
        drop_path_rate: stochastic depth, the drop probability of the last unit's branch
            in training (rising linearly from 0 over the units); 0 (the default) adds no
            layer, and it is the identity at inference.
        dtype: a Keras dtype policy name such as ``"mixed_bfloat16"``; the head always
            computes in float32.
        name: the model name.
        backbone: a ``BiTModel`` whose layers up to ``pre_logits`` this model shares (a new
            head on a trained backbone, as ``fine_tune`` does); not saved in the config.

    Example:

    >>> model = bit_keras.models.BiTModel(units=(2, 2, 2, 2), width=1, num_classes=10)
    >>> model.units, model.architecture
    ((2, 2, 2, 2), 'R26x1')
    """

    def __init__(self, units=(3, 4, 6, 3), width=1, num_classes=1000, include_top=True,
                 base_filters=BASE_FILTERS, groups=bit_layers.GN_GROUPS,
                 input_shape=(None, None, 3), variant=None, dtype=None, name=None,
                 backbone=None, output_stride=32, drop_path_rate=0.0, **kwargs):
        units = _check_spec(units, width, num_classes, include_top, base_filters, groups,
                            output_stride, drop_path_rate)
        num_classes = int(num_classes) if include_top else None
        if backbone is None:
            images, outputs = _graph(units, width, num_classes, include_top, base_filters,
                                     groups, input_shape, dtype, output_stride,
                                     float(drop_path_rate))
        else:
            images = backbone.input
            outputs = _top(backbone.get_layer("pre_logits").output, num_classes, include_top)
        name = name or f"bit_{variants.architecture_name(units, width).lower()}"
        super().__init__(inputs=images, outputs=outputs, name=name, **kwargs)
        self.units, self.width, self.num_classes = units, int(width), num_classes
        self.include_top, self.base_filters, self.groups = bool(include_top), base_filters, groups
        self.variant, self.compute_policy = variant, dtype
        self.output_stride, self.drop_path_rate = output_stride, float(drop_path_rate)

    # fit, evaluate and predict trace these steps for their own runs, never for an artefact:
    # the compiled kernels may run there (bit_keras.layers.compiled_kernels).
    def train_step(self, *args, **kwargs):
        with bit_layers.compiled_kernels():
            return super().train_step(*args, **kwargs)

    def test_step(self, *args, **kwargs):
        with bit_layers.compiled_kernels():
            return super().test_step(*args, **kwargs)

    def predict_step(self, *args, **kwargs):
        with bit_layers.compiled_kernels():
            return super().predict_step(*args, **kwargs)

    @property
    def architecture(self):
        """The ``R50x1`` style name of the architecture."""
        return variants.architecture_name(self.units, self.width)

    @property
    def feature_size(self):
        """How many pre-logits features the model has: ``base_filters * width * 32`` for
        four blocks (``EXPANSION * 2**(blocks - 1)`` times ``base_filters * width``)."""
        return self.base_filters * self.width * EXPANSION * 2 ** (len(self.units) - 1)

    def spec(self):
        """The constructor arguments that fix the architecture (not the name or weights)."""
        return dict(units=self.units, width=self.width, num_classes=self.num_classes,
                    include_top=self.include_top, base_filters=self.base_filters,
                    groups=self.groups, input_shape=tuple(self.input_shape[1:]),
                    variant=self.variant, dtype=self.compute_policy,
                    output_stride=self.output_stride, drop_path_rate=self.drop_path_rate)

    def get_config(self):
        spec = self.spec()
        return {**spec, "units": list(spec["units"]), "input_shape": list(spec["input_shape"]),
                "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["units"] = tuple(config["units"])
        config["input_shape"] = tuple(config["input_shape"])
        return cls(**config)


def resnet_v2(units=(3, 4, 6, 3), width=1, num_classes=1000, include_top=True,
              base_filters=BASE_FILTERS, groups=bit_layers.GN_GROUPS, input_shape=(None, None, 3),
              dtype=None, name=None, output_stride=32, drop_path_rate=0.0):
    """Builds a BiT ResNet-v2 of any depth and width, randomly initialized.

    Use ``bit_keras.build`` for the named BiT models; this generic builder serves small
    models (R26, the tiny test models) with no special code. The arguments are those of
    ``bit_keras.models.BiTModel``.

    Returns:
        A ``BiTModel`` mapping float32 images in [0, 1] to logits (or features).

    Example:

    >>> model = bit_keras.resnet_v2(units=(2, 2, 2, 2), width=1, num_classes=10)
    >>> logits = model(np.random.rand(2, 64, 64, 3).astype("float32"))
    """
    return BiTModel(units, width, num_classes, include_top, base_filters, groups, input_shape,
                    dtype=dtype, name=name, output_stride=output_stride,
                    drop_path_rate=drop_path_rate)


def spec_of(model):
    """The architecture of a BiT model: its own spec, or ``None`` for another Keras model."""
    return model.spec() if isinstance(model, BiTModel) else None


def feature_extractor(model, names=FEATURE_NAMES, name=None):
    """A model with the same weights whose outputs are named intermediate features.

    Args:
        model: a BiT model from ``bit_keras.build``/``load``/``resnet_v2``.
        names: any of ``"stem"``, ``"block1"`` .. ``"block4"`` (pre-activation block
            outputs, strides 4, 4, 8, 16, 32, or at most the model's ``output_stride``) and
            ``"pre_logits"``; blocks the model has.
        name: the new model's name (default ``<model name>_features``).

    Returns:
        A ``keras.Model`` returning a dict name -> tensor, sharing ``model``'s variables.

    Example:

    >>> backbone = bit_keras.feature_extractor(bit_keras.build("BiT-M-R50x1"))
    >>> feats = backbone(images)  # feats["block3"] has stride 16
    """
    valid = [n for n in FEATURE_NAMES if any(layer.name == n for layer in model.layers)]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"Unknown feature names {unknown}. Valid names for this model are: "
                         f"{valid}")
    outputs = {n: model.get_layer(n).output for n in names}
    return keras.Model(model.input, outputs, name=name or f"{model.name}_features")
