"""``bit-keras pretrain``: the BiT upstream recipe from the command line.

A thin layer of flags over ``bit_keras.pretrain``. Example:

    bit-keras pretrain --model=R50x1 --dataset=imagenet2012 --logdir=runs --name=up \\
        --recipe=bit-s --batch=4096
"""

import os

from absl import flags

from bit_keras import training
from bit_keras.cli import common
from bit_keras.training import pretraining

PROG = "pretrain"


def define_flags(fv=flags.FLAGS):
    """The command line's flags."""
    flags.DEFINE_string("name", None, "Run name: the run folder is <logdir>/<name>.", flag_values=fv)
    flags.DEFINE_string("logdir", None, "Where run folders go.", flag_values=fv)
    flags.DEFINE_string("model", "R50x1", "Architecture: a bit_keras.VARIANTS name or R50x1-style.", flag_values=fv)
    flags.DEFINE_string("dataset", None, "Folder of class subfolders, or a TFDS name.", flag_values=fv)
    flags.DEFINE_string("datadir", None, "TFDS data_dir (default ~/tensorflow_datasets).",
                        flag_values=fv)
    flags.DEFINE_string("tfds_manual_dir", None, "Where a manually downloaded TFDS dataset's "
                        "files are (ImageNet's tars), to prepare it.", flag_values=fv)
    flags.DEFINE_string("data_service", None, "host:port of a tf.data service dispatcher whose "
                        "workers make the training batches (bit-keras data_service).",
                        flag_values=fv)
    flags.DEFINE_string("eval_dataset", None, "Held-out data for accuracy.", flag_values=fv)
    flags.DEFINE_enum("recipe", "bit-m", sorted(pretraining.RECIPES), "Upstream schedule.", flag_values=fv)
    flags.DEFINE_integer("batch", 4096, "Global batch size.", flag_values=fv)
    flags.DEFINE_integer("batch_split", 1, "Micro-batches per batch (saves memory).", flag_values=fv)
    flags.DEFINE_float("epochs", None, "Epochs (default: the recipe's).", flag_values=fv)
    flags.DEFINE_integer("steps", None, "Steps instead of epochs.", flag_values=fv)
    flags.DEFINE_float("base_lr", pretraining.BASE_LR, "Learning rate at batch 256.", flag_values=fv)
    flags.DEFINE_float("weight_decay", pretraining.WEIGHT_DECAY, "L2 weight decay on kernels.", flag_values=fv)
    flags.DEFINE_integer("warmup_steps", None, "Warmup steps (default: 5000, scaled down for short runs).", flag_values=fv)
    flags.DEFINE_integer("crop", 224, "Training crop side.", flag_values=fv)
    flags.DEFINE_enum("augment", "inception", ("inception", "hyperrule"), "Training crops.", flag_values=fv)
    flags.DEFINE_integer("resize", None, "Resize side for --augment=hyperrule.", flag_values=fv)
    flags.DEFINE_enum("loss", None, ("softmax", "sigmoid"), "Default: sigmoid for multi-label data.", flag_values=fv)
    flags.DEFINE_enum("precision", "float32", tuple(training.PRECISIONS), "Compute precision.", flag_values=fv)
    flags.DEFINE_enum("strategy", "default", training.STRATEGIES, "tf.distribute strategy.", flag_values=fv)
    flags.DEFINE_integer("eval_every", None, "Steps between evaluations.", flag_values=fv)
    flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Augmentation seed.", flag_values=fv)


def run_from_flags(fv=flags.FLAGS):
    """Runs ``pretrain`` with the options of parsed flags; returns its result."""
    import bit_keras
    from bit_keras import data

    common.require(fv, "name", "logdir", "dataset")
    strategy = training.make_strategy(fv.strategy)  # before any other TensorFlow work
    source, eval_data = common.data_specs(fv, data, default_eval=False)
    source = data.load_source(source, "train")
    with strategy.scope():
        model = bit_keras.build(fv.model, num_classes=source.num_classes)
    return pretraining.pretrain(
        model, source, eval_data, run_dir=os.path.join(fv.logdir, fv.name),
        recipe=fv.recipe, batch=fv.batch, batch_split=fv.batch_split, epochs=fv.epochs,
        steps=fv.steps, base_lr=fv.base_lr, weight_decay=fv.weight_decay,
        warmup_steps=fv.warmup_steps, crop=fv.crop, augment=fv.augment, resize=fv.resize,
        loss=fv.loss, seed=fv.seed,
        precision=fv.precision, strategy=strategy, eval_every=fv.eval_every,
        checkpoint_every=fv.checkpoint_every, data_service=fv.data_service)


def main(argv, fv=flags.FLAGS):
    """``bit-keras pretrain``: a JSON summary, or one error line and status 1."""
    return common.training_main(PROG, argv, lambda: run_from_flags(fv))
