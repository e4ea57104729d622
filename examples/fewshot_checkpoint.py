"""Few-shot evaluation of a BiT checkpoint: 1/5/10/25-shot linear probe, several seeds.

    python examples/fewshot_checkpoint.py --model BiT-M-R50x1 --weights BiT-M-R50x1.npz --dataset cifar10
    python examples/fewshot_checkpoint.py --tiny
"""

import os
import tempfile

from absl import app, flags

flags.DEFINE_string("model", "BiT-M-R50x1", "BiT model name.")
flags.DEFINE_string("weights", None, "Its checkpoint (default: the cache, or a download).")
flags.DEFINE_string("dataset", "cifar10", "TFDS name or folder (train and test splits).")
flags.DEFINE_integer("image_size", 128, "Side the images are resized to.")
flags.DEFINE_bool("tiny", False, "Run offline in seconds on the synthetic dataset.")
FLAGS = flags.FLAGS


def main(_):
    import bit_keras
    from bit_keras import fewshot

    name, weights, train, test, size, shots = (FLAGS.model, FLAGS.weights, FLAGS.dataset,
                                               FLAGS.dataset, FLAGS.image_size, (1, 5, 10, 25))
    if FLAGS.tiny:
        from _tiny_data import write_tiny_checkpoint

        import bit_keras.datasets as synthetic
        name, weights = "R14x1", write_tiny_checkpoint(os.path.join(tempfile.mkdtemp(), "r14.npz"))
        train = synthetic.generate("downstream", "train", 5, image_size=32)
        test = synthetic.generate("downstream", "test", 2, image_size=32)
        size, shots = 32, (1, 5)
    model = bit_keras.load(name, weights=weights, include_top=False)
    result = fewshot.evaluate(model, train, test, shots=shots, seeds=3, image_size=size)
    print(fewshot.format_table({name: result}))


if __name__ == "__main__":
    app.run(main)
