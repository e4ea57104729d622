"""``bit-keras vtab``: the VTAB-1k protocol (``bit_keras.vtab.run``) from the command line.

    bit-keras vtab --model=BiT-M-R50x1 --weights=BiT-M-R50x1.npz --logdir=runs --name=vtab \\
        --tasks=dtd,eurosat,svhn --datadir=~/tensorflow_datasets

Prints the results table and, last, a JSON line with the summary; any error is one line and
status 1. Running again with the same run folder skips the tasks already scored.
"""

import json

from absl import flags

from bit_keras.cli import common, shared_flags

PROG = "vtab"


def define_flags(fv=flags.FLAGS):
    """The command's flags."""
    shared_flags.define(fv, "name", "logdir", "weights", "bit_pretrained_dir", "datadir",
                        "batch_split", "hyperrule", "precision", "strategy", "seed", "steps",
                        model="BiT-M-R50x1", batch=512,
                        helps={"batch": "Fine-tuning batch.",
                               "steps": "Steps per task (default: the HyperRule's 500)."})
    flags.DEFINE_list("tasks", None, "Comma-separated task names (default: all 19).",
                      flag_values=fv)


def run_from_flags(fv=flags.FLAGS):
    """Runs ``bit_keras.vtab.run`` with the parsed flags; returns (results, summary)."""
    from bit_keras import vtab

    common.require(fv, "name", "logdir")
    tasks = vtab.tasks.chosen_tasks(fv.tasks, "--tasks")
    settings = shared_flags.run_settings(fv)
    model = shared_flags.model(fv)
    options = {"steps": fv.steps} if fv.steps else {}
    return vtab.run(model, settings.pop("run_dir"), tasks=tasks, data_dir=fv.datadir,
                    hyperrule=fv.hyperrule, **settings, **options)


def main(argv, fv=flags.FLAGS):
    """``bit-keras vtab``: the table and a JSON summary line, or one error line (status 1)."""
    from bit_keras import vtab

    status, outcome = common.guarded(PROG, argv, lambda: run_from_flags(fv))
    if status == 0:
        results, summary = outcome
        print(vtab.table(results, summary))
        print(json.dumps(summary))
    return status
