"""``bit-keras distill``: function-matching distillation (``bit_keras.distill``).

    bit-keras distill --teacher=BiT-M-R152x2-teacher-224 --student=BiT-M-R50x1 \\
        --dataset=imagenet2012 --logdir=runs --name=fm --steps=100000

``--teacher`` and ``--student`` are what ``bit_keras.models.resolver.resolve`` takes: a
variant name or architecture (the student's weights as for ``fine_tune --model``), a
checkpoint file, a ``.keras`` file, or (the teacher) a SavedModel folder of a classifier. Prints a JSON summary, or one error line and exits with status 1.
"""

from absl import flags

from bit_keras.cli import common, shared_flags
from bit_keras.training import distillation

PROG = "distill"


def define_flags(fv=flags.FLAGS):
    """The command's flags: ``bit_keras.distill``'s options."""
    d = distillation
    shared_flags.define(
        fv, "name", "logdir", "dataset", "eval_dataset", "datadir", "tfds_manual_dir",
        "bit_pretrained_dir", "data_service", "batch_split", "precision", "strategy",
        "eval_every", "seed", "steps", "epochs", "warmup_steps", "resize", batch=4096,
        checkpoint_every=1000, base_lr=d.BASE_LR, weight_decay=d.WEIGHT_DECAY, crop=224,
        augment="inception", mixup_alpha=d.MIXUP_ALPHA,
        helps={"dataset": "Folder of class subfolders, or a TFDS name.",
               "eval_dataset": "Held-out data: accuracy and agreement.",
               "steps": "Steps (default: --epochs).",
               "epochs": f"Epochs (default {d.EPOCHS}).",
               "base_lr": "Adam learning rate.",
               "weight_decay": "Decoupled decay on kernels.",
               "warmup_steps": "Warmup (default min(5000, steps // 10))."})
    flags.DEFINE_string("teacher", None, "A variant name, a checkpoint file, a .keras file or "
                        "a SavedModel folder (a classifier).", flag_values=fv)
    flags.DEFINE_string("student", "BiT-M-R50x1", "A variant name, an R50x1-style "
                        "architecture, a checkpoint file or a .keras file.", flag_values=fv)
    flags.DEFINE_string("student_weights", None, "The student's starting checkpoint.",
                        flag_values=fv)
    flags.DEFINE_float("clip_norm", d.CLIP_NORM, "Gradient clipping global norm.", flag_values=fv)
    flags.DEFINE_float("temperature", 1.0, "Softmax temperature of the KL.", flag_values=fv)


def run_from_flags(fv=flags.FLAGS):
    """Runs ``distill`` with the options of parsed flags; returns its result."""
    from bit_keras import data

    common.require(fv, "name", "logdir", "teacher", "dataset")
    settings = shared_flags.run_settings(fv)
    train_data, eval_data = common.data_specs(fv, data, default_eval=False)
    student = shared_flags.model(fv, "student", "student_weights")
    return distillation.distill(
        fv.teacher, student, train_data, eval_data, **settings, steps=fv.steps,
        epochs=fv.epochs, base_lr=fv.base_lr, weight_decay=fv.weight_decay,
        warmup_steps=fv.warmup_steps, clip_norm=fv.clip_norm, temperature=fv.temperature,
        crop=fv.crop, augment=fv.augment, resize=fv.resize, mixup_alpha=fv.mixup_alpha)


def main(argv, fv=flags.FLAGS):
    """``bit-keras distill``: a JSON summary, or one error line and status 1."""
    return common.training_main(PROG, argv, lambda: run_from_flags(fv))
