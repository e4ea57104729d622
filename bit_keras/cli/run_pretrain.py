"""``bit-keras pretrain``: the BiT upstream recipe from the command line.

A thin layer of flags over ``bit_keras.pretrain``. Example:

    bit-keras pretrain --model=R50x1 --dataset=imagenet2012 --logdir=runs --name=up \\
        --recipe=bit-s --batch=4096
"""

from absl import flags

from bit_keras.cli import common, shared_flags
from bit_keras.training import pretraining

PROG = "pretrain"


def define_flags(fv=flags.FLAGS):
    """The command line's flags."""
    shared_flags.define(
        fv, "name", "logdir", "dataset", "eval_dataset", "datadir", "tfds_manual_dir",
        "data_service", "batch_split", "precision", "strategy", "eval_every", "seed", "epochs",
        "steps", "warmup_steps", "resize", model="R50x1", batch=4096, checkpoint_every=1000,
        base_lr=pretraining.BASE_LR, weight_decay=pretraining.WEIGHT_DECAY, crop=224,
        augment="inception",
        helps={"model": "Architecture: a bit_keras.VARIANTS name or R50x1-style.",
               "dataset": "Folder of class subfolders, or a TFDS name.",
               "steps": "Steps instead of epochs.",
               "base_lr": "Learning rate at batch 256.",
               "warmup_steps": "Warmup steps (default: 5000, scaled down for short runs)."})
    flags.DEFINE_enum("recipe", "bit-m", sorted(pretraining.RECIPES), "Upstream schedule.", flag_values=fv)
    flags.DEFINE_enum("loss", None, ("softmax", "sigmoid"), "Default: sigmoid for multi-label data.", flag_values=fv)


def run_from_flags(fv=flags.FLAGS):
    """Runs ``pretrain`` with the options of parsed flags; returns its result."""
    import bit_keras
    from bit_keras import data

    common.require(fv, "name", "logdir", "dataset")
    settings = shared_flags.run_settings(fv)
    source, eval_data = common.data_specs(fv, data, default_eval=False)
    source = data.load_source(source, "train")
    with settings["strategy"].scope():
        model = bit_keras.build(fv.model, num_classes=source.num_classes)
    return pretraining.pretrain(
        model, source, eval_data, **settings, recipe=fv.recipe, epochs=fv.epochs,
        steps=fv.steps, base_lr=fv.base_lr, weight_decay=fv.weight_decay,
        warmup_steps=fv.warmup_steps, crop=fv.crop, augment=fv.augment, resize=fv.resize,
        loss=fv.loss)


def main(argv, fv=flags.FLAGS):
    """``bit-keras pretrain``: a JSON summary, or one error line and status 1."""
    return common.training_main(PROG, argv, lambda: run_from_flags(fv))
