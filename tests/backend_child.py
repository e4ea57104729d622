"""The child process of ``test_backends.py``: bit_keras on one Keras backend (jax or torch).

Run as ``KERAS_BACKEND=jax python tests/backend_child.py JOB.json`` (pytest collects nothing
here; ``KERAS_BACKEND`` is read once, when Keras is imported, hence a process per backend).
It loads every checkpoint layout the parent wrote, runs the model, round-trips ``save_npz``
and ``.keras`` files, folds the standardization, takes a few ``fit`` steps, and writes what
it saw to ``JOB["out"]`` (an .npz) for the parent to compare.
"""

import json
import os
import sys

import numpy as np


def main(job_path):
    with open(job_path) as f:
        job = json.load(f)
    import keras

    import bit_keras
    spec = job["spec"]
    images = np.load(job["images"])
    out = {"backend": np.asarray(keras.backend.backend())}

    def fresh(**overrides):
        return bit_keras.resnet_v2(**{**spec, **overrides})

    def run(model, x=images):
        return keras.ops.convert_to_numpy(model(x, training=False))

    for layout, path in job["checkpoints"].items():
        model = fresh()
        bit_keras.load_weights(model, path)
        out[f"logits/{layout}"] = run(model)
    # The model side never needs TensorFlow: building, loading and running it did not import it.
    out["tensorflow_imported"] = np.asarray("tensorflow" in sys.modules)

    model = fresh()
    bit_keras.load_weights(model, job["checkpoints"]["official"])
    features = bit_keras.feature_extractor(model, ("block3", "pre_logits"))(images)
    out["features/pre_logits"] = keras.ops.convert_to_numpy(features["pre_logits"])
    out["features/block3_shape"] = np.asarray(features["block3"].shape)
    bit_keras.save_npz(model, os.path.join(job["dir"], "saved.npz"))
    again = fresh()
    bit_keras.load_weights(again, os.path.join(job["dir"], "saved.npz"))
    out["logits/save_npz_round_trip"] = run(again)
    model.save(os.path.join(job["dir"], "model.keras"))
    out["logits/keras_file"] = run(keras.saving.load_model(os.path.join(job["dir"],
                                                                        "model.keras")))
    out["logits/folded"] = run(bit_keras.fold_standardization(model))
    decoded = bit_keras.decode_predictions(run(model), list(job["class_names"]), top=2)
    out["decoded"] = np.asarray([[name for _, name, _ in row] for row in decoded])

    # Keras' own fit: every weight gets a gradient (each one moves under plain SGD), and
    # the loss falls on a batch seen again and again.
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights]
    model.compile(keras.optimizers.SGD(job["learning_rate"]),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    labels = np.eye(spec["num_classes"], dtype=np.float32)[
        np.arange(len(images)) % spec["num_classes"]]
    history = model.fit(images, labels, batch_size=len(images), epochs=job["epochs"],
                        verbose=0, shuffle=False)
    out["fit/loss"] = np.asarray(history.history["loss"])
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    out["fit/unchanged"] = np.asarray([w.path for w, a, b in
                                       zip(model.trainable_weights, after, before)
                                       if np.array_equal(a, b)] or [""])
    out["fit/weights"] = np.asarray(len(after))
    try:
        bit_keras.fine_tune()
        out["fine_tune_error"] = np.asarray("")
    except RuntimeError as e:
        out["fine_tune_error"] = np.asarray(str(e))
    np.savez(job["out"], **out)


if __name__ == "__main__":
    main(sys.argv[1])
