"""Getting a BiT model ready to train: head, frozen blocks, precision, strategy scope."""

import keras
from absl import logging

from bit_keras.models import network as bit_model
from bit_keras.models.resolver import FEATURES, HEAD, PRE_LOGITS

PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# Layers that compute in float32 whatever the policy: the logits and the features output.
FLOAT32_LAYERS = (HEAD, FEATURES)


def with_head(model, num_classes):
    """``model`` with a zero-initialized ``num_classes`` head, replacing a head of another size.

    A model whose head already has ``num_classes`` outputs is returned unchanged; otherwise
    the new model shares every backbone layer with ``model`` (the BiT fine-tuning practice:
    a fresh zero head on the pre-trained backbone).

    Example:

    >>> model = bit_keras.training.with_head(bit_keras.build("BiT-M-R50x1"), 10)
    """
    names = [layer.name for layer in model.layers]
    if HEAD in names and model.get_layer(HEAD).units == num_classes:
        return model
    if PRE_LOGITS not in names:
        raise ValueError(f"model must be a BiT model with a '{PRE_LOGITS}' layer to take a new "
                         f"head. Received: model {model.name!r} with layers {names[-3:]}")
    logging.info("Putting a zero-initialized %d-class head on %s", num_classes, model.name)
    if isinstance(model, bit_model.BiTModel):  # keeps its architecture
        spec = {**model.spec(), "num_classes": num_classes, "include_top": True}
        return bit_model.BiTModel(**spec, name=model.name, backbone=model)
    logits = keras.layers.Dense(num_classes, kernel_initializer="zeros", name=HEAD,
                                dtype="float32")(model.get_layer(PRE_LOGITS).output)
    return keras.Model(model.input, logits, name=model.name)


def frozen_layer_names(model, freeze):
    """Names of the layers ``freeze`` covers: the stem (0), then blocks 1..``freeze`` too."""
    if freeze is None:
        return []
    if not isinstance(freeze, int) or isinstance(freeze, bool) or not 0 <= freeze <= 4:
        raise ValueError(f"freeze must be None or an int from 0 (the stem) to 4 (the stem and "
                         f"all four blocks). Received: freeze={freeze!r}")
    prefixes = ("root_",) + tuple(f"block{b}_" for b in range(1, freeze + 1))
    return [layer.name for layer in model.layers if layer.name.startswith(prefixes)]


def freeze_blocks(model, freeze):
    """Makes the stem and the first ``freeze`` blocks non-trainable (issue #53).

    Args:
        model: a BiT model.
        freeze: ``None`` trains everything; 0 freezes the stem; k freezes the stem and
            blocks 1..k (pre-activation: the GroupNorm at the start of block k+1 stays
            trainable). 4 leaves the final GroupNorm and the head.

    Returns:
        The names of the frozen layers.

    Example:

    >>> bit_keras.training.freeze_blocks(model, 2)
    """
    names = frozen_layer_names(model, freeze)
    for name in names:
        model.get_layer(name).trainable = False
    return names


def check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}. Received: "
                         f"precision={precision!r}")
    return PRECISIONS[precision]


def replica(model, strategy, precision="float32", needs_copy=True):
    """A copy of ``model`` built in ``strategy.scope()`` with the precision's dtype policy.

    Normalization statistics, the head and the features output stay float32 (the BiT layers
    compute their statistics in float32 under any policy). ``needs_copy=False`` returns
    ``model`` itself when it already has the policy (the default strategy needs no copy).
    """
    policy = check_precision(precision)
    same_policy = all(layer.dtype_policy.name == (
        "float32" if layer.name in FLOAT32_LAYERS else policy) for layer in model.layers[1:])
    if same_policy and not needs_copy:
        return model

    def clone(layer):
        config = layer.get_config()
        if layer.name not in FLOAT32_LAYERS:
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    with strategy.scope():
        copy = keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
        for source, target in zip(model.layers, copy.layers):
            target.trainable = source.trainable
    return copy


def frozen_replica(teacher, strategy, precision="float32"):
    """The teacher of a distillation as the step calls it: a Keras model is copied into the
    strategy's scope when the strategy needs it (as ``replica``; its variables are never
    trained, being outside the optimizer's list); another callable (a reloaded SavedModel)
    is used as it is."""
    if not isinstance(teacher, keras.Model):
        return teacher
    from bit_keras.training import strategy as strategies
    return replica(teacher, strategy, precision, needs_copy=not strategies.is_default(strategy))
