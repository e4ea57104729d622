"""Rematerialization: the backward pass recomputes each residual unit from its input.

A BiT unit keeps about eight activations of its input's size or more for the backward pass
(three GroupNorms, three convolutions, the shortcut, the sum). Cut at unit boundaries, with
each piece under ``tf.recompute_grad``, the forward pass keeps only the units' inputs and
the backward pass recomputes one unit at a time: less memory for about one more forward
pass of time (measured in ``docs/performance.md``, "Rematerialization"). The pieces are
Keras models over the model's own graph, sharing its layers and variables, so the numbers
are the model's own.

Example:

>>> forward = rematerialized(model)
>>> with tf.GradientTape() as tape:
...     loss = loss_fn(labels, forward(images, training=True))
"""

import keras
import tensorflow as tf
from keras.src.models.functional import Functional  # no public name for the class

CUT_SUFFIX = "_add"  # a unit's last layer (bit_keras.models.network.apply_unit)
STEM = "stem"


def check(model):
    """Raises a ValueError unless ``unit_segments`` can cut ``model``: a model with no BiT
    units in its own graph (a SavedModel's layer, a subclassed model), or with a random
    layer in a unit (``DropPath``: its recomputation would draw other masks than the
    forward pass). Returns the names of the layers after which it cuts."""
    if not isinstance(model, Functional):
        raise ValueError("remat needs a BiT model built by bit_keras (a functional Keras "
                         f"model with its units in its graph). Received: {type(model).__name__} "
                         f"{model.name!r}")
    names = [layer.name for layer in model.layers]
    cuts = [name for name in names if name == STEM or name.endswith(CUT_SUFFIX)]
    if not any(name.endswith(CUT_SUFFIX) for name in cuts):
        raise ValueError("remat needs a BiT model whose residual units ('<prefix>_add' "
                         f"layers) are in its own graph. Received: {model.name!r} with layers "
                         f"{names[:3]}...{names[-3:]}")
    random = [name for name in names if name.endswith("_drop_path")]
    if random:
        raise ValueError("remat cannot recompute a unit with drop path: the recomputation "
                         "would draw other masks than the forward pass. Build the model "
                         f"with drop_path_rate=0 to train with remat. Received: {random[:2]}")
    return cuts


def unit_segments(model):
    """``model``'s graph cut after its stem and after each unit: a list of Keras models,
    chained in order, sharing ``model``'s layers (``check`` says which models it refuses).
    """
    cuts = check(model)
    segments, inputs = [], model.inputs
    for name in cuts:
        outputs = model.get_layer(name).output
        segments.append(keras.Model(inputs, outputs, name=f"{model.name}_to_{name}"))
        inputs = outputs
    segments.append(keras.Model(inputs, model.outputs, name=f"{model.name}_top"))
    return segments


def rematerialized(model):
    """``fn(images, training) -> model's outputs``, each unit recomputed in the backward pass
    (``unit_segments``); the stem and the top (final GroupNorm, pooling, head) are kept."""
    segments = unit_segments(model)
    first, units, top = segments[0], segments[1:-1], segments[-1]

    def call(images, training=False):
        x = first(images, training=training)
        for unit in units:
            x = tf.recompute_grad(lambda y, unit=unit: unit(y, training=training))(x)
        return top(x, training=training)

    return call
