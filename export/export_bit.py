"""Exports a BiT checkpoint as a SavedModel, and optionally as TFLite and a TF Hub archive.

A thin command line over ``bit_keras.export``, ``bit_keras.export_tflite`` and
``bit_keras.publish`` (``run`` below takes the same options from Python):

    python export/export_bit.py --model BiT-M-R50x1 --weights BiT-M-R50x1.npz \
        --kind feature_vector --out exports/bit_m-r50x1_fv --version 1 \
        --tflite exports/bit_m-r50x1_fv.tflite --publish_dir public/

Prints the SavedModel path (and the other files written); on an error prints one line and
exits with status 1.
"""

import os
import sys

from absl import app
from absl import flags

# Run from a checkout without installing: the repository root holds the bit_keras package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A bit_keras.VARIANTS name (BiT-M-R50x1) or an architecture (R50x1).")
flags.DEFINE_string("weights", None, "Checkpoint: .npz (official/timm), .h5 or .safetensors. "
                    "Default: the official file, downloaded once.")
flags.DEFINE_enum("kind", "feature_vector", ["feature_vector", "classifier"], "What to export.")
flags.DEFINE_string("out", None, "SavedModel directory (TF Serving model directory with --version).")
flags.DEFINE_integer("version", None, "Write <out>/<version>/ (TF Serving layout).")
flags.DEFINE_integer("num_classes", None, "Put a fresh zero head of this size (classifier only).")
flags.DEFINE_string("labels", None, "Class names, one per line (classifier only).")
flags.DEFINE_integer("image_size", None, "Side the image_bytes signature resizes to.")
flags.DEFINE_boolean("fold_standardization", False, "Serving-only artefact with pre-standardized kernels.")
flags.DEFINE_boolean("overwrite", False, "Replace existing outputs.")
flags.DEFINE_string("tflite", None, "Also write this .tflite file.")
flags.DEFINE_enum("quantize", None, ["dynamic_int8"], "TFLite quantization.")
flags.DEFINE_string("publish_dir", None, "Also pack a .tar.gz for hub.KerasLayer(url) here.")


def run(model, out, weights=None, kind="feature_vector", version=None, num_classes=None,
        labels=None, image_size=None, fold_standardization=False, overwrite=False, tflite=None,
        quantize=None, publish_dir=None):
    """Loads a checkpoint and writes the export(s); returns the list of paths written."""
    import bit_keras
    from bit_keras.exporter import atomic
    # Refuse an existing target before spending minutes loading a large checkpoint.
    atomic.check_target(os.path.abspath(out if version is None else os.path.join(out, str(version))),
                        overwrite)
    keras_model = bit_keras.load(model, weights=weights, num_classes=num_classes,
                                 include_top=kind == "classifier")
    written = [bit_keras.export(keras_model, out, kind=kind, labels=labels, version=version,
                                overwrite=overwrite, fold_standardization=fold_standardization,
                                image_size=image_size)]
    if tflite:
        written.append(bit_keras.export_tflite(keras_model, tflite, kind=kind, quantize=quantize,
                                               overwrite=overwrite))
    if publish_dir:
        written.append(bit_keras.publish(written[0], publish_dir, overwrite=overwrite))
    return written


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}")
    for name in ("model", "out"):
        if not getattr(FLAGS, name):
            _fail(f"--{name} is required")
    from bit_keras.checkpoint_io import CheckpointError
    try:
        written = run(FLAGS.model, FLAGS.out, weights=FLAGS.weights, kind=FLAGS.kind,
                      version=FLAGS.version, num_classes=FLAGS.num_classes, labels=FLAGS.labels,
                      image_size=FLAGS.image_size, fold_standardization=FLAGS.fold_standardization,
                      overwrite=FLAGS.overwrite, tflite=FLAGS.tflite, quantize=FLAGS.quantize,
                      publish_dir=FLAGS.publish_dir)
    except (ValueError, OSError, CheckpointError) as e:
        _fail(e)
    for path in written:
        print(path)


def _fail(message):
    text = " ".join(str(message).split())
    print(f"export_bit.py: error: {text}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    app.run(main)
