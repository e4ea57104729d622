"""Fine-tune BiT with Keras' own fit, on JAX, PyTorch or TensorFlow, with the BiT-HyperRule.

    KERAS_BACKEND=jax python examples/fine_tune_keras_fit.py --images my_photos/ \\
        --weights BiT-M-R50x1.npz
    KERAS_BACKEND=torch python examples/fine_tune_keras_fit.py --tiny   # offline, seconds
    KERAS_BACKEND=jax python examples/fine_tune_keras_fit.py --tiny --data_parallel

The HyperRule's pieces, composed in a few lines (docs/backends.md): its plan
(``bit_keras.hyperrule.hyperrule``: steps, schedule, resolution, MixUp), its stream
(``bit_keras.data.train_dataset``, a tf.data pipeline that Keras feeds to any backend), the
zero-initialized head (``bit_keras.load(..., num_classes=N)``), SGD with momentum 0.9 and the
HyperRule schedule, and Keras' ``fit``. ``--data_parallel`` (JAX) shards each batch over the
devices with ``keras.distribution.DataParallel``.
"""

import os
import tempfile

from absl import app, flags

flags.DEFINE_string("images", None, "Folder of class subfolders.")
flags.DEFINE_string("model", "BiT-M-R50x1", "BiT model name.")
flags.DEFINE_string("weights", None, "Its checkpoint (default: the cache, or a download).")
flags.DEFINE_integer("batch", 64, "Global batch size (the HyperRule scales lr and steps).")
flags.DEFINE_integer("steps", None, "Stretch the schedule to this many steps.")
flags.DEFINE_bool("data_parallel", False, "JAX: keras.distribution.DataParallel over devices.")
flags.DEFINE_bool("tiny", False, "Run offline in seconds on made-up images and a tiny model.")
FLAGS = flags.FLAGS


def main(_):
    import keras

    import bit_keras

    work = tempfile.mkdtemp()
    images, model_name, weights = FLAGS.images, FLAGS.model, FLAGS.weights
    batch, steps, sizes = FLAGS.batch, FLAGS.steps, {}
    if FLAGS.tiny:
        from _tiny_data import write_image_folder, write_tiny_checkpoint
        images = write_image_folder(os.path.join(work, "photos"))
        model_name, weights = "R14x1", write_tiny_checkpoint(os.path.join(work, "r14.npz"))
        batch, steps, sizes = 6, 8, dict(resize=36, crop=32)
    if FLAGS.data_parallel:
        keras.distribution.set_distribution(keras.distribution.DataParallel())

    source = bit_keras.data.load_source(images, "train")
    hp = bit_keras.hyperrule.hyperrule(source.num_examples, source.median_image_area(),
                                       batch=batch, steps=steps)
    resize, crop = sizes.get("resize", hp.resize), sizes.get("crop", hp.crop)
    stream = bit_keras.data.train_dataset(source, hp.batch, resize, crop, hp.mixup_alpha)
    model = bit_keras.load(model_name, weights=weights, num_classes=source.num_classes)
    model.compile(keras.optimizers.SGD(hp.schedule(), momentum=hp.momentum),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    history = model.fit(stream, steps_per_epoch=hp.steps, epochs=1, verbose=0, shuffle=False)
    loss = history.history["loss"][0]
    path = bit_keras.save_npz(model, os.path.join(work, "fine_tuned.npz"))
    print(f"backend {keras.backend.backend()}: {hp.describe()}\n"
          f"mean loss {loss:.4f} over {hp.steps} steps, weights {path}")


if __name__ == "__main__":
    app.run(main)
