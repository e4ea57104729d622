"""The root object of an exported BiT SavedModel: a TF Hub Reusable SavedModel with signatures.

The TF Hub Reusable SavedModel API asks for ``__call__(images, training=False)`` plus
``variables``, ``trainable_variables`` and ``regularization_losses``. A ``tf.Module`` keeps
``variables``/``trainable_variables`` as properties, which a SavedModel does not save (the
reloaded object then has none, and ``hub.KerasLayer(..., trainable=True)`` silently trains
nothing; docs/design.md). Here they are plain list attributes, which are saved and restored.
"""

import keras
import tensorflow as tf

from bit_keras import layers as bit_layers
from bit_keras.exporter import signatures as sigs
from bit_keras.models import network

KINDS = ("feature_vector", "classifier", "feature_pyramid")
# The block outputs a feature_pyramid export returns (strides 4, 8, 16, 32 at output_stride 32).
PYRAMID = network.BLOCK_NAMES


def select_model(model, kind):
    """The Keras model an export of ``kind`` serves, sharing ``model``'s variables.

    The feature vector is the pooled pre-logits: the model itself when it was built with
    ``include_top=False`` (its output layer is ``features``), else a sub-model that stops at
    ``pre_logits``. The feature pyramid is a sub-model returning a dict of the block outputs
    the model has (``PYRAMID``), for detection and segmentation heads.
    """
    from bit_keras.models import resolver

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}. Received: kind={kind!r}")
    resolver.require_features(model)
    if kind == "feature_vector":
        return resolver.pre_logits(model)
    if kind == "feature_pyramid":
        names = tuple(n for n in PYRAMID if resolver.has_layer(model, n))
        return network.feature_extractor(model, names, name=f"{model.name}_feature_pyramid")
    if not resolver.has_layer(model, resolver.HEAD):
        raise ValueError(
            "kind='classifier' needs a model with a head (built with include_top=True). "
            f"Received: model={model.name!r}, which outputs features; use "
            "kind='feature_vector'")
    return model


class BitModule(tf.Module):
    """The exported root: ``__call__``, variable lists and the serving signatures.

    Args:
        net: the Keras model to serve (from ``select_model``, maybe folded).
        kind: ``"feature_vector"``, ``"classifier"`` or ``"feature_pyramid"``.
        image_size: the side the ``image_bytes`` signature resizes to.
        labels_path: a checked class-list file to embed as an asset, or None.
        labels_names: the class names in it (what the signatures return), or None.
        max_request_pixels: the most pixels an ``image_bytes`` request may make after the
            resize (entries x ``image_size``**2).
        top_k, label_scores: the top classes reported with labels, and how logits become
            scores (``"softmax"`` or ``"sigmoid"``).
        trainable: whether ``trainable_variables`` lists the weights (False for a folded,
            serving-only export).
    """

    # Class attributes shadow tf.Module's properties so that instances can hold tracked lists.
    variables = None
    trainable_variables = None

    def __init__(self, net, kind, image_size, labels_path=None, top_k=5,
                 label_scores="softmax", trainable=True, labels_names=None,
                 max_request_pixels=sigs.MAX_REQUEST_PIXELS):
        super().__init__(name=None)
        self.variables = [v.value for v in net.weights]
        self.trainable_variables = list(self.variables) if trainable else []
        self.regularization_losses = []
        self.labels_file = tf.saved_model.Asset(labels_path) if labels_path else None
        kind_ = kind

        def _names():  # a constant in each graph that reports labels (OpenVINO reads those)
            return None if labels_names is None else tf.constant(list(labels_names), tf.string)

        def forward(images, training):
            return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32),
                                         net(images, training=training))

        @tf.function(autograph=False)
        def call(images, training=False):
            return forward(images, training)

        for training in (False, True):
            call.get_concrete_function(sigs.IMAGES_SPEC, training=training)
        self.__call__ = call

        @tf.function(input_signature=[sigs.IMAGES_SPEC], autograph=False)
        def serving_default(images):
            images = sigs.check_images(images)
            return sigs.outputs(forward(images, False), kind_, _names(), top_k, label_scores)

        @tf.function(input_signature=[sigs.IMAGE_BYTES_SPEC], autograph=False)
        def image_bytes(image_bytes):
            images = sigs.decode_images(image_bytes, image_size,
                                        max_request_pixels=max_request_pixels)
            return sigs.outputs(forward(images, False), kind_, _names(), top_k, label_scores)

        self.serving_default = serving_default
        self.image_bytes = image_bytes
        names = ["serving_default", "image_bytes"]
        if labels_names is not None:
            @tf.function(input_signature=[], autograph=False)
            def labels():
                return {"labels": _names()}

            self.labels = labels
            names.append("labels")
        self._signature_names = tuple(names)

    def signatures(self):
        """The ``signatures=`` argument of ``tf.saved_model.save``."""
        return {name: getattr(self, name) for name in self._signature_names}


def portable_copy(net):
    """``net`` with every GroupNorm differentiated through its forward ops; other layers shared.

    An artefact (SavedModel, TFLite) must hold plain TensorFlow ops. GroupNorm's hand-written
    gradient is left out of it: saving it doubles the time to save and to load, and a
    reloaded model gets the same gradients by differentiating the forward ops. The copy
    shares every other layer (and so every kernel) with ``net``.
    """
    norms = {}

    def clone(layer):
        if isinstance(layer, bit_layers.GroupNormalization) and layer.hand_written_gradient:
            norms[layer.name] = layer
            config = {**layer.get_config(), "hand_written_gradient": False}
            return bit_layers.GroupNormalization.from_config(config)
        return layer

    copy = keras.models.clone_model(net, clone_function=clone)
    for name, layer in norms.items():
        copy.get_layer(name).set_weights(layer.get_weights())
    return copy
