"""The networks the benchmark times: ``bit_keras``'s BiT and the plain reference, same weights."""

import numpy as np

from benchmarks import reference

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def check_dtype(dtype):
    if dtype not in POLICIES:
        raise ValueError(f"dtype must be one of {list(POLICIES)}. Received: dtype={dtype!r}")
    return POLICIES[dtype]


def random_weights(model, seed=0):
    """Gives ``model`` deterministic random weights, including a non-zero head and GroupNorms.

    Fresh BiT models have a zero head (all logits 0) and identity GroupNorms; random affine
    GroupNorm parameters and a random head make top-1 comparisons meaningful.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if w.name == "gamma":
                values.append(rng.uniform(0.5, 1.5, shape))
            elif w.name == "beta":
                values.append(rng.normal(0.0, 0.2, shape))
            elif w.name == "bias":
                values.append(np.zeros(shape))
            else:
                fan_in = int(np.prod(shape[:-1]))
                values.append(rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape))
        if values:
            layer.set_weights([v.astype(np.float32) for v in values])
    return model


def pair(arch, dtype="float32", seed=0, include_reference=True):
    """(bit_keras model, reference model or None), built from ``arch`` with the same weights.

    Args:
        arch: dict with ``units``, ``width``, ``base_filters``, ``groups``, ``num_classes``.
        dtype: ``"float32"`` or ``"bfloat16"`` (mixed: float32 variables and statistics).
        seed: the weights' seed; the same seed gives the same weights in every dtype.
        include_reference: also build the plain reference.
    """
    import bit_keras
    policy = check_dtype(dtype)
    ours = bit_keras.resnet_v2(arch["units"], arch["width"], num_classes=arch["num_classes"],
                               base_filters=arch["base_filters"], groups=arch["groups"],
                               dtype=policy)
    random_weights(ours, seed)
    ref = None
    if include_reference:
        ref = reference.reference_bit(arch["units"], arch["width"], arch["num_classes"],
                                      arch["base_filters"], arch["groups"], dtype=policy)
        reference.copy_weights(ours, ref)
    return ours, ref

