"""Serving speed of an export against the Keras model's own inference, in one process.

    python benchmarks/export_speed.py --models tiny,R50x1 --batch 8 --size 224

For each model: the Keras model called directly (``model(x)``, eager dispatch of a
functional model), ``model.predict_on_batch`` (Keras' compiled inference function), and the
reloaded SavedModel's ``serving_default`` signature, plain and with
``fold_standardization=True``. Prints the median milliseconds per batch of ``--repeats`` runs
after two warm-up runs; the paths take turns so that other load on the machine hits all. Weights are random (speed does not depend on them).
"""

import os
import statistics
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["tiny", "R50x1"], "'tiny' (R14, base 16) or bit_keras architecture names.")
flags.DEFINE_integer("batch", 8, "Images per batch.")
flags.DEFINE_integer("size", 224, "Image side.")
flags.DEFINE_integer("repeats", 10, "Timed runs per path.")


def interleaved_median_ms(paths, repeats):
    """Median ms per call of each path; the paths take turns, so load changes hit all alike."""
    for fn in paths.values():
        fn()
        fn()
    times = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def measure(name, batch, size, repeats):
    """Median ms per batch for each inference path of one model (feature-vector kind)."""
    import numpy as np
    import tensorflow as tf

    import bit_keras  # first: it turns on TensorFlow's oneDNN kernels, as for users
    if name == "tiny":
        name = bit_keras.models.variants.TINY  # the registered tiny R14 (base 16, 8 groups)
    model = bit_keras.build(name, include_top=False)
    x = np.random.default_rng(0).uniform(0, 1, (batch, size, size, 3)).astype("float32")
    images = tf.constant(x)
    paths = {"keras model(x)": lambda: model(x, training=False).numpy(),
             "keras predict_on_batch": lambda: model.predict_on_batch(x)}
    with tempfile.TemporaryDirectory() as tmp:
        for fold in (False, True):
            path = bit_keras.export(model, os.path.join(tmp, f"fold{fold}"),
                                    fold_standardization=fold)
            serve = tf.saved_model.load(path).signatures["serving_default"]
            label = "savedmodel serving_default" + (" (folded)" if fold else "")
            paths[label] = lambda serve=serve: serve(images=images)["feature_vector"].numpy()
        return interleaved_median_ms(paths, repeats)


def main(argv):
    del argv
    for name in FLAGS.models:
        results = measure(name, FLAGS.batch, FLAGS.size, FLAGS.repeats)
        for path, ms in results.items():
            print(f"{name:8s} batch {FLAGS.batch} {FLAGS.size}x{FLAGS.size}  {path:36s} {ms:9.1f} ms")


if __name__ == "__main__":
    app.run(main)
