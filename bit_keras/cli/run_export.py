"""``bit-keras export``: a BiT checkpoint as a SavedModel, and as TFLite, ONNX and a TF Hub archive.

A thin command line over ``bit_keras.export``, ``bit_keras.export_tflite``,
``bit_keras.export_onnx`` and ``bit_keras.publish`` (``run`` below takes the same options from Python):

    bit-keras export --model BiT-M-R50x1 --weights BiT-M-R50x1.npz \\
        --kind feature_vector --out exports/bit_m-r50x1_fv --version 1 \\
        --tflite exports/bit_m-r50x1_fv.tflite --onnx exports/bit_m-r50x1_fv.onnx \\
        --publish_dir public/

Prints the SavedModel path (and the other files written); on an error prints one line and
exits with status 1.
"""

import os

from absl import flags

from bit_keras.cli import common, shared_flags

PROG = "export"


def define_flags(fv=flags.FLAGS):
    """The command's flags, defined on ``fv``."""
    shared_flags.define(fv, model=None, weights=None,
                        helps={"model": "A bit_keras.VARIANTS name (BiT-M-R50x1) or an "
                                        "architecture (R50x1).",
                               "weights": "Checkpoint: .npz (official/timm), .h5 or "
                                          ".safetensors. Default: the official file, "
                                          "downloaded once."})
    flags.DEFINE_enum("kind", "feature_vector", ["feature_vector", "classifier"],
                      "What to export.", flag_values=fv)
    flags.DEFINE_string("out", None, "SavedModel directory (TF Serving model directory with "
                        "--version).", flag_values=fv)
    flags.DEFINE_integer("version", None, "Write <out>/<version>/ (TF Serving layout).",
                         flag_values=fv)
    flags.DEFINE_integer("num_classes", None, "Put a fresh zero head of this size (classifier "
                         "only).", flag_values=fv)
    flags.DEFINE_string("labels", None, "Class names, one per line (classifier only). Default: "
                        "the shipped names of an upstream or ILSVRC-2012 head.", flag_values=fv)
    flags.DEFINE_integer("image_size", None, "Side the image_bytes signature resizes to.",
                         flag_values=fv)
    flags.DEFINE_boolean("fold_standardization", False, "Serving-only artefact with "
                         "pre-standardized kernels.", flag_values=fv)
    flags.DEFINE_boolean("overwrite", False, "Replace existing outputs.", flag_values=fv)
    flags.DEFINE_string("tflite", None, "Also write this .tflite file.", flag_values=fv)
    flags.DEFINE_enum("quantize", None, ["float16", "dynamic_int8", "int8"], "TFLite "
                      "quantization (int8: full-integer, needs --representative_data).",
                      flag_values=fv)
    flags.DEFINE_string("representative_data", None, "A folder of images (class subfolders) "
                        "that calibrates --quantize=int8.", flag_values=fv)
    flags.DEFINE_string("onnx", None, "Also write this .onnx file (needs the onnx extra).",
                        flag_values=fv)
    flags.DEFINE_string("publish_dir", None, "Also pack a .tar.gz for hub.KerasLayer(url) here.",
                        flag_values=fv)


def run(model, out, weights=None, kind="feature_vector", version=None, num_classes=None,
        labels=None, image_size=None, fold_standardization=False, overwrite=False, tflite=None,
        quantize=None, publish_dir=None, representative_data=None, onnx=None):
    """Loads a checkpoint and writes the export(s); returns the list of paths written.

    Example:

    >>> bit_keras.cli.run_export.run("BiT-M-R50x1", "exports/fv", weights="BiT-M-R50x1.npz")
    """
    import bit_keras
    from bit_keras.exporter import hub_archive
    from bit_keras.exporter import saved_model as bit_saved_model
    from bit_keras.exporter import tflite as tflite_lib
    from bit_keras.utils import atomic
    # Every target is checked before minutes of loading and before any file is written.
    bit_saved_model.check_export_target(out, version, overwrite)
    for path in (tflite, onnx):
        if path:
            atomic.check_target(os.path.abspath(path), overwrite)
    if quantize and not tflite:
        raise ValueError(f"--quantize needs --tflite. Received: quantize={quantize!r}, "
                         "tflite=None")
    tflite_lib.check_quantize(quantize, representative_data, flags=True)
    keras_model = bit_keras.load(model, weights=weights, num_classes=num_classes,
                                 include_top=kind == "classifier")
    if publish_dir:  # its default name comes from the loaded model
        hub_archive.check_targets(publish_dir, hub_archive.default_name(
            {"name": keras_model.name, "kind": kind}), overwrite)
    written = [bit_keras.export(keras_model, out, kind=kind, labels=labels, version=version,
                                overwrite=overwrite, fold_standardization=fold_standardization,
                                image_size=image_size)]
    if tflite:
        written.append(bit_keras.export_tflite(keras_model, tflite, kind=kind, quantize=quantize,
                                               overwrite=overwrite, image_size=image_size,
                                               representative_data=representative_data))
    if onnx:
        written.append(bit_keras.export_onnx(keras_model, onnx, kind=kind, overwrite=overwrite))
    if publish_dir:
        written.append(bit_keras.publish(written[0], publish_dir, overwrite=overwrite))
    return written


def main(argv, fv=flags.FLAGS, prog=PROG):
    """Runs ``run`` with parsed flags: prints the paths written, or one error line (status 1)."""

    def run_flags():
        common.require(fv, "model", "out")
        return run(fv.model, fv.out, weights=fv.weights, kind=fv.kind, version=fv.version,
                   num_classes=fv.num_classes, labels=fv.labels, image_size=fv.image_size,
                   fold_standardization=fv.fold_standardization, overwrite=fv.overwrite,
                   tflite=fv.tflite, quantize=fv.quantize, publish_dir=fv.publish_dir,
                   representative_data=fv.representative_data, onnx=fv.onnx)

    status, written = common.guarded(prog, argv, run_flags)
    for path in written or ():
        print(path)
    return status
