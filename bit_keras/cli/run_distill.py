"""``bit-keras distill``: function-matching distillation (``bit_keras.distill``).

    bit-keras distill --teacher=BiT-M-R152x2-teacher-224 --student=BiT-M-R50x1 \\
        --dataset=imagenet2012 --logdir=runs --name=fm --steps=100000

``--teacher`` is a variant name, a checkpoint file or a SavedModel folder (a classifier);
``--student`` a variant name or architecture (its weights as for ``fine_tune --model``) or a
``.keras`` file. Prints a JSON summary, or one error line and exits with status 1.
"""

import os

from absl import flags

from bit_keras import training
from bit_keras.cli import common
from bit_keras.cli.run_fine_tune import load_model
from bit_keras.training import distillation

PROG = "distill"


def define_flags(fv=flags.FLAGS):
    """The command's flags: ``bit_keras.distill``'s options."""
    d = distillation
    flags.DEFINE_string("name", None, "Run name: the run folder is <logdir>/<name>.", flag_values=fv)
    flags.DEFINE_string("logdir", None, "Where run folders go.", flag_values=fv)
    flags.DEFINE_string("teacher", None, "A variant name, a checkpoint file or a SavedModel "
                        "folder (a classifier).", flag_values=fv)
    flags.DEFINE_string("student", "BiT-M-R50x1", "A variant name, an R50x1-style "
                        "architecture or a .keras file.", flag_values=fv)
    flags.DEFINE_string("student_weights", None, "The student's starting checkpoint.",
                        flag_values=fv)
    flags.DEFINE_string("bit_pretrained_dir", ".", "Folder of official BiT checkpoints.",
                        flag_values=fv)
    flags.DEFINE_string("dataset", None, "Folder of class subfolders, or a TFDS name.",
                        flag_values=fv)
    flags.DEFINE_string("eval_dataset", None, "Held-out data: accuracy and agreement.",
                        flag_values=fv)
    flags.DEFINE_string("datadir", None, "TFDS data_dir.", flag_values=fv)
    flags.DEFINE_string("tfds_manual_dir", None, "A manually downloaded TFDS dataset's files.",
                        flag_values=fv)
    flags.DEFINE_integer("batch", 4096, "Global batch size.", flag_values=fv)
    flags.DEFINE_integer("batch_split", 1, "Micro-batches per batch.", flag_values=fv)
    flags.DEFINE_integer("steps", None, "Steps (default: --epochs).", flag_values=fv)
    flags.DEFINE_float("epochs", None, f"Epochs (default {d.EPOCHS}).", flag_values=fv)
    flags.DEFINE_float("base_lr", d.BASE_LR, "Adam learning rate.", flag_values=fv)
    flags.DEFINE_float("weight_decay", d.WEIGHT_DECAY, "Decoupled decay on kernels.",
                       flag_values=fv)
    flags.DEFINE_integer("warmup_steps", None, "Warmup (default min(5000, steps // 10)).",
                         flag_values=fv)
    flags.DEFINE_float("clip_norm", d.CLIP_NORM, "Gradient clipping global norm.", flag_values=fv)
    flags.DEFINE_float("temperature", 1.0, "Softmax temperature of the KL.", flag_values=fv)
    flags.DEFINE_integer("crop", 224, "Training crop side.", flag_values=fv)
    flags.DEFINE_enum("augment", "inception", ("inception", "hyperrule"), "Training crops.",
                      flag_values=fv)
    flags.DEFINE_integer("resize", None, "Resize side for --augment=hyperrule.", flag_values=fv)
    flags.DEFINE_float("mixup_alpha", d.MIXUP_ALPHA, "MixUp alpha (0: none).", flag_values=fv)
    flags.DEFINE_enum("precision", "float32", tuple(training.PRECISIONS), "Compute precision.",
                      flag_values=fv)
    flags.DEFINE_enum("strategy", "default", training.STRATEGIES, "tf.distribute strategy.",
                      flag_values=fv)
    flags.DEFINE_integer("eval_every", None, "Steps between evaluations.", flag_values=fv)
    flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Augmentation seed.", flag_values=fv)


def run_from_flags(fv=flags.FLAGS):
    """Runs ``distill`` with the options of parsed flags; returns its result."""
    from bit_keras import data

    common.require(fv, "name", "logdir", "teacher", "dataset")
    strategy = training.make_strategy(fv.strategy)  # before any other TensorFlow work
    train_data, eval_data = common.data_specs(fv, data, default_eval=False)
    student = load_model(fv.student, fv.student_weights, fv.bit_pretrained_dir)
    return distillation.distill(
        fv.teacher, student, train_data, eval_data, run_dir=os.path.join(fv.logdir, fv.name),
        batch=fv.batch, batch_split=fv.batch_split, steps=fv.steps, epochs=fv.epochs,
        base_lr=fv.base_lr, weight_decay=fv.weight_decay, warmup_steps=fv.warmup_steps,
        clip_norm=fv.clip_norm, temperature=fv.temperature, crop=fv.crop, augment=fv.augment,
        resize=fv.resize, mixup_alpha=fv.mixup_alpha, seed=fv.seed, precision=fv.precision,
        strategy=strategy, eval_every=fv.eval_every, checkpoint_every=fv.checkpoint_every)


def main(argv, fv=flags.FLAGS):
    """``bit-keras distill``: a JSON summary, or one error line and status 1."""
    return common.training_main(PROG, argv, lambda: run_from_flags(fv))
