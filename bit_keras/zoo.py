"""The public entry points: ``bit_keras.build`` and ``bit_keras.load`` by model name."""

import os
import re

from bit_keras import checkpoint
from bit_keras import checkpoint_io
from bit_keras import model as bit_model
from bit_keras import variants
from bit_keras import weights_cache

_ARCH = re.compile(r"^R(\d+)x(\d+)$")


def _resolve(name):
    """(units, width, upstream head size or None) for a variant or an ``R50x1`` name."""
    m = _ARCH.match(name) if isinstance(name, str) else None
    if m and int(m.group(1)) in variants.UNITS:
        return variants.UNITS[int(m.group(1))], int(m.group(2)), None, name
    v = variants.get_variant(name)
    return v.units, v.width, v.num_classes, v.name


def build(name, num_classes=None, include_top=True, input_shape=(None, None, 3), dtype=None):
    """Builds a named BiT architecture with random weights and a zero-initialized head.

    Args:
        name: a name from ``bit_keras.VARIANTS`` (``"BiT-M-R50x1"``) or a bare architecture
            ``"R50x1"``/``"R26x2"`` (then ``num_classes`` is required with a head).
        num_classes: head size; ``None`` means the upstream head of that name (21843 for
            BiT-M, 1000 for BiT-S and ``-ILSVRC2012``, 18291 for BiT-L).
        include_top: if False, the model outputs the ``2048 * width`` pre-logits features.
        input_shape: NHWC without batch; any height and width by default.
        dtype: a Keras dtype policy name, e.g. ``"mixed_bfloat16"``.

    Returns:
        A ``keras.Model`` taking float32 images in [0, 1].

    Example:

    >>> model = bit_keras.build("BiT-M-R50x1", num_classes=10)
    >>> logits = model(np.random.rand(1, 224, 224, 3).astype("float32"))
    """
    units, width, upstream_classes, label = _resolve(name)
    if num_classes is None:
        num_classes = upstream_classes
        if include_top and num_classes is None:
            raise ValueError(
                f"num_classes is required for the bare architecture {name!r} when include_top=True. "
                "Received: num_classes=None")
    elif not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int or None. Received: num_classes={num_classes!r}")
    return bit_model.resnet_v2(units, width, num_classes=num_classes, include_top=include_top,
                               input_shape=input_shape, dtype=dtype, name=label)


def load(name, weights=None, num_classes=None, include_top=True, input_shape=(None, None, 3),
         dtype=None):
    """Builds a named BiT model and loads its weights, strictly.

    Args:
        name: a name from ``bit_keras.VARIANTS`` or an ``"R50x1"`` style architecture.
        weights: a checkpoint path (``.npz`` official or timm, ``.h5`` official bit_tf2,
            ``.safetensors`` timm). ``None`` looks in ``$BIT_KERAS_HOME`` (default
            ``~/.keras/bit_keras``) and otherwise downloads the official file.
        num_classes: ``None`` keeps the checkpoint's own head; an int puts a fresh
            zero-initialized head of that size on the pre-trained backbone (BiT fine-tuning).
        include_top: if False, drop the head and output the pre-logits features.
        input_shape, dtype: as for ``bit_keras.build``.

    Returns:
        The ``keras.Model`` with the checkpoint's weights.

    Raises:
        CheckpointError: the file is missing, corrupt or does not fit (the message lists
            what is missing, unexpected or of another shape), or cannot be downloaded.

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1", weights="BiT-M-R50x1.npz", num_classes=5)
    """
    if weights is None:
        _, _, _, label = _resolve(name)
        if label not in variants.VARIANTS:
            raise ValueError(f"weights= is required for the bare architecture {name!r}")
        weights = weights_cache.fetch(variants.VARIANTS[label], variants.BASE_URL)
    tensors = checkpoint_io.read_checkpoint(os.fspath(weights))
    _, _, ckpt_classes = checkpoint.checkpoint_structure(tensors)
    keep_head = include_top and num_classes is None
    if keep_head and ckpt_classes is None:
        raise checkpoint_io.CheckpointError(
            f"Checkpoint {weights} has no head; pass num_classes=N for a fresh head or "
            "include_top=False")
    model = build(name, num_classes=ckpt_classes if keep_head else num_classes,
                  include_top=include_top,
                  input_shape=input_shape, dtype=dtype)
    checkpoint.load_weights(model, _Named(tensors, weights), skip_head=not keep_head)
    return model


class _Named(dict):
    """Already-read tensors that remember the file they came from, for error messages."""

    def __init__(self, tensors, source):
        super().__init__(tensors)
        self.source = os.fspath(source)
