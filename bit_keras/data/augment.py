"""Per-image augmentations and batch mixup, all stateless: same seed, same pixels.

``hyperrule`` is the official BiT fine-tuning preprocessing (``input_pipeline_tf2_or_jax.py``):
bilinear resize to a square, random square crop, horizontal flip, except that the flip is
random: the official code flips every image (google-research/big_transfer issue #62).
``inception`` is the upstream (pre-training) crop of the paper: a random box of 5-100% of
the area with aspect ratio 3/4..4/3, resized to the crop size, and a random flip.
"""

import tensorflow as tf

AUGMENTATIONS = ("hyperrule", "inception")
INCEPTION_AREA = (0.05, 1.0)  # as big_vision's inception_crop (area_min=5 percent)
INCEPTION_ASPECT = (3 / 4, 4 / 3)


def training(image, seed, augment, resize, crop):
    """``hyperrule`` or ``inception``, as ``augment`` names it (``resize`` unused by the
    latter)."""
    if augment == "hyperrule":
        return hyperrule(image, seed, resize, crop)
    return inception(image, seed, crop)


def hyperrule(image, seed, resize, crop):
    """Resize to ``resize`` x ``resize``, random ``crop`` x ``crop`` crop, random flip."""
    crop_seed, flip_seed = _split(seed)
    image = tf.image.resize(image, [resize, resize])
    image = tf.image.stateless_random_crop(image, [crop, crop, 3], seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def inception(image, seed, crop):
    """Inception-style random-resized crop to ``crop`` x ``crop``, random flip."""
    box_seed, flip_seed = _split(seed)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([0, 0, 4]), seed=box_seed,
        min_object_covered=0.0, aspect_ratio_range=INCEPTION_ASPECT,
        area_range=INCEPTION_AREA, max_attempts=100, use_image_if_no_bounding_boxes=True)
    image = tf.slice(image, begin, size)
    image = tf.image.resize(image, [crop, crop])
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def center(image, crop):
    """The evaluation preprocessing of the official code: resize to ``crop`` x ``crop``."""
    return tf.image.resize(image, [crop, crop])


def mixup(images, labels, alpha, seed):
    """Mixes the batch with itself reversed, one Beta(alpha, alpha) weight per batch.

    As the official BiT code: ``x = l * x + (1 - l) * reverse(x)``, labels likewise.
    """
    gammas = tf.random.stateless_gamma([2], seed=seed, alpha=tf.constant(alpha, tf.float64),
                                       dtype=tf.float64)
    total = gammas[0] + gammas[1]
    # Beta(a, a) = G1 / (G1 + G2); both gammas can underflow to 0 for tiny alpha.
    weight = tf.cast(tf.where(total > 0, gammas[0] / total, 0.5), tf.float32)
    images = weight * images + (1 - weight) * tf.reverse(images, axis=[0])
    labels = weight * labels + (1 - weight) * tf.reverse(labels, axis=[0])
    return images, labels


def _split(seed):
    seeds = tf.random.experimental.stateless_split(seed, 2)
    return seeds[0], seeds[1]
