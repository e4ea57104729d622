"""``bit-keras fine_tune``: BiT-HyperRule fine-tuning from the command line.

The flags of the official ``train.py`` (``--model``, ``--dataset``, ``--logdir``, ``--name``,
``--batch``, ``--batch_split``, ``--base_lr``, ``--bit_pretrained_dir``, ...) over
``bit_keras.fine_tune``. Example:

    bit-keras fine_tune --model=BiT-M-R50x1 --weights=BiT-M-R50x1.npz \\
        --dataset=flowers/ --logdir=runs --name=flowers --batch=64 --examples_per_class=10
"""

from absl import flags

from bit_keras.cli import common, shared_flags
from bit_keras.training import finetuning, hyperrule

PROG = "fine_tune"


def define_flags(fv=flags.FLAGS):
    """The command's flags: the official BiT ones plus bit_keras' additions."""
    shared_flags.define(
        fv, "name", "logdir", "dataset", "eval_dataset", "datadir", "tfds_manual_dir",
        "weights", "bit_pretrained_dir", "batch_split", "precision", "strategy", "seed",
        "eval_every", "data_service", "hyperrule", "steps", model="BiT-M-R50x1", batch=512,
        checkpoint_every=500, base_lr=hyperrule.BASE_LR, resize=None, crop=None,
        mixup_alpha=None,
        helps={"eval_dataset": "Evaluation data (default: the test split).",
               "steps": "Total steps (default: the HyperRule's).",
               "base_lr": "Learning rate (at batch 512 with --batch_scaling).",
               "resize": "Override the HyperRule resize side.",
               "crop": "Override the HyperRule crop side.",
               "mixup_alpha": "Override the HyperRule MixUp alpha."})
    flags.DEFINE_integer("examples_per_class", None, "Few-shot: images per class.", flag_values=fv)
    flags.DEFINE_integer("examples_per_class_seed", 0, "Seed of the few-shot draw.", flag_values=fv)
    flags.DEFINE_bool("batch_scaling", False, "Scale lr by batch/512 and steps by 512/batch, as "
                      "the official colab and bit_keras.fine_tune do. Default off: --batch, "
                      "--base_lr and the schedule mean what they mean in the official train.py.",
                      flag_values=fv)
    flags.DEFINE_integer("batch_eval", 32, "Evaluation batch per replica (official train.py).",
                         flag_values=fv)
    flags.DEFINE_bool("save", True, "Write checkpoints and weights; --nosave (or the official "
                      "--no-save) writes no run folder at all: nothing to resume.", flag_values=fv)
    flags.DEFINE_integer("freeze", None, "Freeze the stem (0) and blocks 1..k.", flag_values=fv)
    flags.DEFINE_bool("export", False, "Also export feature_vector and classifier SavedModels "
                      "into <run>/export/.", flag_values=fv)


def run_from_flags(fv=flags.FLAGS):
    """Runs ``fine_tune`` with the options of parsed flags; returns its result."""
    from bit_keras import data

    common.require(fv, "name", "logdir", "dataset")
    settings = shared_flags.run_settings(fv, save=fv.save)
    model = shared_flags.model(fv)
    if not fv.save and fv.export:
        raise ValueError("--export needs the run saved; drop --no-save (or --nosave)")
    train_data, eval_data = common.data_specs(fv, data)
    result = finetuning.fine_tune(
        model, train_data, eval_data, **settings, hyperrule=fv.hyperrule,
        base_lr=fv.base_lr, steps=fv.steps, resize=fv.resize, crop=fv.crop,
        mixup_alpha=fv.mixup_alpha, examples_per_class=fv.examples_per_class,
        examples_per_class_seed=fv.examples_per_class_seed, freeze=fv.freeze,
        batch_scaling=fv.batch_scaling, eval_batch=fv.batch_eval)
    if fv.export and result.weights_path is not None:
        finetuning.export_run(result.model, settings["run_dir"])
    return result


def main(argv, fv=flags.FLAGS):
    """``bit-keras fine_tune``: a JSON summary, or one error line and status 1."""
    return common.training_main(PROG, argv, lambda: run_from_flags(fv))
