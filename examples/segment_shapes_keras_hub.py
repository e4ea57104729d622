"""Train keras-hub's DeepLabV3 on a BiT backbone: segment generated squares and discs.

A BiT preset folder (written by ``bit-keras preset`` or ``bit_keras.save_preset``) gives the
backbone through keras-hub's own ``Backbone.from_preset``; its pyramid (P2..P5, strides 4-32)
feeds keras-hub's ``DeepLabV3Backbone`` (atrous spatial pyramid pooling on P4, the decoder on
P2) and ``DeepLabV3ImageSegmenter``, trained with Keras' ``fit`` on images of random squares
(class 1) and discs (class 2) on a noisy background (class 0), each with its mask.

    bit-keras preset --model BiT-M-R50x1 --weights BiT-M-R50x1.npz --out presets/bit_m_r50x1
    python examples/segment_shapes_keras_hub.py --preset presets/bit_m_r50x1
    python examples/segment_shapes_keras_hub.py --tiny   # offline, minutes on 2 cores

Prints the loss of the first and the last epoch and the pixel accuracy.
"""

import os
import tempfile

import numpy as np
from absl import app, flags

flags.DEFINE_string("preset", None, "A BiT keras-hub preset folder (bit-keras preset).")
flags.DEFINE_integer("image_size", 128, "Side of the generated images.")
flags.DEFINE_integer("examples", 256, "How many generated images to train on.")
flags.DEFINE_integer("epochs", 10, "Training epochs.")
flags.DEFINE_integer("batch", 16, "Batch size.")
flags.DEFINE_bool("tiny", False, "Offline, in minutes: a tiny random BiT and small images.")
FLAGS = flags.FLAGS
CLASSES = ("background", "square", "disc")


def shapes(count, side, seed=0):
    """Raw 0-255 images with one square or disc each, and their (side, side, 1) masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    images = rng.uniform(0, 80, (count, side, side, 3))
    masks = np.zeros((count, side, side, 1), np.int32)
    for i in range(count):
        kind = 1 + i % 2
        r = rng.uniform(side / 8, side / 4)
        cy, cx = rng.uniform(r, side - r, 2)
        inside = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r) if kind == 1 else (
            (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
        masks[i, inside, 0] = kind
        images[i, inside] = rng.uniform(150, 255, 3)  # a colour of its own
    return images.astype(np.uint8), masks


def tiny_preset(folder):
    """A preset of a randomly initialized tiny BiT, as ``bit-keras preset`` writes one."""
    import keras

    import bit_keras
    from bit_keras.models import variants
    keras.utils.set_random_seed(0)
    model = bit_keras.resnet_v2(include_top=False,
                                **variants.VARIANTS[variants.TINY].architecture_kwargs())
    return bit_keras.save_preset(model, out_dir=os.path.join(folder, "tiny_preset"),
                                 image_size=FLAGS.image_size)


def main(_):
    import keras
    import keras_hub

    import bit_keras.keras_hub  # noqa: F401  (registers BiT's classes with keras-hub)

    if FLAGS.tiny:
        FLAGS.image_size, FLAGS.examples, FLAGS.epochs, FLAGS.batch = 64, 48, 6, 8
    preset = FLAGS.preset or tiny_preset(tempfile.mkdtemp())
    encoder = keras_hub.models.Backbone.from_preset(preset)           # a BiTBackbone
    converter = keras_hub.layers.ImageConverter.from_preset(preset)   # 0-255 -> [0, 1]
    side = FLAGS.image_size
    deeplab = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder, spatial_pyramid_pooling_key="P4", upsampling_size=4,
        dilation_rates=[2, 4] if FLAGS.tiny else [6, 12, 18], low_level_feature_key="P2",
        projection_filters=16 if FLAGS.tiny else 48, image_shape=(side, side, 3))
    segmenter = keras_hub.models.DeepLabV3ImageSegmenter(backbone=deeplab,
                                                         num_classes=len(CLASSES))
    segmenter.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    raw, masks = shapes(FLAGS.examples, side)
    # keras-hub's convention: raw pixels in, the converter resizes (here: already the
    # preset's size) and scales them to the [0, 1] BiT takes.
    images = keras.ops.convert_to_numpy(converter(raw))
    history = segmenter.fit(images, masks, batch_size=FLAGS.batch, epochs=FLAGS.epochs,
                            verbose=2)
    losses = history.history["loss"]
    print(f"loss first epoch {losses[0]:.4f} last epoch {losses[-1]:.4f}")
    print(f"pixel accuracy {history.history['accuracy'][-1]:.3f}")


if __name__ == "__main__":
    app.run(main)
