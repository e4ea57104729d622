"""bfloat16 against float32: does the faster precision still give the same answers?

Both models carry the same float32 weights; the bfloat16 one computes under Keras'
``mixed_bfloat16`` policy (bfloat16 activations and convolutions, float32 variables,
GroupNorm statistics and head). On random images with random weights we report the share of
images whose top-1 class agrees and the relative L2 error of the logits, and check them
against the documented tolerances below.
"""

import numpy as np

from benchmarks import models

# bfloat16 keeps 8 bits of mantissa (relative rounding 2**-9 = 0.2%); through ~50 layers
# the errors add up to a few percent of the logits' norm: measured 0.049 for R50x1 at 224
# and under 0.05 for the tiny test model (random weights), hence 0.08 with some headroom.
BF16_MAX_REL_ERROR = 0.08
BF16_MIN_TOP1_AGREEMENT = 0.90


def bfloat16_parity(arch, resolution, images=32, batch=8, seed=0):
    """Top-1 agreement and relative logit error of bfloat16 against float32.

    Args:
        arch: the architecture dict (see ``benchmarks.models.pair``).
        resolution: the square image side.
        images: how many random images to compare.
        batch: the batch size used to run them.
        seed: seed of the weights and images.

    Returns:
        dict with ``top1_agreement``, ``rel_l2_error`` (||bf16 - f32|| / ||f32|| over all
        logits), ``max_rel_error`` (worst image), the tolerances and ``within_tolerance``.

    Example:

    >>> benchmarks.parity.bfloat16_parity(arch, 224)["top1_agreement"]
    """
    f32, _ = models.pair(arch, "float32", seed=seed, include_reference=False)
    bf16, _ = models.pair(arch, "bfloat16", seed=seed, include_reference=False)
    x = np.random.default_rng(seed + 1).uniform(
        0, 1, (images, resolution, resolution, 3)).astype(np.float32)
    want = np.concatenate([np.asarray(f32.predict_on_batch(x[i:i + batch]), np.float64)
                           for i in range(0, images, batch)])
    got = np.concatenate([np.asarray(bf16.predict_on_batch(x[i:i + batch]), np.float64)
                          for i in range(0, images, batch)])
    per_image = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
    result = {
        "images": images, "resolution": resolution,
        "top1_agreement": float(np.mean(got.argmax(1) == want.argmax(1))),
        "rel_l2_error": float(np.linalg.norm(got - want) / np.linalg.norm(want)),
        "max_rel_error": float(per_image.max()),
        "tolerance_rel_l2_error": BF16_MAX_REL_ERROR,
        "tolerance_top1_agreement": BF16_MIN_TOP1_AGREEMENT,
    }
    result["within_tolerance"] = bool(result["rel_l2_error"] <= BF16_MAX_REL_ERROR and
                                      result["top1_agreement"] >= BF16_MIN_TOP1_AGREEMENT)
    return result
