"""``python -m bit_keras.fewshot``: few-shot linear-probe evaluation of a BiT model.

Examples:

    python -m bit_keras.fewshot --model BiT-M-R50x1 --weights BiT-M-R50x1.npz \\
        --dataset cifar10 --image_size 128 --shots 1,5,10,25 --seeds 3 --out fewshot.json
    python -m bit_keras.fewshot --saved_model export/bit_m-r50x1_fv \\
        --dataset bit_synthetic/downstream --data_dir /tmp/tfds
"""

import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A BiT name (BiT-M-R50x1) or architecture (R50x1).")
flags.DEFINE_string("weights", None, "Checkpoint for --model (.npz/.h5/.safetensors); "
                    "default: the official file, downloaded once.")
flags.DEFINE_string("saved_model", None, "A feature-vector SavedModel directory, instead of "
                    "--model.")
flags.DEFINE_string("dataset", "bit_synthetic/downstream",
                    "A TFDS name or a folder with train/ and test/ class subfolders.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_string("train_split", "train", "Split to draw the shots from.")
flags.DEFINE_string("test_split", "test", "Split to measure accuracy on.")
flags.DEFINE_list("shots", ["1", "5", "10", "25"], "Examples per class, comma-separated.")
flags.DEFINE_integer("seeds", 3, "Number of seeds (0, 1, ...).")
flags.DEFINE_float("l2_reg", 2.0 ** 10, "L2 regularization of the linear probe.")
flags.DEFINE_integer("batch_size", 64, "Images per feature batch.")
flags.DEFINE_integer("image_size", None, "Resize images to this square size (default: "
                     "their own size when they all share one).")
flags.DEFINE_string("out", None, "Write the results as JSON here.")


def run(model=None, weights=None, saved_model=None, dataset="bit_synthetic/downstream",
        data_dir=None, train_split="train", test_split="test", shots=(1, 5, 10, 25), seeds=3,
        l2_reg=2.0 ** 10, batch_size=64, image_size=None, out=None):
    """What the command line does: load a model, run the linear probe, print, write JSON.

    Args:
        model, weights: a BiT name and checkpoint for ``bit_keras.load`` (features:
            pre-logits), or
        saved_model: a feature-vector SavedModel directory (``bit_keras.export``).
        The others: as for ``bit_keras.fewshot.evaluate``; ``out`` is a JSON path.

    Returns:
        The ``FewShotResult`` (its table is printed).

    Example:

    >>> bit_keras.fewshot_cli.run(saved_model="export/fv", dataset="bit_synthetic/downstream")
    """
    from bit_keras import fewshot
    if (model is None) == (saved_model is None):
        raise ValueError("give exactly one of model= (with weights=) and saved_model=. "
                         f"Received: model={model!r}, saved_model={saved_model!r}")
    if saved_model is not None:
        import tensorflow as tf
        feature_fn = tf.saved_model.load(saved_model)
        name = saved_model
    else:
        import bit_keras
        feature_fn = bit_keras.load(model, weights=weights, include_top=False)
        name = model
    result = fewshot.evaluate(feature_fn, dataset, dataset, shots=shots, seeds=seeds,
                              l2_reg=l2_reg, batch_size=batch_size, image_size=image_size,
                              train_split=train_split, test_split=test_split, data_dir=data_dir)
    print(fewshot.format_table({f"{name} (linear probe)": result}))
    if out:
        fewshot.write_json({name: result}, out)
        print(f"wrote {out}")
    return result


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        shots = [int(k) for k in FLAGS.shots]
    except ValueError:
        print(f"error: --shots must be comma-separated ints. Received: {','.join(FLAGS.shots)}",
              file=sys.stderr)
        return 1
    try:
        run(model=FLAGS.model, weights=FLAGS.weights, saved_model=FLAGS.saved_model,
            dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, train_split=FLAGS.train_split,
            test_split=FLAGS.test_split, shots=shots, seeds=FLAGS.seeds, l2_reg=FLAGS.l2_reg,
            batch_size=FLAGS.batch_size, image_size=FLAGS.image_size, out=FLAGS.out)
    except (ValueError, TypeError, OSError) as error:  # CheckpointError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def run_main():
    """Entry point of ``python -m bit_keras.fewshot``."""
    app.run(_main)


if __name__ == "__main__":
    run_main()
