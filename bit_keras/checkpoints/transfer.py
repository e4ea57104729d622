"""Strict, all-or-nothing transfer of checkpoint tensors into a BiT model, and back out.

Every checkpoint tensor is used once, every weight is set once, and skips (a replaced head)
are explicit. The whole file is validated before the model is touched, so a failed load
leaves the model exactly as it was.
"""

import numpy as np

from bit_keras.checkpoints import formats, keys
from bit_keras.checkpoints.formats import CheckpointError


def load_weights(model, weights, skip_head=False):
    """Loads a BiT checkpoint into ``model``, strictly.

    Args:
        model: a BiT model built by ``bit_keras.build`` or ``bit_keras.resnet_v2``.
        weights: a checkpoint path (``.npz``, ``.h5``, ``.safetensors``) or a dict in the
            official key layout.
        skip_head: leave the model's head as it is and ignore the checkpoint's head (the
            BiT fine-tuning practice of a fresh, zero-initialized head).

    Returns:
        The model, with its weights set.

    Raises:
        CheckpointError: listing missing keys, unexpected keys and shape mismatches, and
            which architecture the checkpoint looks like. The model is left unchanged.

    Example:

    >>> model = bit_keras.build("BiT-M-R50x1")
    >>> bit_keras.load_weights(model, "BiT-M-R50x1.npz")
    """
    expected = keys.model_to_official(model)
    if isinstance(weights, dict):
        source = getattr(weights, "source", "the given weights")
        tensors = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    else:
        tensors = formats.read_checkpoint(weights, max_params=_room(expected))
        source = str(weights)
    if skip_head:
        tensors = {k: v for k, v in tensors.items() if k not in keys.HEAD_KEYS}
        expected = {k: v for k, v in expected.items() if k not in keys.HEAD_KEYS}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tensors[k].shape} vs model {expected[k][1]}"
        for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != expected[k][1])
    if missing or unexpected or mismatched:
        raise CheckpointError(_mismatch_message(source, missing, unexpected, mismatched,
                                                tensors, expected))
    for key, (var, _) in expected.items():
        var.assign(keys.to_model_value(key, tensors[key]).astype(var.dtype))
    return model


def _room(expected):
    """The most values a checkpoint for a model holds: the model's weights, and a head of
    BiT-M's 21,843 classes on its widest features (checked before any array is read)."""
    shapes = [shape for _, shape in expected.values()]
    features = max((s[-1] for s in shapes if len(s) == 1), default=0)
    return (sum(int(np.prod(s)) for s in shapes)
            + (features + 1) * formats.LARGEST_HEAD)


def _listing(title, items, limit=12):
    if not items:
        return ""
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"\n  {title} ({len(items)}): " + "; ".join(items[:limit]) + more


def _mismatch_message(source, missing, unexpected, mismatched, tensors, expected):
    looks = keys.describe_architecture({k: v.shape for k, v in tensors.items()})
    model = keys.describe_architecture({k: v[1] for k, v in expected.items()})
    return (f"Checkpoint {source} does not fit the model."
            f"\n  The checkpoint looks like: {looks}.\n  The model is: {model}."
            + _listing("missing from the checkpoint", missing)
            + _listing("unexpected in the checkpoint", unexpected)
            + _listing("shape mismatches", mismatched))


def official_weights(model):
    """The model's weights as a dict in the official key layout (numpy float32)."""
    return {key: keys.to_official_value(key, np.asarray(var.numpy(), dtype=np.float32))
            for key, (var, _) in keys.model_to_official(model).items()}


LAYOUTS = {"official": lambda weights: weights, "timm": keys.official_to_timm,
           "big_vision": keys.official_to_big_vision}


def save_npz(model, path, layout="official"):
    """Saves a BiT model's weights as an ``.npz`` that other BiT code loads unchanged.

    Every layout loads back in ``bit_keras.load``. The official one loads in the official
    BiT PyTorch/JAX code, timm's ``_load_weights`` and big_vision's BiT loader. The file is written beside the
    target and renamed, so an interrupted save never leaves half a file.

    Args:
        model: a BiT model.
        path: the target file.
        layout: ``"official"``, ``"timm"`` (a timm ResNetV2 state dict, OIHW kernels) or
            ``"big_vision"`` (big_vision's ``bit_paper`` parameters under ``params/``, as its
            checkpoints hold them: ``config.model_init`` of a big_vision run loads the file).

    Example:

    >>> bit_keras.save_npz(model, "my-bit.npz")
    >>> same = bit_keras.load("BiT-M-R50x1", weights="my-bit.npz")
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}. Received: layout={layout!r}")
    weights = LAYOUTS[layout](official_weights(model))
    return formats.write_npz(weights, path)


def checkpoint_structure(weights):
    """(units per block, width, head size or None) of an official-layout dict."""
    units = []
    for b in range(1, 5):
        n = 0
        while f"{keys.PREFIX}block{b}/unit{n + 1:02d}/a/standardized_conv2d/kernel" in weights:
            n += 1
        units.append(n)
    root = weights.get(keys.ROOT_KEY)
    if root is None or not all(units):
        raise CheckpointError(
            "Cannot tell the architecture of the checkpoint: it lacks the stem kernel or a "
            f"block (units per block found: {tuple(units)})")
    head = weights.get(keys.HEAD_KEYS[1])
    return tuple(units), root.shape[-1], None if head is None else int(head.shape[0])
