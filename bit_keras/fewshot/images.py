"""Images and features for few-shot evaluation: a split read once, any feature function."""

import os

import numpy as np

from bit_keras.models import resolver
from bit_keras.utils import checks


def _load_source(spec, split, data_dir):
    from bit_keras import data
    if isinstance(spec, str) and "bit_synthetic" in spec:
        import bit_keras.datasets  # noqa: F401  (registers the TFDS builder)
    if (isinstance(spec, str) and "/" in spec and not spec.startswith(("/", ".", "tfds:"))
            and not os.path.exists(spec)):
        spec = "tfds:" + spec  # "name/config" is a TFDS name, not a relative path
    kwargs = {}
    if data_dir is not None and isinstance(spec, str) and not os.path.isdir(spec):
        kwargs["data_dir"] = data_dir
    return data.load_source(spec, split, **kwargs)


class ImageSet:
    """One split of labelled images, resized to one square size and read in batches."""

    def __init__(self, spec, split, data_dir, image_size, batch_size):
        self.source = _load_source(spec, split, data_dir)
        if self.source.multi_label:
            raise ValueError(f"few-shot evaluation needs single-label data. Received: "
                             f"{self.source!r}")
        self.labels = np.asarray(self.source.labels, np.int64)
        self.batch_size = batch_size
        self.image_size = image_size if image_size is not None else self._native_size()
        checks.positive_int(self.image_size, "image_size", accepted="a positive int or None")

    def _native_size(self):
        sizes = np.unique(self.source.image_sizes(), axis=0)
        if len(sizes) != 1 or sizes[0][0] != sizes[0][1]:
            raise ValueError(f"{self.source!r} has images of sizes {sizes[:4].tolist()}...; pass "
                             "image_size=N to resize them to N x N. Received: image_size=None")
        return int(sizes[0][0])

    def _batches(self, indices=None):
        from bit_keras import data
        source = self.source if indices is None else self.source.subset(indices)
        for images, _ in data.eval_dataset(source, self.batch_size, crop=self.image_size):
            yield images

    def features(self, feature_fn, indices=None):
        """float32 ``[N, D]`` features of the images at ``indices`` (all by default)."""
        return np.concatenate([feature_fn(images) for images in self._batches(indices)])

    def images(self, indices):
        """float32 ``[N, S, S, 3]`` images in [0, 1] at ``indices``."""
        return np.concatenate([images.numpy() for images in self._batches(indices)])

    def scores(self, predict):
        """``predict``'s outputs on every image (NumPy float32 batches), concatenated."""
        return np.concatenate([np.asarray(predict(images.numpy())) for images in self._batches()])


def as_feature_fn(obj):
    """A function images -> float32 ``[B, D]`` NumPy features, from a model or callable.

    Args:
        obj: a Keras model (a BiT model with a head gives its ``pre_logits``), a SavedModel
            from ``tf.saved_model.load`` (``__call__``, else ``serving_default``), a
            ``hub.KerasLayer``, any function of a float32 image batch, or what
            ``bit_keras.models.resolver.resolve`` takes (a variant name, a file, a folder).

    Returns:
        A function of a float32 ``[B, H, W, 3]`` batch in [0, 1].

    Example:

    >>> fn = bit_keras.fewshot.images.as_feature_fn(tf.saved_model.load("export/bit_fv"))
    >>> fn(np.zeros([2, 64, 64, 3], np.float32)).shape
    (2, 2048)
    """
    import keras
    if obj is None:
        raise ValueError("feature_fn is required for the linear probe (only fit_fn=... runs "
                         "without one). Received: feature_fn=None")
    if isinstance(obj, (str, os.PathLike)):
        obj = resolver.resolve(obj, include_top=False, name="feature_fn")
    if isinstance(obj, keras.Model):
        if resolver.has_layer(obj, resolver.PRE_LOGITS):
            obj = resolver.pre_logits(obj)
        call = _with_compiled_kernels(obj.predict_on_batch)
    elif not callable(obj) and "serving_default" in getattr(obj, "signatures", {}):
        call = _signature_call(obj.signatures["serving_default"])
    elif callable(obj):
        call = obj
    else:
        raise TypeError("feature_fn must be a Keras model, a loaded SavedModel, a Hub layer or a "
                        f"function of an image batch. Received: {type(obj).__name__}")

    def features(images):
        out = call(images)
        out = np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.float32)
        if out.ndim != 2 or len(out) != len(images):
            raise ValueError(f"feature_fn must return [batch, features]. Received: shape "
                             f"{out.shape} for a batch of {len(images)} images")
        return out
    return features


def _with_compiled_kernels(predict):
    """``predict`` traced and run in this thread inside ``compiled_kernels()``: the library's
    own run of the model, never saved (bit_keras.layers.fused)."""
    from bit_keras import layers

    def call(images):
        with layers.compiled_kernels():
            return predict(images)
    return call


def _signature_call(signature):
    (name, _), = signature.structured_input_signature[1].items()
    outputs = signature.structured_outputs

    def call(images):
        out = signature(**{name: images})
        if "feature_vector" in out:
            return out["feature_vector"]
        if len(out) == 1:
            return next(iter(out.values()))
        raise ValueError("the serving_default signature must output 'feature_vector' or a single "
                         f"tensor. Received outputs: {sorted(outputs)}")
    return call
