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


import keras
import numpy as np
import tensorflow as tf

from bit_keras.models import resolver
from bit_keras.training import loop, model_setup, runner
from bit_keras.training import step as steps_lib
from bit_keras.utils import checks

BASE_LR = 0.03
WEIGHT_DECAY = 3e-4
WARMUP_STEPS = 5000
CLIP_NORM = 1.0
MIXUP_ALPHA = 1.0
EPOCHS = 1200
NOT_DECAYED = ["gamma", "beta", "bias"]  # GroupNorm parameters and biases: kernels only


DistillResult = runner.Result  # the one Result type (with ``agreement``)


class FunctionMatching(steps_lib.Loss):
    """The step's loss: KL(teacher || student) at ``temperature`` against the teacher's
    outputs on the very images the student sees (the labels are not learnt; evaluation
    scores them with softmax)."""

    def __init__(self, teacher, temperature=1.0):
        super().__init__("softmax")
        self.teacher, self.temperature = teacher, temperature

    def targets(self, images, labels):
        return self.teacher(images, training=False)

    def per_example(self, targets, logits):
        return steps_lib.distillation_loss(targets, logits, self.temperature)


class Distill(runner.Recipe):
    """Function matching: Adam with clipping and decoupled decay, warmup then cosine,
    consistent views (made once, seen by teacher and student)."""

    def __init__(self, teacher, steps=None, epochs=None, base_lr=BASE_LR,
                 weight_decay=WEIGHT_DECAY, warmup_steps=None, clip_norm=CLIP_NORM,
                 temperature=1.0, crop=224, augment="inception", resize=None,
                 mixup_alpha=MIXUP_ALPHA):
        self.teacher, self.steps, self.epochs, self.base_lr = teacher, steps, epochs, base_lr
        self.weight_decay, self.warmup_steps, self.clip_norm = weight_decay, warmup_steps, clip_norm
        self.temperature, self.crop, self.augment = temperature, crop, augment
        self.resize, self.mixup_alpha = resize, mixup_alpha

    def _resize(self):  # big_vision's bit_i1k: resize to 9/8 of the crop
        return self.resize or self.crop * 9 // 8

    def check(self):
        loop.check_numbers(base_lr=self.base_lr)
        checks.positive_int(self.crop, "crop")
        for name, value in (("clip_norm", self.clip_norm), ("temperature", self.temperature)):
            checks.finite_number(value, name, strictly_positive=True)
        checks.finite_number(self.weight_decay, "weight_decay")
        checks.finite_number(self.epochs, "epochs", strictly_positive=True, allow_none=True)
        checks.positive_int(self.steps, "steps", allow_none=True)
        checks.non_negative_int(self.warmup_steps, "warmup_steps", allow_none=True)
        checks.positive_int(self.resize, "resize", allow_none=True)
        from bit_keras import data
        data.check_augmentation(self.augment, self._resize(), self.crop, self.mixup_alpha)

    def plan(self, source, model, settings):
        steps = self.steps
        if steps is None:
            epochs = EPOCHS if self.epochs is None else self.epochs
            checks.finite_number(epochs, "epochs", strictly_positive=True)
            steps = max(1, round(epochs * source.num_examples / settings.batch))
        steps = checks.positive_int(steps, "steps")
        lr = schedule(steps, self.base_lr, self.warmup_steps)
        return runner.Plan(
            steps, lr, self.augment, self._resize(), self.crop,
            self.mixup_alpha, optimizer=_optimizer(self.base_lr, self.weight_decay,
                                                   self.clip_norm),
            text=f"Function matching: {steps} steps at batch {settings.batch}, Adam lr "
                 f"{self.base_lr:g} (warmup {lr.warmup_steps}, cosine)")

    def ready(self, model, source, settings):
        self.teacher = load_teacher(self.teacher)
        outputs = int(self.teacher(tf.zeros([1, self.crop, self.crop, 3]),
                                   training=False).shape[-1])
        if outputs != source.num_classes:
            raise ValueError(f"The teacher has {outputs} outputs but the data has "
                             f"{source.num_classes} classes; distil on data of the teacher's "
                             "classes")

    def loss(self, source, settings):
        teacher = model_setup.frozen_replica(self.teacher, settings.strategy, settings.precision)
        return FunctionMatching(teacher, self.temperature)

    def pinned(self, plan):
        return {"steps": plan.steps, "base_lr": self.base_lr, "warmup_steps":
                plan.schedule.warmup_steps, "weight_decay": self.weight_decay,
                "clip_norm": self.clip_norm, "temperature": self.temperature,
                "augment": plan.augment, "resize": plan.resize, "crop": plan.crop,
                "mixup_alpha": plan.mixup_alpha}

    def finish(self, model, eval_input):
        return {"agreement": None if eval_input is None else agreement(model, self.teacher,
                                                                        eval_input())}


def load_teacher(teacher):
    """A teacher: a Keras model; a variant name (``"BiT-M-R152x2-teacher-224"``, its weights
    found like ``bit_keras.load``'s); a checkpoint file (``.npz``, ``.h5``, ``.safetensors``
    of a width-multiplied BiT); a ``.keras`` file; or a reusable SavedModel directory
    (``bit_keras.export`` of a classifier, a TF Hub BiT classifier) called as
    ``teacher(images)`` (``bit_keras.models.resolver.resolve``)."""
    return resolver.resolve(teacher, name="teacher")


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
            progress=None, data_service=None,
            jit_compile=None, steps_per_execution=1, remat=False):
    """Distils ``teacher`` into ``student`` by function matching, resumably.

    Args:
        teacher: see ``load_teacher``; its outputs must have one logit per class of the data.
        student: a BiT model (or what ``bit_keras.models.resolver.resolve`` takes); a head
            of the wrong size is replaced by a zero one.
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
        seed, precision, strategy, eval_every, checkpoint_every, progress, data_service,
            jit_compile, steps_per_execution, remat: as for ``bit_keras.fine_tune``.

    Returns:
        A ``bit_keras.training.Result`` (with ``agreement``).

    Example:

    >>> teacher = bit_keras.load("BiT-M-R152x2-teacher-224")
    >>> student = bit_keras.load("BiT-M-R50x1", num_classes=1000)
    >>> result = bit_keras.distill(teacher, student, "imagenet2012", run_dir="runs/fm",
    ...                            steps=100_000, strategy="mirrored")
    """
    recipe = Distill(teacher, steps, epochs, base_lr, weight_decay, warmup_steps, clip_norm,
                     temperature, crop, augment, resize, mixup_alpha)
    return runner.run(recipe, student, train_data, eval_data, runner.RunSettings(
        run_dir=run_dir, batch=batch, batch_split=batch_split, precision=precision,
        strategy=strategy, seed=seed, eval_every=eval_every, checkpoint_every=checkpoint_every,
        progress=progress, data_service=data_service,
        jit_compile=jit_compile, steps_per_execution=steps_per_execution, remat=remat))
