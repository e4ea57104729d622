"""``bit_keras.export``: a BiT model as a TF Hub / TF Serving / Keras 3 SavedModel."""

import json
import os
import tempfile

import tensorflow as tf

from bit_keras import classes
from bit_keras import layers as bit_layers
from bit_keras.exporter import module as bit_module
from bit_keras.exporter import signatures as sigs
from bit_keras.models import fold, variants
from bit_keras.models import network as bit_model
from bit_keras.utils import atomic, checks

METADATA_PATH = os.path.join("assets.extra", "bit_keras_export.json")
LABEL_SCORES = ("softmax", "sigmoid")
# TF Hub's resolution for the BiT modules when a name does not say otherwise.
DEFAULT_IMAGE_SIZE = 224


def _variant(model):
    """The ``Variant`` a ``BiTModel`` was built as, or None."""
    spec = bit_model.spec_of(model)
    return variants.VARIANTS.get(spec["variant"]) if spec and spec["variant"] else None


def default_image_size(model):
    variant = _variant(model)
    return variant.resolution if variant else DEFAULT_IMAGE_SIZE


def _labels(model, net, kind, labels):
    """(class names or None, whether they are the shipped list of the model's head)."""
    if labels is False or (labels is None and kind != "classifier"):
        return None, False
    if labels is None:
        try:
            return classes.class_names(model), True
        except ValueError:  # a head without shipped names: export it without labels
            return None, False
    if kind != "classifier":
        raise ValueError(f"labels is only for kind='classifier'. Received: kind={kind!r}, "
                         f"labels={labels!r}")
    if isinstance(labels, (str, os.PathLike)):
        return sigs.read_labels(os.fspath(labels), net.output.shape[-1]), False
    return sigs.check_labels(labels, net.output.shape[-1]), False


def _check_args(kind, version, image_size, top_k, label_scores):
    checks.one_of(kind, "kind", bit_module.KINDS)
    checks.non_negative_int(version, "version", allow_none=True,
                            accepted="None or a non-negative int (TF Serving's numeric version "
                                     "directory)")
    checks.positive_int(image_size, "image_size", allow_none=True)
    checks.positive_int(top_k, "top_k")
    if label_scores is not None:
        checks.one_of(label_scores, "label_scores", LABEL_SCORES)


def serving_versions(path):
    """The numeric TF Serving versions (subfolders with saved_model.pb) under ``path``."""
    if not os.path.isdir(path) or os.path.islink(path):
        return []
    return sorted(int(d) for d in os.listdir(path)
                  if d.isdigit() and os.path.isfile(os.path.join(path, d, "saved_model.pb")))


def check_export_target(export_dir, version, overwrite):
    """The absolute SavedModel path ``export`` would write; raises if it must not be written.

    Raises ``FileExistsError`` for an existing target without ``overwrite``, and
    ``ValueError`` for an unversioned overwrite of a TF Serving model folder (it would
    delete every version in it). Nothing is touched either way.
    """
    target = os.path.abspath(os.fspath(export_dir))
    if version is not None:
        target = os.path.join(target, str(version))
    atomic.check_target(target, overwrite)
    versions = [] if version is not None else serving_versions(target)
    if versions:
        raise ValueError(
            f"export_dir {target!r} is a TF Serving model folder that holds versions "
            f"{versions}; overwrite=True without version= would delete them all. Pass "
            "version= to write one version, or remove the folder yourself. It was left as "
            "it was.")
    return target


def export(model, export_dir, kind="feature_vector", labels=None, version=None, overwrite=False,
           fold_standardization=False, image_size=None, top_k=5, label_scores=None,
           max_request_pixels=None):
    """Exports a BiT model as a SavedModel for TF Hub, Keras 3, TF Serving and TFLite users.

    The SavedModel needs no bit_keras to load. Its root is a TF Hub Reusable SavedModel
    (``__call__(images, training=False)``, ``variables``, ``trainable_variables``,
    ``regularization_losses``), so ``hub.KerasLayer(path, trainable=True)`` fine-tunes it.
    Signatures: ``serving_default`` (``images`` float32 ``[batch, height, width, 3]`` in
    [0, 1] -> ``feature_vector`` or ``logits``), ``image_bytes`` (a batch of JPEG/PNG
    strings, resized to ``image_size``) and, with ``labels``, ``labels`` plus the outputs
    ``top_labels``, ``top_scores`` and ``top_indices``. Written beside the target and
    renamed into place at the end (``docs/design.md``, "Exported SavedModels").

    Args:
        model: a BiT ``keras.Model`` from ``bit_keras.build``/``load``/``resnet_v2``.
        export_dir: the SavedModel directory, or the model directory TF Serving watches
            when ``version`` is given.
        kind: ``"feature_vector"`` (the pooled pre-logits, ``2048 * width`` floats),
            ``"classifier"`` (the head's logits; needs a model with a head) or
            ``"feature_pyramid"`` (a dict of the block outputs ``block1`` .. ``block4``,
            strides 4 to 32, or less with the model's ``output_stride``: for detection and
            segmentation heads).
        labels: the class names, embedded as an asset; only with ``kind="classifier"``: a
            text file with one name per line or a sequence of names, as many as the head has
            classes. ``None`` embeds the shipped names of an upstream or ILSVRC-2012 head
            (``bit_keras.class_names``: 21843 for BiT-M, 1000 for BiT-S and ``-ILSVRC2012``)
            and none for other heads; ``False`` embeds none.
        version: a non-negative int: write ``<export_dir>/<version>/`` (TF Serving layout).
        overwrite: replace an existing target; otherwise an existing target is an error and
            is left as it was.
        fold_standardization: store the convolution kernels already weight-standardized:
            faster serving, but the artefact is serving-only (its ``trainable_variables`` is
            empty and its variables are no longer the BiT parameters).
        image_size: the side ``image_bytes`` resizes to; default the variant's resolution
            (224 for names outside ``bit_keras.VARIANTS``).
        top_k: how many top classes the labelled outputs report.
        label_scores: ``"softmax"`` or ``"sigmoid"`` for ``top_scores``; default as the
            head was trained (sigmoid for BiT-M's 21k head, softmax otherwise).
        max_request_pixels: the most pixels one ``image_bytes`` request may make after the
            resize (entries x ``image_size``**2); larger requests are refused with
            ``INVALID_ARGUMENT``. Default 64 images at 224 (docs/reliability.md).

    Returns:
        The path of the written SavedModel directory.

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1", weights="BiT-M-R50x1.npz")
    >>> bit_keras.export(model, "/models/bit_m_r50x1_fv", kind="feature_vector", version=1)
    '/models/bit_m_r50x1_fv/1'
    """
    _check_args(kind, version, image_size, top_k, label_scores)
    checks.positive_int(max_request_pixels, "max_request_pixels", allow_none=True)
    net = bit_module.select_model(model, kind)
    labels_names, shipped = _labels(model, net, kind, labels)
    if label_scores is None:
        label_scores = classes.scores_of(model) if shipped else "softmax"
    image_size = image_size or default_image_size(model)
    target = check_export_target(export_dir, version, overwrite)
    if fold_standardization:
        net = fold.fold_standardization(net)
    net = bit_module.portable_copy(net)
    with atomic.atomic_directory(target, overwrite) as tmp, \
            tempfile.TemporaryDirectory(prefix="bit_keras_labels_") as labels_dir:
        labels_path = None
        if labels_names is not None:
            # The asset keeps this file's name inside the SavedModel: assets/labels.txt.
            labels_path = os.path.join(labels_dir, "labels.txt")
            with open(labels_path, "w", encoding="utf-8") as f:
                f.write("\n".join(labels_names) + "\n")
        # Plain TensorFlow ops, even inside a caller's compiled_kernels(): runs anywhere.
        with bit_layers.compiled_kernels(False):
            root = bit_module.BitModule(net, kind, image_size, labels_path, top_k,
                                        label_scores, trainable=not fold_standardization,
                                        labels_names=labels_names,
                                        max_request_pixels=max_request_pixels
                                        or sigs.MAX_REQUEST_PIXELS)
            tf.saved_model.save(root, tmp, signatures=root.signatures())
        metadata = _metadata(model, net, kind, image_size, labels_names, top_k, label_scores,
                             fold_standardization)
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, METADATA_PATH), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=1)
    return target


def _metadata(model, net, kind, image_size, labels_names, top_k, label_scores, folded):
    import bit_keras
    if isinstance(net.output, dict):  # a pyramid: [batch, height, width, channels] per block
        outputs = {k: ["float32", [None, None, None, int(v.shape[-1])]]
                   for k, v in net.output.items()}
        output_size = sum(v[1][-1] for v in outputs.values())
    else:
        output_size = int(net.output.shape[-1])
        outputs = {sigs.OUTPUT_KEYS[kind]: ["float32", [None, output_size]]}
    if labels_names:
        k = min(top_k, output_size)
        outputs.update(top_labels=["string", [None, k]], top_scores=["float32", [None, k]],
                       top_indices=["int32", [None, k]])
    variant = _variant(model)
    spec = bit_model.spec_of(model)
    return {
        "name": model.name, "kind": kind, "output_size": output_size,
        "image_size": image_size, "fold_standardization": folded,
        "num_parameters": int(sum(v.numpy().size for v in net.weights)),
        "upstream": variant.upstream if variant else None,
        "architecture": model.architecture if spec else None,
        "labels": len(labels_names) if labels_names else 0,
        "label_scores": label_scores if labels_names else None,
        "signatures": {
            "serving_default": {"inputs": {"images": ["float32", [None, None, None, 3]]},
                                "outputs": outputs},
            "image_bytes": {"inputs": {"image_bytes": ["string", [None]]}, "outputs": outputs},
            **({"labels": {"inputs": {}, "outputs": {"labels": ["string", [output_size]]}}}
               if labels_names else {}),
        },
        "bit_keras_version": bit_keras.__version__,
    }
