"""keras-hub preset folders from BiT checkpoints, and the preset name of every public model.

A preset folder (keras-hub's format) holds ``config.json`` and ``model.weights.h5`` (the
``BiTBackbone``), ``task.json``, ``task.weights.h5`` and ``preprocessor.json`` (a
``BiTImageClassifier`` when the checkpoint has a head), ``image_converter.json``,
``metadata.json`` (keras-hub's, plus a ``bit_keras`` entry) and ``class_names.txt`` when the
head's class names are known. ``keras_hub.upload_preset`` publishes it (docs/keras_hub.md).
"""

import json
import os

from bit_keras.keras_hub.backbone import BiTBackbone
from bit_keras.keras_hub.classifier import (
    BiTImageClassifier,
    BiTImageClassifierPreprocessor,
    BiTImageConverter,
)
from bit_keras.models import network, variants
from bit_keras.utils import atomic, checks

CLASS_NAMES_FILE = "class_names.txt"
# The converter's side for a model that is not a named variant: the side BiT's upstream
# models were trained at (a Variant's default resolution).
DEFAULT_IMAGE_SIZE = 224
# Every public BiT model with released weights: upstream, -ILSVRC2012, distilled, teachers.
PUBLIC_PRESETS = tuple(name for name, v in variants.VARIANTS.items()
                       if v.weights_path is not None and v.vtab_task is None)


def preset_name(name):
    """keras-hub's spelling of a BiT model name: ``BiT-M-R50x1`` -> ``bit_m_r50x1``."""
    return variants.get_variant(name).name.lower().replace("-", "_")


def preset_table():
    """The docs' preset table (docs/keras_hub.md), made from ``bit_keras.VARIANTS``."""
    rows = ["| preset | bit_keras name | upstream data | head | image size |",
            "|---|---|---|---|---|"]
    for name in PUBLIC_PRESETS:
        v = variants.VARIANTS[name]
        rows.append(f"| `{preset_name(name)}` | `{name}` | {v.upstream} | {v.num_classes} | "
                    f"{v.resolution} |")
    return "\n".join(rows)


def _bit_model(model_or_name, weights):
    import bit_keras
    if isinstance(model_or_name, network.BiTModel):
        if weights is not None:
            raise ValueError("weights is for a model name; a BiTModel carries its own. "
                             f"Received: weights={weights!r}")
        return model_or_name
    return bit_keras.load(model_or_name, weights=weights)


def _class_names(model, class_names):
    if class_names is not None or not model.include_top:
        return class_names
    from bit_keras import classes
    try:
        return classes.class_names(model)
    except ValueError:  # not an upstream head: no shipped names
        return None


def save_preset(model_or_name, weights=None, out_dir=None, image_size=None, class_names=None,
                overwrite=False):
    """Writes a keras-hub preset folder for a BiT checkpoint.

    ``keras_hub.models.Backbone.from_preset(out_dir)`` loads the backbone and, for a model
    with a head, ``keras_hub.models.ImageClassifier.from_preset(out_dir)`` the classifier,
    whose logits on 0-255 images are ``bit_keras.load``'s on the same images / 255.

    Args:
        model_or_name: a ``bit_keras.VARIANTS`` name or architecture (then ``weights`` is
            read by ``bit_keras.load``: any layout its strict loader reads; default: the
            official file), or a ``bit_keras.BiTModel``.
        weights: the checkpoint for a name.
        out_dir: the preset folder to write (written beside, then renamed into place).
        image_size: the side the converter resizes to; default: the variant's resolution
            (224 for unnamed models).
        class_names: the head's class names; default: the shipped names of an upstream or
            ILSVRC-2012 head, else none.
        overwrite: replace an existing ``out_dir``.

    Returns:
        ``out_dir``.

    Example:

    >>> bit_keras.save_preset("BiT-M-R50x1", "BiT-M-R50x1.npz", "presets/bit_m_r50x1")
    >>> keras_hub.upload_preset("kaggle://me/bit/keras/bit_m_r50x1", "presets/bit_m_r50x1")
    """
    if not out_dir:
        raise ValueError(f"out_dir must name a folder. Received: out_dir={out_dir!r}")
    checks.positive_int(image_size, "image_size", allow_none=True)
    atomic.check_target(os.path.abspath(out_dir), overwrite)
    model = _bit_model(model_or_name, weights)
    variant = variants.VARIANTS.get(model.variant)
    side = int(image_size) if image_size is not None else (
        variant.resolution if variant else DEFAULT_IMAGE_SIZE)
    class_names = _class_names(model, class_names)
    if class_names is not None and len(class_names) != model.num_classes:
        raise ValueError(f"class_names must have one name per class ({model.num_classes}). "
                         f"Received: {len(class_names)} names")
    backbone = BiTBackbone.from_bit_model(model)
    converter = BiTImageConverter(image_size=(side, side))
    with atomic.atomic_directory(out_dir, overwrite=overwrite) as tmp:
        if model.include_top:
            task = BiTImageClassifier(backbone, model.num_classes,
                                      preprocessor=BiTImageClassifierPreprocessor(converter))
            head = model.get_layer("head")
            task.output_dense.set_weights(head.get_weights())
            task.save_to_preset(tmp)
        else:
            backbone.save_to_preset(tmp)
            converter.save_to_preset(tmp)
        if class_names is not None:
            atomic.write_text(os.path.join(tmp, CLASS_NAMES_FILE),
                              "".join(f"{n}\n" for n in class_names))
        _add_metadata(tmp, model, variant, weights, side, class_names is not None)
    return out_dir


def _add_metadata(folder, model, variant, weights, side, has_names):
    path = os.path.join(folder, "metadata.json")
    with open(path, encoding="utf-8") as f:
        metadata = json.load(f)
    metadata["bit_keras"] = {
        "variant": model.variant, "architecture": model.architecture,
        "upstream": variant.upstream if variant else None,
        "num_classes": model.num_classes, "image_size": side,
        "weights": os.path.basename(str(weights)) if weights else None,
        "class_names": CLASS_NAMES_FILE if has_names else None,
        "input": "0-255 pixels; the converter scales by 1/255 to BiT's [0, 1]"}
    atomic.write_json(path, metadata, indent=4)
