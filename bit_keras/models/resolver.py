"""A model from anything a user names, and the one place that cuts a model at its features.

Every function and command that takes a model (``fine_tune``, ``pretrain``, ``distill``'s
teacher and student, ``bit_keras.vtab.run``, the few-shot probe, the exporter) resolves it
here: a Keras model as it is; a ``.keras`` file; a SavedModel folder (``bit_keras.export``,
a TF Hub BiT model) called as ``model(images)``; a checkpoint file (``.npz``, ``.h5``,
``.safetensors``) of a BiT whose architecture the file tells; a variant name or an
``R50x1``-style architecture whose weights ``bit_keras.load`` finds.
"""

import os

import keras

# The layer names that are the model's interface (``models/network.py`` builds them).
HEAD = "head"  # the logits
PRE_LOGITS = "pre_logits"  # the pooled features under the head
FEATURES = "features"  # the output of a model built with include_top=False


def has_layer(model, name):
    """True when ``model`` has a layer called ``name``."""
    return any(layer.name == name for layer in getattr(model, "layers", ()))


def require_features(model):
    """Raises a ValueError for a model with neither pooled features nor pre-logits (not a
    BiT model of bit_keras)."""
    if not (has_layer(model, FEATURES) or has_layer(model, PRE_LOGITS)):
        raise ValueError(
            "model must be a BiT model from bit_keras.build/load/resnet_v2 (it has no "
            f"'{PRE_LOGITS}' layer). Received: model={getattr(model, 'name', model)!r}")


def pre_logits(model):
    """``model`` cut at its pooled pre-logits features, sharing its variables: the model
    itself when it was built with ``include_top=False``.

    Example:

    >>> features = bit_keras.models.resolver.pre_logits(bit_keras.build("BiT-M-R50x1"))
    """
    if has_layer(model, FEATURES):
        return model
    require_features(model)
    return keras.Model(model.input, model.get_layer(PRE_LOGITS).output,
                       name=f"{model.name}_feature_vector")


def resolve(model, weights=None, pretrained_dir=None, include_top=True, trainable=False,
            name="model"):
    """A model (or, for a SavedModel, a function of images) from what a user names.

    Args:
        model: a ``keras.Model`` (returned as it is); a ``.keras`` file; a SavedModel
            folder; a checkpoint file of a BiT (built from the file alone: it needs a
            stem of 64 x width channels, and a head unless ``include_top=False``); a
            variant name (``"BiT-M-R50x1"``) or an architecture (``"R50x1"``).
        weights: a variant's or architecture's checkpoint; default
            ``<pretrained_dir>/<model>.npz`` (or ``.h5``) when that exists, else the cache
            or a download (``bit_keras.load``).
        pretrained_dir: a folder of official checkpoints named after the variants.
        include_top: keep the checkpoint's head (False: the model outputs its features).
        trainable: a SavedModel becomes a Keras model to train (a feature-vector export
            wrapped in ``bit_keras.SavedModelLayer``, its output layer called
            ``pre_logits``, so that ``fine_tune`` puts a head on it) instead of a function.
        name: the argument's name in error messages (``"teacher"``, ``"--model"``).

    Returns:
        A ``keras.Model``, or for a SavedModel (unless ``trainable``) a function
        ``f(images, training=False)``.

    Example:

    >>> teacher = bit_keras.models.resolver.resolve("exports/teacher", name="teacher")
    """
    import bit_keras
    from bit_keras.checkpoints import formats, transfer

    if isinstance(model, keras.Model):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(f"{name} must be a Keras model, a bit_keras variant name, a checkpoint "
                         f"file or a SavedModel directory. Received: {type(model).__name__}")
    path = os.fspath(model)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{name} file does not exist. Received: {name}={path!r}")
        return keras.saving.load_model(path, compile=False)
    if os.path.isdir(path):
        return _trainable_saved_model(path, name) if trainable else _saved_model(path, name)
    if os.path.isfile(path):
        tensors = formats.read_checkpoint(path)
        units, stem, classes = transfer.checkpoint_structure(tensors)
        if (include_top and classes is None) or stem % 64:
            raise ValueError(f"{name} {path!r} needs a head and a stem of 64 x width "
                             "channels to be built from the file alone; build the model and "
                             "pass it instead")
        built = bit_keras.resnet_v2(units, stem // 64, num_classes=classes,
                                    include_top=include_top)
        return transfer.load_weights(built, tensors, skip_head=not include_top)
    if weights is None and pretrained_dir is not None:
        for ext in (".npz", ".h5"):
            candidate = os.path.join(pretrained_dir, path + ext)
            weights = candidate if os.path.isfile(candidate) else weights
    return bit_keras.load(path, weights=weights, include_top=include_top)


def _saved_model(path, name):
    import tensorflow as tf

    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{name} {path!r} is a folder without saved_model.pb")
    loaded = tf.saved_model.load(path)
    if not callable(loaded):  # signatures only: the caller picks one (fewshot)
        return loaded

    def call(images, training=False):
        return loaded(images)
    return call


def _trainable_saved_model(path, name):
    """A feature-vector SavedModel as a Keras model whose output layer is ``pre_logits``."""
    from bit_keras.exporter import SavedModelLayer  # the exporter's own reader of its exports

    if "logits" in _serving_outputs(path, name):
        raise ValueError(f"{name} {path!r} is a classifier; a model to train needs its "
                         "features: export it with kind='feature_vector'")
    layer = SavedModelLayer(path, trainable=True, name=PRE_LOGITS)
    if not layer.saved_variables:
        raise ValueError(f"{name} {path!r} has no variables to train")
    inputs = keras.Input((None, None, 3), name="images")
    outputs = layer(inputs)
    if len(outputs.shape) != 2:
        raise ValueError(f"{name} {path!r} must output [batch, features] to be trained. "
                         f"Received: output shape {tuple(outputs.shape)}")
    return keras.Model(inputs, outputs, name=os.path.basename(os.path.normpath(path)))


def _serving_outputs(path, name):
    """The output names of a SavedModel's ``serving_default`` (read from its graph, without
    loading it)."""
    from tensorflow.core.protobuf import saved_model_pb2

    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{name} {path!r} is a folder without saved_model.pb")
    graph = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        graph.ParseFromString(f.read())
    signatures = graph.meta_graphs[0].signature_def if graph.meta_graphs else {}
    return set(signatures["serving_default"].outputs) if "serving_default" in signatures else set()
