"""Pre-train BiT upstream on your own data with the paper's recipe, then reuse the weights.

    python examples/pretrain_own_data.py --images my_big_dataset/ --model R50x1 --batch 4096
    python examples/pretrain_own_data.py --tiny

The result is an official-layout .npz: bit_keras.load, fine_tune, export, timm and big_vision
take it unchanged.
"""

import os
import tempfile

from absl import app, flags

flags.DEFINE_string("images", None, "Folder of class subfolders, or a TFDS name.")
flags.DEFINE_string("model", "R50x1", "Architecture.")
flags.DEFINE_integer("batch", 4096, "Global batch.")
flags.DEFINE_string("run_dir", None, "Checkpoints, metrics and weights.npz.")
flags.DEFINE_bool("tiny", False, "Run offline in seconds on made-up images.")
FLAGS = flags.FLAGS


def main(_):
    import numpy as np

    import bit_keras

    work = tempfile.mkdtemp()
    images, options = FLAGS.images, dict(batch=FLAGS.batch)
    if FLAGS.tiny:
        from _tiny_data import write_image_folder
        images = write_image_folder(os.path.join(work, "upstream"))
        options = dict(batch=6, steps=4, crop=32)
    source = bit_keras.data.load_source(images)
    model = bit_keras.build(FLAGS.model if not FLAGS.tiny else "R14x1", num_classes=source.num_classes)
    result = bit_keras.pretrain(model, source, run_dir=FLAGS.run_dir or os.path.join(work, "run"), **options)
    print(result.plan.describe())
    again = bit_keras.load(FLAGS.model if not FLAGS.tiny else "R14x1", weights=result.weights_path)
    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype("float32")
    print("reloaded from", result.weights_path, "same logits:",
          bool(np.array_equal(np.asarray(again(x)), np.asarray(result.model(x)))))


if __name__ == "__main__":
    app.run(main)
