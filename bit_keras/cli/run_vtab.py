"""``bit-keras vtab``: the VTAB-1k protocol (``bit_keras.vtab.run``) from the command line.

    bit-keras vtab --model=BiT-M-R50x1 --weights=BiT-M-R50x1.npz --logdir=runs --name=vtab \\
        --tasks=dtd,eurosat,svhn --datadir=~/tensorflow_datasets

Prints the results table and, last, a JSON line with the summary; any error is one line and
status 1. Running again with the same run folder skips the tasks already scored.
"""

import json
import os

from absl import flags

from bit_keras import training
from bit_keras.cli import common
from bit_keras.cli.run_fine_tune import load_model

PROG = "vtab"


def define_flags(fv=flags.FLAGS):
    """The command's flags."""
    flags.DEFINE_string("name", None, "Run name: the run folder is <logdir>/<name>.", flag_values=fv)
    flags.DEFINE_string("logdir", None, "Where run folders go.", flag_values=fv)
    flags.DEFINE_string("model", "BiT-M-R50x1", "A variant name, an architecture or a .keras file.",
                        flag_values=fv)
    flags.DEFINE_string("weights", None, "Its checkpoint (default: the cache or a download).",
                        flag_values=fv)
    flags.DEFINE_string("bit_pretrained_dir", ".", "Folder of official BiT checkpoints.",
                        flag_values=fv)
    flags.DEFINE_list("tasks", None, "Comma-separated task names (default: all 19).",
                      flag_values=fv)
    flags.DEFINE_string("datadir", None, "TFDS data_dir.", flag_values=fv)
    flags.DEFINE_integer("batch", 512, "Fine-tuning batch.", flag_values=fv)
    flags.DEFINE_integer("batch_split", 1, "Micro-batches per batch.", flag_values=fv)
    flags.DEFINE_integer("steps", None, "Steps per task (default: the HyperRule's 500).",
                         flag_values=fv)
    flags.DEFINE_enum("hyperrule", "code", ("code", "paper"), "BiT-HyperRule flavour.",
                      flag_values=fv)
    flags.DEFINE_enum("precision", "float32", tuple(training.PRECISIONS), "Compute precision.",
                      flag_values=fv)
    flags.DEFINE_enum("strategy", "default", training.STRATEGIES, "tf.distribute strategy.",
                      flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Augmentation seed.", flag_values=fv)


def run_from_flags(fv=flags.FLAGS):
    """Runs ``bit_keras.vtab.run`` with the parsed flags; returns (results, summary)."""
    from bit_keras import vtab

    common.require(fv, "name", "logdir")
    unknown = [t for t in fv.tasks or () if t not in vtab.TASKS]
    if unknown:
        raise ValueError(f"--tasks has unknown VTAB-1k tasks {unknown}. Accepted: "
                         f"{', '.join(vtab.TASKS)}")
    tasks = fv.tasks or list(vtab.TASKS)
    strategy = training.make_strategy(fv.strategy)
    model = load_model(fv.model, fv.weights, fv.bit_pretrained_dir)
    options = {"steps": fv.steps} if fv.steps else {}
    return vtab.run(model, os.path.join(fv.logdir, fv.name), tasks=tasks, data_dir=fv.datadir,
                    batch=fv.batch, batch_split=fv.batch_split, hyperrule=fv.hyperrule,
                    seed=fv.seed, strategy=strategy, precision=fv.precision, **options)


def main(argv, fv=flags.FLAGS):
    """``bit-keras vtab``: the table and a JSON summary line, or one error line (status 1)."""
    from bit_keras import vtab

    status, outcome = common.guarded(PROG, argv, lambda: run_from_flags(fv))
    if status == 0:
        results, summary = outcome
        print(vtab.table(results, summary))
        print(json.dumps(summary))
    return status
