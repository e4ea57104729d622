"""The child process of ``test_keras_hub.py``: a BiT preset in keras-hub on one backend.

Run as ``KERAS_BACKEND=jax python tests/keras_hub_child.py PRESET IMAGES.npy OUT.npz``
(``KERAS_BACKEND`` is read once, when Keras is imported, hence a process per backend). Loads
the preset the parent wrote with keras-hub's base classes and writes the classifier's
logits on the raw images and the backbone's pyramid shapes.
"""

import sys

import numpy as np


def main(preset, images_path, out_path):
    import keras
    import keras_hub

    import bit_keras.keras_hub  # noqa: F401  (registers BiT's classes)
    images = np.load(images_path)
    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    backbone = keras_hub.models.Backbone.from_preset(preset)
    pyramid = keras.Model(backbone.input, backbone.pyramid_outputs)(images / 255.0)
    out = {"backend": np.asarray(keras.backend.backend()),
           "logits": np.asarray(classifier.predict(images, verbose=0)),
           "backbone_class": np.asarray(type(backbone).__name__)}
    out.update({f"shape/{k}": np.asarray(v.shape) for k, v in pyramid.items()})
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
