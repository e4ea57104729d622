"""The public entry points: ``bit_keras.build`` and ``bit_keras.load`` by model name."""

import os
import re

from bit_keras.checkpoints import cache, formats, transfer
from bit_keras.models import network as bit_model
from bit_keras.models import variants
from bit_keras.utils import checks

_ARCH = re.compile(r"^R(\d+)x(\d+)$")


def _resolve(name):
    """(architecture kwargs, upstream head size or None, label, variant name or None)."""
    m = _ARCH.match(name) if isinstance(name, str) else None
    if m and int(m.group(1)) in variants.UNITS:
        arch = dict(units=variants.UNITS[int(m.group(1))], width=int(m.group(2)))
        return arch, None, name, None
    v = variants.get_variant(name)
    return v.architecture_kwargs(), v.num_classes, v.name, v.name


def build(name, num_classes=None, include_top=True, input_shape=(None, None, 3), dtype=None,
          output_stride=32, drop_path_rate=0.0):
    """Builds a named BiT architecture with random weights and a zero-initialized head.

    Args:
        name: a name from ``bit_keras.VARIANTS`` (``"BiT-M-R50x1"``) or a bare architecture
            ``"R50x1"``/``"R26x2"`` (then ``num_classes`` is required with a head).
        num_classes: head size; ``None`` means the upstream head of that name (21843 for
            BiT-M, 1000 for BiT-S and ``-ILSVRC2012``, 18291 for BiT-L).
        include_top: if False, the model outputs the ``2048 * width`` pre-logits features.
        input_shape: NHWC without batch; any height and width by default.
        dtype: a Keras dtype policy name, e.g. ``"mixed_bfloat16"``.
        output_stride, drop_path_rate: for dense prediction (``bit_keras.BiTModel``): 16 or
            8 dilates the later blocks; stochastic depth in training. The same weights.

    Returns:
        A ``keras.Model`` taking float32 images in [0, 1].

    Example:

    >>> model = bit_keras.build("BiT-M-R50x1", num_classes=10)
    >>> logits = model(np.random.rand(1, 224, 224, 3).astype("float32"))
    """
    arch, upstream_classes, label, variant = _resolve(name)
    if num_classes is None:
        num_classes = upstream_classes
        if include_top and num_classes is None:
            what = "the bare architecture" if variant is None else "the headless variant"
            raise ValueError(f"num_classes is required for {what} {name!r} when "
                             "include_top=True. Received: num_classes=None")
    else:
        checks.positive_int(num_classes, "num_classes", allow_none=True)
    return bit_model.BiTModel(**arch, num_classes=num_classes, include_top=include_top,
                              input_shape=input_shape, variant=variant, dtype=dtype, name=label,
                              output_stride=output_stride, drop_path_rate=drop_path_rate)


def load(name, weights=None, num_classes=None, include_top=True, input_shape=(None, None, 3),
         dtype=None, output_stride=32, drop_path_rate=0.0):
    """Builds a named BiT model and loads its weights, strictly.

    Args:
        name: a name from ``bit_keras.VARIANTS`` or an ``"R50x1"`` style architecture.
        weights: a checkpoint path (``.npz`` official or timm, ``.h5`` official bit_tf2,
            ``.safetensors`` timm). ``None`` looks in ``$BIT_KERAS_HOME`` (default
            ``~/.keras/bit_keras``) and otherwise downloads the official file.
        num_classes: ``None`` keeps the checkpoint's own head; an int puts a fresh
            zero-initialized head of that size on the pre-trained backbone (BiT fine-tuning).
        include_top: if False, drop the head and output the pre-logits features.
        input_shape, dtype, output_stride, drop_path_rate: as for ``bit_keras.build``.

    Returns:
        The ``keras.Model`` with the checkpoint's weights.

    Raises:
        CheckpointError: the file is missing, corrupt or does not fit (the message lists
            what is missing, unexpected or of another shape), or cannot be downloaded.

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1", weights="BiT-M-R50x1.npz", num_classes=5)
    """
    arch, _, _, variant = _resolve(name)
    if weights is None:
        if variant is None:
            raise ValueError(f"weights= is required for the bare architecture {name!r}")
        weights = cache.fetch(variants.VARIANTS[variant], variants.BASE_URL)
    room = formats.architecture_params(arch["units"], arch["width"],
                                       arch.get("base_filters", 64))
    tensors = formats.read_checkpoint(os.fspath(weights), max_params=room)
    _, _, ckpt_classes = transfer.checkpoint_structure(tensors)
    keep_head = include_top and num_classes is None
    if keep_head and ckpt_classes is None:
        raise formats.CheckpointError(
            f"Checkpoint {weights} has no head; pass num_classes=N for a fresh head or "
            "include_top=False")
    model = build(name, num_classes=ckpt_classes if keep_head else num_classes,
                  include_top=include_top, input_shape=input_shape, dtype=dtype,
                  output_stride=output_stride, drop_path_rate=drop_path_rate)
    transfer.load_weights(model, _Named(tensors, weights), skip_head=not keep_head)
    return model


class _Named(dict):
    """Already-read tensors that remember the file they came from, for error messages."""

    def __init__(self, tensors, source):
        super().__init__(tensors)
        self.source = os.fspath(source)
