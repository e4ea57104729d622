"""Export BiT and use the SavedModel without bit_keras: hub.KerasLayer, Keras 3, TF Serving REST.

    python examples/export_and_serve.py --model BiT-M-R50x1 --weights BiT-M-R50x1.npz --out bit_fv
    python examples/export_and_serve.py --tiny

With TF Serving running on the exported model directory (``--version 1`` writes the layout it
watches), ``--server http://localhost:8501`` sends the REST request below to it; without a
server the same JSON request is answered by the SavedModel's ``serving_default`` signature.
"""

import json
import os
import tempfile

import numpy as np
from absl import app, flags

flags.DEFINE_string("model", "BiT-M-R50x1", "BiT model name.")
flags.DEFINE_string("weights", None, "Its checkpoint (default: the cache, or a download).")
flags.DEFINE_string("out", None, "Export directory (TF Serving model directory).")
flags.DEFINE_string("server", None, "A TF Serving REST address, e.g. http://localhost:8501.")
flags.DEFINE_bool("tiny", False, "Run offline in seconds with a tiny model.")
FLAGS = flags.FLAGS


def rest_request(images):
    """The body TF Serving's REST API takes: ``POST /v1/models/<name>:predict``."""
    return json.dumps({"signature_name": "serving_default", "instances": images.tolist()})


def main(_):
    import bit_keras

    work = tempfile.mkdtemp()
    name, weights, out = FLAGS.model, FLAGS.weights, FLAGS.out or os.path.join(work, "bit_fv")
    if FLAGS.tiny:
        from _tiny_data import write_tiny_checkpoint
        name, weights = "R14x1", write_tiny_checkpoint(os.path.join(work, "r14.npz"))
    model = bit_keras.load(name, weights=weights, include_top=False)
    bit_keras.export(model, out, kind="feature_vector", version=1, overwrite=True)
    path = os.path.join(out, "1")
    images = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")

    import tensorflow_hub as hub  # tf-keras's Hub layer (a Keras 2 layer)
    print("hub.KerasLayer:", hub.KerasLayer(path)(images).shape)

    import keras  # Keras 3
    layer = keras.layers.TFSMLayer(path, call_endpoint="serving_default")
    print("keras.layers.TFSMLayer:", layer(images)["feature_vector"].shape)

    body = rest_request(images)
    if FLAGS.server:
        import urllib.request
        url = f"{FLAGS.server}/v1/models/{os.path.basename(out)}:predict"
        with urllib.request.urlopen(urllib.request.Request(url, body.encode(), method="POST")) as r:
            predictions = np.array(json.load(r)["predictions"])
    else:  # what the server does with that body
        import tensorflow as tf
        request = json.loads(body)
        signature = tf.saved_model.load(path).signatures[request["signature_name"]]
        predictions = signature(images=tf.constant(request["instances"], tf.float32))["feature_vector"].numpy()
    print("TF Serving REST predictions:", predictions.shape,
          "max |diff| vs Keras:", float(np.max(np.abs(predictions - np.asarray(model(images))))))


if __name__ == "__main__":
    app.run(main)
