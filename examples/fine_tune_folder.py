"""Fine-tune BiT on your own folder of images (one subfolder per class) with the BiT-HyperRule.

    python examples/fine_tune_folder.py --images my_photos/ --weights BiT-M-R50x1.npz
    python examples/fine_tune_folder.py --tiny      # offline, seconds: made-up images, tiny model
"""

import os
import tempfile

from absl import app, flags

flags.DEFINE_string("images", None, "Folder of class subfolders (or with train/ and test/).")
flags.DEFINE_string("model", "BiT-M-R50x1", "BiT model name.")
flags.DEFINE_string("weights", None, "Its checkpoint (default: the cache, or a download).")
flags.DEFINE_string("run_dir", None, "Where checkpoints, metrics and weights go.")
flags.DEFINE_integer("examples_per_class", None, "Few-shot: K images per class.")
flags.DEFINE_bool("tiny", False, "Run offline in seconds on made-up images and a tiny model.")
FLAGS = flags.FLAGS


def main(_):
    import bit_keras

    work = tempfile.mkdtemp()
    images, model_name, weights, extra = FLAGS.images, FLAGS.model, FLAGS.weights, {}
    if FLAGS.tiny:
        from _tiny_data import write_image_folder, write_tiny_checkpoint
        images = write_image_folder(os.path.join(work, "photos"))
        model_name, weights = "R14x1", write_tiny_checkpoint(os.path.join(work, "r14.npz"))
        extra = dict(batch=6, steps=6, resize=36, crop=32)
    model = bit_keras.load(model_name, weights=weights, include_top=False)  # the head fits the data
    result = bit_keras.fine_tune(model, images, run_dir=FLAGS.run_dir or os.path.join(work, "run"),
                                 examples_per_class=FLAGS.examples_per_class, **extra)
    print(f"{result.hyperparams.describe()}\nfinal step {result.step}, weights {result.weights_path}")


if __name__ == "__main__":
    app.run(main)
