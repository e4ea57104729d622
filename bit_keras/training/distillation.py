"""``bit_keras.distill``: function matching (Beyer et al., "Knowledge distillation: A good
teacher is patient and consistent", arXiv 2106.05237), on the shared training loop.

The student learns the teacher's function, not the labels: the loss is KL(teacher ||
student) at temperature 1 on the very images the student sees, so the teacher's outputs are
computed on the fly, one teacher forward pass per step (about a third of a student step of
the same size, more for a larger teacher). "Consistent" views: each batch is made once, with
an inception crop, a flip and MixUp (alpha 1), and both networks see it. Defaults are
big_vision's published recipe (``configs/proj/distill/bit_i1k.py``): batch 4096, Adam with
gradient clipping at global norm 1, learning rate 0.03 with a linear warmup (5000 steps)
then cosine decay, decoupled weight decay 3e-4 on kernels, 1200 epochs ("patient").
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from bit_keras import training
from bit_keras.training import finetuning, loop, run_lock
from bit_keras.utils import checks

BASE_LR = 0.03
WEIGHT_DECAY = 3e-4
WARMUP_STEPS = 5000
CLIP_NORM = 1.0
MIXUP_ALPHA = 1.0
EPOCHS = 1200
WEIGHTS_FILE = "weights.npz"
NOT_DECAYED = ["gamma", "beta", "bias"]  # GroupNorm parameters and biases: kernels only


@dataclasses.dataclass
class DistillResult:
    """What ``distill`` returns: the student, the history (``step``, ``lr``, ``loss`` (the
    KL), ``val_loss`` and ``accuracy`` on the labels), the last step, the run folder, the
    official-layout ``.npz``, the checkpoint resumed from, and the top-1 agreement of student
    and teacher on the evaluation data (None without it)."""

    model: object
    history: list
    step: int
    run_dir: str | None
    weights_path: str | None
    resumed_from: str | None
    agreement: float | None

    @property
    def accuracy(self):
        return training.reporting.last_accuracy(self.history)


def load_teacher(teacher):
    """A teacher: a Keras model; a variant name (``"BiT-M-R152x2-teacher-224"``, its weights
    found like ``bit_keras.load``'s); a checkpoint file (``.npz``, ``.h5``, ``.safetensors``
    of a width-multiplied BiT); or a reusable SavedModel directory (``bit_keras.export`` of a
    classifier, a TF Hub BiT classifier) called as ``teacher(images)``."""
    import bit_keras
    from bit_keras.checkpoints import formats, transfer

    if isinstance(teacher, keras.Model):
        return teacher
    if not isinstance(teacher, (str, os.PathLike)):
        raise ValueError("teacher must be a Keras model, a bit_keras variant name, a checkpoint "
                         f"file or a SavedModel directory. Received: {type(teacher).__name__}")
    teacher = os.fspath(teacher)
    if os.path.isdir(teacher):
        if not os.path.isfile(os.path.join(teacher, "saved_model.pb")):
            raise ValueError(f"teacher {teacher!r} is a folder without saved_model.pb")
        loaded = tf.saved_model.load(teacher)
        return lambda images, training=False: loaded(images)
    if os.path.isfile(teacher):
        tensors = formats.read_checkpoint(teacher)
        units, stem, classes = transfer.checkpoint_structure(tensors)
        if classes is None or stem % 64:
            raise ValueError(f"teacher {teacher!r} needs a head and a stem of 64 x width "
                             "channels to be built from the file alone; build the model and "
                             "pass it instead")
        model = bit_keras.resnet_v2(units, stem // 64, num_classes=classes)
        return bit_keras.load_weights(model, tensors)
    return bit_keras.load(teacher)


def _optimizer(base_lr, weight_decay, clip_norm):
    def make(schedule):
        # big_vision adds wd * w to the update before the schedule's multiplier, not times
        # the learning rate; Keras' AdamW subtracts lr * weight_decay * w: divide by base_lr.
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=weight_decay / base_lr,
                                           global_clipnorm=clip_norm)
        optimizer.exclude_from_weight_decay(var_names=NOT_DECAYED)
        return optimizer
    return make


def schedule(steps, base_lr=BASE_LR, warmup_steps=None):
    """Linear warmup from 0 to ``base_lr`` (default ``min(5000, steps // 10)`` steps), then
    cosine decay to 0 at ``steps``."""
    warmup = min(WARMUP_STEPS, steps // 10) if warmup_steps is None else warmup_steps
    checks.non_negative_int(warmup, "warmup_steps")
    warmup = min(warmup, steps - 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else base_lr, decay_steps=steps - warmup,
        warmup_target=base_lr if warmup else None, warmup_steps=warmup)


def agreement(student, teacher, dataset):
    """Top-1 agreement of ``student`` and ``teacher`` over a dataset of (images, labels)."""
    same = count = 0
    for images, _ in dataset:
        s = np.argmax(np.asarray(student(images, training=False)), -1)
        t = np.argmax(np.asarray(teacher(images, training=False)), -1)
        same, count = same + int(np.sum(s == t)), count + len(s)
    return same / count if count else None


def distill(teacher, student, train_data, eval_data=None, *, run_dir=None, batch=4096,
            batch_split=1, steps=None, epochs=None, base_lr=BASE_LR, weight_decay=WEIGHT_DECAY,
            warmup_steps=None, clip_norm=CLIP_NORM, temperature=1.0, crop=224,
            augment="inception", resize=None, mixup_alpha=MIXUP_ALPHA, seed=0,
            precision="float32", strategy=None, eval_every=None, checkpoint_every=1000,
            progress=None):
    """Distils ``teacher`` into ``student`` by function matching, resumably.

    Args:
        teacher: see ``load_teacher``; its outputs must have one logit per class of the data.
        student: a BiT model; a head of the wrong size is replaced by a zero one.
        train_data, eval_data: anything ``bit_keras.data.load_source`` takes. The labels are
            not learnt; ``eval_data`` scores the student's accuracy and its agreement with
            the teacher.
        run_dir: checkpoints, ``metrics.jsonl``, TensorBoard, ``weights.npz``; running again
            with the same folder resumes (the same final weights as an uninterrupted run).
        batch, batch_split: global batch, micro-batches per replica batch.
        steps, epochs: the run's length (default 1200 epochs, the recipe's).
        base_lr, weight_decay, warmup_steps, clip_norm: Adam at ``base_lr`` (not scaled with
            the batch), decoupled weight decay on kernels, warmup then cosine, gradient
            clipping at this global norm (each replica's share under several replicas).
        temperature: of the softmaxes the KL compares (1).
        crop, augment, resize, mixup_alpha: the views (``"inception"`` crops at 224, flips,
            MixUp alpha 1), made once per batch and seen by both networks.
        seed, precision, strategy, eval_every, checkpoint_every, progress: as for
            ``bit_keras.fine_tune``.

    Returns:
        A ``DistillResult``.

    Example:

    >>> teacher = bit_keras.load("BiT-M-R152x2-teacher-224")
    >>> student = bit_keras.load("BiT-M-R50x1", num_classes=1000)
    >>> result = bit_keras.distill(teacher, student, "imagenet2012", run_dir="runs/fm",
    ...                            steps=100_000, strategy="mirrored")
    """
    from bit_keras import data

    strategy = training.resolve_strategy(strategy)
    loop.check_numbers(base_lr=base_lr, every=dict(eval_every=eval_every,
                                                   checkpoint_every=checkpoint_every))
    checks.positive_int(crop, "crop")
    for name, value in (("clip_norm", clip_norm), ("temperature", temperature)):
        checks.finite_number(value, name, strictly_positive=True)
    checks.seed(seed)
    checks.finite_number(weight_decay, "weight_decay")
    checks.finite_number(epochs, "epochs", strictly_positive=True, allow_none=True)
    checks.positive_int(steps, "steps", allow_none=True)
    checks.non_negative_int(warmup_steps, "warmup_steps", allow_none=True)
    checks.positive_int(resize, "resize", allow_none=True)
    resize = resize or crop * 9 // 8
    data.check_augmentation(augment, resize, crop, mixup_alpha)
    training.check_settings(batch, batch_split, precision, strategy)
    source = data.load_source(train_data, "train")
    loop.check_classes(source)
    eval_source = (None if eval_data is None
                   else finetuning.eval_source_of(data, eval_data, explicit=True))
    if steps is None:
        epochs = EPOCHS if epochs is None else epochs
        checks.finite_number(epochs, "epochs", strictly_positive=True)
        steps = max(1, round(epochs * source.num_examples / batch))
    steps = checks.positive_int(steps, "steps")
    teacher = load_teacher(teacher)
    outputs = int(teacher(tf.zeros([1, crop, crop, 3]), training=False).shape[-1])
    if outputs != source.num_classes:
        raise ValueError(f"The teacher has {outputs} outputs but the data has "
                         f"{source.num_classes} classes; distil on data of the teacher's classes")
    lr = schedule(steps, base_lr, warmup_steps)
    logging.info("Function matching: %d steps at batch %d, Adam lr %g (warmup %d, cosine), "
                 "%d examples of %d classes", steps, batch, base_lr, lr.warmup_steps,
                 source.num_examples, source.num_classes)
    chief = training.strategy.worker(strategy)[2]
    with run_lock.hold(run_dir if chief else None):
        student = training.with_head(student, source.num_classes)
        skipped = training.skipped_log(run_dir)

        def train_input(context, start_step):
            return data.train_dataset(source, context.get_per_replica_batch_size(batch),
                                      resize=resize, crop=crop, mixup_alpha=mixup_alpha,
                                      seed=seed, start_step=start_step, augment=augment,
                                      input_context=context, skipped_log=skipped)

        eval_batch = max(1, batch // (batch_split * strategy.num_replicas_in_sync))

        def eval_input():
            return data.eval_dataset(eval_source, eval_batch, crop, skipped_log=skipped)

        result = training.train(
            student, train_input, steps, lr, batch, strategy=strategy, batch_split=batch_split,
            precision=precision, eval_input=None if eval_source is None else eval_input,
            eval_every=eval_every, run_dir=run_dir, checkpoint_every=checkpoint_every,
            progress=progress, optimizer=_optimizer(base_lr, weight_decay, clip_norm),
            teacher=teacher, temperature=temperature)
        weights_path = loop.save_final_weights(result.model, run_dir, chief, WEIGHTS_FILE)
        agree = None if eval_source is None else agreement(result.model, teacher, eval_input())
        return DistillResult(result.model, result.history, result.step, run_dir, weights_path,
                             result.resumed_from, agree)
