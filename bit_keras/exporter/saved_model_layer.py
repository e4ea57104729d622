"""``bit_keras.SavedModelLayer``: a Keras 3 layer around any reusable SavedModel.

``hub.KerasLayer`` is a tf-keras (Keras 2) layer and cannot sit inside a Keras 3 model
(tensorflow/tensorflow#63849, tensorflow/hub#920); ``keras.layers.TFSMLayer`` calls a
signature but cannot pass ``training``. This layer calls a SavedModel's ``__call__`` (the TF
Hub Reusable SavedModel API: our exports, or the BiT modules of TF Hub / Kaggle once
downloaded) with ``training``, and tracks the SavedModel's own variables as the layer's
weights, so a Keras 3 optimizer fine-tunes them when ``trainable=True``.
"""

import inspect
import os

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="bit_keras")
class SavedModelLayer(keras.layers.Layer):
    """Wraps a reusable SavedModel (``__call__`` or a signature) as a Keras 3 layer.

    Args:
        path: a SavedModel directory (for a TF Hub handle, the directory
            ``hub.resolve(handle)`` returns).
        trainable: whether the SavedModel's ``trainable_variables`` are trained.
        signature: ``None`` to call the root's ``__call__(inputs, training=...)``, or the
            name of a signature (e.g. ``"serving_default"``) called with its one input.
        output_key: the output to return when the call returns a dict (required if the
            dict has more than one entry).
        **kwargs: base layer arguments (``name``, ``dtype``).

    Example:

    >>> layer = bit_keras.SavedModelLayer("exports/bit_m-r50x1_fv", trainable=True)
    >>> inputs = keras.Input((None, None, 3))
    >>> model = keras.Model(inputs, keras.layers.Dense(10)(layer(inputs)))
    """

    def __init__(self, path, trainable=False, signature=None, output_key=None, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        self.filepath = os.fspath(path)
        self.signature = signature
        self.output_key = output_key
        if not os.path.isfile(os.path.join(self.filepath, "saved_model.pb")):
            raise ValueError(f"path must be a SavedModel directory (with saved_model.pb). "
                             f"Received: path={self.filepath!r}")
        self._loaded = tf.saved_model.load(self.filepath)
        self._input_key = None
        self._has_training = False
        if signature is None:
            if not callable(self._loaded):
                raise ValueError(
                    f"The SavedModel at {self.filepath!r} has no __call__; pass signature= one of "
                    f"{sorted(self._loaded.signatures)}. Received: signature=None")
            self._fn = self._loaded.__call__
            self._has_training = _accepts_training(self._fn)
        else:
            if signature not in self._loaded.signatures:
                raise ValueError(
                    f"signature must be one of {sorted(self._loaded.signatures)} for the "
                    f"SavedModel at {self.filepath!r}. Received: signature={signature!r}")
            self._fn = self._loaded.signatures[signature]
            keys = sorted(self._fn.structured_input_signature[1])
            if len(keys) != 1:
                raise ValueError(f"signature {signature!r} takes {len(keys)} inputs {keys}; "
                                 "SavedModelLayer calls signatures with one input")
            self._input_key = keys[0]
        all_vars, trainable_ids = _saved_variables(self._loaded, self._fn)
        # Each Keras variable wraps the restored tf.Variable itself (no copy), so training
        # the layer updates exactly what the SavedModel's functions read.
        self.saved_variables = [
            keras.Variable(v, trainable=id(v) in trainable_ids, dtype=v.dtype.name,
                           name=v.name.split(":")[0].replace("/", "_"))
            for v in all_vars]
        self.built = True

    def call(self, inputs, training=None):
        if self._input_key is not None:
            outputs = self._fn(**{self._input_key: inputs})
        elif self._has_training:
            outputs = self._fn(inputs, training=bool(training) and self.trainable)
        else:
            outputs = self._fn(inputs)
        if isinstance(outputs, dict):
            if self.output_key is None and len(outputs) == 1:
                return next(iter(outputs.values()))
            if self.output_key not in outputs:
                raise ValueError(f"output_key must be one of {sorted(outputs)}. "
                                 f"Received: output_key={self.output_key!r}")
            return outputs[self.output_key]
        return outputs

    def get_config(self):
        return {**super().get_config(), "path": self.filepath, "signature": self.signature,
                "output_key": self.output_key}


def _accepts_training(fn):
    try:
        return "training" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _saved_variables(loaded, fn):
    """(all variables, ids of trainable ones): the root's lists, else those ``fn`` reads."""
    if hasattr(loaded, "variables") and loaded.variables:
        trainable = list(getattr(loaded, "trainable_variables", None) or [])
        return list(loaded.variables), {id(v) for v in trainable}
    concrete = getattr(fn, "concrete_functions", None) or [fn]
    seen, ordered, trainable = set(), [], set()
    for c in concrete:
        for v in c.variables:
            if id(v) not in seen:
                seen.add(id(v))
                ordered.append(v)
        trainable.update(id(v) for v in c.trainable_variables)
    return ordered, trainable
