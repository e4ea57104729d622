"""The child process of ``test_export.py``: reloads the exports where bit_keras cannot be imported.

Run as ``python tests/test_export_child.py JOB.json`` (pytest collects no tests here). It uses
TensorFlow, TF Hub, tf-keras and Keras 3 only, and writes what it saw (arrays and a JSON
record) for the parent's tests to compare with the Keras model.
"""

import sys

if __name__ == "__main__":  # bit_keras is installed everywhere: block it before anything.
    sys.modules["bit_keras"] = None

import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402


def main(job_path):
    import keras
    import tensorflow as tf
    import tensorflow_hub as hub
    import tf_keras

    with open(job_path) as f:
        job = json.load(f)
    with np.load(job["inputs"], allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files}
    arrays, record = {}, {"bit_keras_blocked": "bit_keras" in sys.modules
                          and sys.modules["bit_keras"] is None}
    try:
        import bit_keras  # noqa: F401
        record["bit_keras_importable"] = True
    except ImportError:
        record["bit_keras_importable"] = False

    for kind, path in (("classifier", job["classifier"]), ("feature_vector", job["feature_vector"]),
                       ("folded", job["folded"])):
        obj = tf.saved_model.load(path)
        record[f"{kind}/variables"] = len(obj.variables)
        record[f"{kind}/trainable_variables"] = len(obj.trainable_variables)
        record[f"{kind}/regularization_losses"] = len(obj.regularization_losses)
        record[f"{kind}/signatures"] = sorted(obj.signatures)
        serve = obj.signatures["serving_default"]
        for name, x in inputs.items():
            out = serve(images=tf.constant(x))
            for key, value in out.items():
                arrays[f"{kind}/serving/{key}/{name}"] = value.numpy()
            if kind != "folded":
                arrays[f"{kind}/call/{name}"] = obj(x).numpy()
                arrays[f"{kind}/call_training/{name}"] = obj(x, training=True).numpy()

    clf = tf.saved_model.load(job["classifier"])
    key = "logits"
    arrays["labels"] = clf.signatures["labels"]()["labels"].numpy()
    image_bytes, serve = clf.signatures["image_bytes"], clf.signatures["serving_default"]
    for name, (path, decoded) in job["images"].items():
        with open(path, "rb") as f:
            data = f.read()
        arrays[f"bytes/{name}"] = image_bytes(image_bytes=tf.constant([data, data]))[key].numpy()
        pixels = np.load(decoded, allow_pickle=False)
        floats = tf.image.resize(pixels, [job["image_size"], job["image_size"]]) / 255.0
        arrays[f"float/{name}"] = serve(images=floats[None])[key].numpy()
    for name, data in job["bad_images"].items():
        good = open(job["images"]["png"][0], "rb").read()
        try:
            image_bytes(image_bytes=tf.constant([good, bytes.fromhex(data)]))
            record[f"error/{name}"] = None
        except tf.errors.InvalidArgumentError as e:
            record[f"error/{name}"] = e.message
    # The server is still usable after a bad request.
    arrays["bytes/after_errors"] = image_bytes(
        image_bytes=tf.constant([open(job["images"]["png"][0], "rb").read()]))[key].numpy()

    # Keras 3: TFSMLayer on the signature, inside a functional model.
    inp = keras.Input((None, None, 3))
    tfsm = keras.layers.TFSMLayer(job["classifier"], call_endpoint="serving_default")
    k3 = keras.Model(inp, tfsm(inp)["logits"])
    arrays["tfsm"] = k3(inputs["b3_48x40"]).numpy()

    # tf-keras: hub.KerasLayer(path, trainable=True) fine-tunes every backbone variable.
    def hub_finetune(handle, steps):
        layer = hub.KerasLayer(handle, trainable=True)
        model = tf_keras.Sequential([tf_keras.Input((job["image_size"], job["image_size"], 3)), layer,
                                     tf_keras.layers.Dense(2)])
        x = inputs["b3_32x32"]
        before_out = layer(x).numpy()
        before = [v.numpy().copy() for v in layer.trainable_weights]
        model.compile(tf_keras.optimizers.SGD(0.1), "mse")
        model.fit(x, np.random.default_rng(0).normal(size=(3, 2)).astype("float32"),
                  epochs=steps, verbose=0)
        changed = sum(not np.array_equal(b, v.numpy())
                      for b, v in zip(before, layer.trainable_weights))
        return before_out, len(layer.trainable_weights), changed

    out, n, changed = hub_finetune(job["feature_vector"], steps=2)
    arrays["hub/path"] = out
    record["hub/path/trainable_weights"], record["hub/path/changed"] = n, changed
    out, n, changed = hub_finetune(job["url"], steps=1)
    arrays["hub/url"] = out
    record["hub/url/trainable_weights"], record["hub/url/changed"] = n, changed
    record["hub/url/cached"] = sorted(os.listdir(os.environ["TFHUB_CACHE_DIR"]))

    # Strings as unicode arrays: the parent loads with allow_pickle=False.
    arrays = {k: v.astype(str) if v.dtype == object else v for k, v in arrays.items()}
    np.savez(job["arrays_out"], **arrays)
    with open(job["record_out"], "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(sys.argv[1])
    sys.exit(0)
