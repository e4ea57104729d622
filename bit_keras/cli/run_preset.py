"""``bit-keras preset``: a BiT checkpoint as a keras-hub preset folder.

A thin command line over ``bit_keras.save_preset`` (``run`` below takes the same options from
Python):

    bit-keras preset --model BiT-M-R50x1-ILSVRC2012 \\
        --weights BiT-M-R50x1-ILSVRC2012.npz --out presets/bit_m_r50x1_ilsvrc2012

then ``keras_hub.models.ImageClassifier.from_preset("presets/bit_m_r50x1_ilsvrc2012")``
after ``import bit_keras.keras_hub``, and ``keras_hub.upload_preset`` to publish it
(docs/keras_hub.md). Prints the folder written; on an error prints one line and exits with
status 1.
"""

from absl import flags

from bit_keras.cli import common

PROG = "preset"


def define_flags(fv=flags.FLAGS):
    """The command's flags, defined on ``fv``."""
    flags.DEFINE_string("model", None, "A bit_keras.VARIANTS name (BiT-M-R50x1) or an "
                        "architecture (R50x1).", flag_values=fv)
    flags.DEFINE_string("weights", None, "Checkpoint: .npz (official/timm/big_vision), .h5 or "
                        ".safetensors. Default: the official file, downloaded once.",
                        flag_values=fv)
    flags.DEFINE_string("out", None, "The preset folder to write.", flag_values=fv)
    flags.DEFINE_integer("image_size", None, "Side the converter resizes to (default: the "
                         "model's resolution, 224 for unnamed models).", flag_values=fv)
    flags.DEFINE_string("labels", None, "Class names, one per line. Default: the shipped "
                        "names of an upstream or ILSVRC-2012 head.", flag_values=fv)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing folder.", flag_values=fv)


def run(model, out, weights=None, image_size=None, labels=None, overwrite=False):
    """Loads a checkpoint and writes the preset folder; returns its path.

    Example:

    >>> bit_keras.cli.run_preset.run("BiT-S-R50x1", "presets/bit_s_r50x1",
    ...                              weights="BiT-S-R50x1.npz")
    """
    import bit_keras
    class_names = None
    if labels:
        with open(labels, encoding="utf-8") as f:
            class_names = [line.strip() for line in f if line.strip()]
    return bit_keras.save_preset(model, weights, out, image_size=image_size,
                                 class_names=class_names, overwrite=overwrite)


def main(argv, fv=flags.FLAGS, prog=PROG):
    """Runs ``run`` with parsed flags: prints the folder written, or one error line (status 1)."""

    def run_flags():
        common.require(fv, "model", "out")
        return run(fv.model, fv.out, weights=fv.weights, image_size=fv.image_size,
                   labels=fv.labels, overwrite=fv.overwrite)

    status, written = common.guarded(prog, argv, run_flags)
    if written:
        print(written)
    return status
