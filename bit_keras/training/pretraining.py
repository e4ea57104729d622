"""``bit_keras.pretrain``: the BiT upstream recipe, and its command line.

Kolesnikov et al., "Big Transfer (BiT)", arXiv 1912.11370, section 3.1 (upstream pre-training):
SGD with momentum 0.9, learning rate 0.03 x batch/256, linear warmup over 5000 steps, weight
decay 1e-4, learning rate / 10 at epochs 30, 60 and 80 of 90 (BiT-S, BiT-M) or at 10, 23, 30
and 37 of 40 (BiT-L), inception-style random crops at 224 with random flips, softmax
cross-entropy for single-label data and sigmoid cross-entropy for multi-label data
(ImageNet-21k, JFT). ``Pretrain`` is the recipe; ``bit_keras.training.runner.run`` runs it
(distribution, ``batch_split``, precision, checkpoints and resume, ``run.json``, reporting),
as it runs ``fine_tune``'s. The
result is saved in the official ``.npz`` layout, which ``bit_keras.load``, ``fine_tune``,
``export``, timm and big_vision take unchanged.
"""

import dataclasses
import math

from bit_keras.training import hyperrule as hyperrule_lib
from bit_keras.training import loop, runner
from bit_keras.training import step as steps_lib
from bit_keras.utils import checks

BASE_LR = 0.03
BASE_BATCH = 256
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
# The paper warms up over 5000 steps. Its shortest full-scale run (BiT-S: ILSVRC-2012,
# 90 epochs at batch 4096) has 1_281_167 * 90 / 4096 = 28_151 steps; a shorter run warms up
# over the same fraction of its length (5000 / 28_151 = 17.8%), so a 1000-step run warms up
# over 178 steps instead of spending five times its length at a growing rate.
WARMUP_STEPS = 5000
FULL_SCALE_STEPS = 28_151
# Epochs of the schedule and the epochs at which the learning rate drops tenfold.
RECIPES = {
    "bit-s": (90, (30, 60, 80)),
    "bit-m": (90, (30, 60, 80)),
    "bit-l": (40, (10, 23, 30, 37)),
}


@dataclasses.dataclass(frozen=True)
class UpstreamPlan:
    """The upstream schedule of one run: learning rate and ``(warmup, decays..., end)`` steps."""

    recipe: str
    batch: int
    learning_rate: float
    supports: tuple
    epochs: float
    steps_per_epoch: float

    @property
    def steps(self):
        return self.supports[-1]

    def schedule(self):
        return hyperrule_lib.HyperRuleSchedule(self.supports, self.learning_rate)

    def describe(self):
        return (f"BiT upstream ({self.recipe}): batch {self.batch}, lr {self.learning_rate:g}, "
                f"{self.epochs:g} epochs = {self.steps} steps, warmup {self.supports[0]}, "
                f"decays at {list(self.supports[1:-1])}")


def upstream_plan(num_examples, batch, recipe="bit-m", epochs=None, steps=None, base_lr=BASE_LR,
                  warmup_steps=None):
    """The upstream learning-rate plan for a dataset size and batch.

    Args:
        num_examples: training examples per epoch.
        batch: global batch size; the learning rate is ``base_lr * batch / 256``.
        recipe: ``"bit-s"``/``"bit-m"`` (90 epochs, decays at 30/60/80) or ``"bit-l"``
            (40 epochs, decays at 10/23/30/37).
        epochs: shorten or lengthen the recipe; decays keep their fraction of the run.
        steps: the run length in steps instead of epochs.
        base_lr: learning rate at batch 256.
        warmup_steps: override the warmup (default: 5000, proportionally shorter for runs
            shorter than 28,151 steps, the BiT-S full-scale length).

    Returns:
        An ``UpstreamPlan``.

    Example:

    >>> plan = bit_keras.training.pretraining.upstream_plan(1_281_167, 4096, recipe="bit-s")
    >>> plan.learning_rate, plan.supports
    (0.48, (5000, 9384, 18767, 25023, 28151))
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}. Received: recipe={recipe!r}")
    checks.positive_int(num_examples, "num_examples")
    checks.positive_int(batch, "batch")
    full_epochs, decay_epochs = RECIPES[recipe]
    steps_per_epoch = num_examples / batch
    if steps is not None:
        total = checks.positive_int(steps, "steps", allow_none=True)
        epochs = steps / steps_per_epoch
    else:
        epochs = full_epochs if epochs is None else epochs
        checks.finite_number(epochs, "epochs", strictly_positive=True)
        total = max(1, math.ceil(epochs * steps_per_epoch))
    decays = tuple(max(1, round(total * e / full_epochs)) for e in decay_epochs)
    if warmup_steps is None:
        warmup_steps = round(WARMUP_STEPS * min(1.0, total / FULL_SCALE_STEPS))
    checks.non_negative_int(warmup_steps, "warmup_steps")
    supports = (min(warmup_steps, total),) + tuple(max(d, 1) for d in decays) + (total,)
    return UpstreamPlan(recipe, batch, base_lr * batch / BASE_BATCH, supports, epochs, steps_per_epoch)


PretrainResult = runner.Result  # the one Result type (its ``plan``: the ``UpstreamPlan``)


class Pretrain(runner.Recipe):
    """The upstream recipe: SGD with momentum, coupled weight decay, warmup and tenfold
    decays at the recipe's epochs, inception (or HyperRule) crops."""

    def __init__(self, recipe="bit-m", epochs=None, steps=None, base_lr=BASE_LR,
                 weight_decay=WEIGHT_DECAY, warmup_steps=None, crop=224, augment="inception",
                 resize=None, loss=None):
        self.recipe, self.epochs, self.steps, self.base_lr = recipe, epochs, steps, base_lr
        self.weight_decay, self.warmup_steps, self.crop = weight_decay, warmup_steps, crop
        self.augment, self.resize, self.label_loss = augment, resize, loss

    def check(self):
        loop.check_numbers(base_lr=self.base_lr)
        checks.positive_int(self.crop, "crop")
        checks.finite_number(self.weight_decay, "weight_decay")
        checks.finite_number(self.epochs, "epochs", strictly_positive=True, allow_none=True)
        checks.positive_int(self.steps, "steps", allow_none=True)
        checks.non_negative_int(self.warmup_steps, "warmup_steps", allow_none=True)
        checks.positive_int(self.resize, "resize", allow_none=True)

    def plan(self, source, model, settings):
        plan = upstream_plan(source.num_examples, settings.batch, self.recipe, self.epochs,
                             self.steps, self.base_lr, self.warmup_steps)
        return runner.Plan(plan.steps, plan.schedule(), self.augment,
                           self.resize or self.crop * 9 // 8, self.crop, momentum=MOMENTUM,
                           weight_decay=self.weight_decay, details=plan,
                           text=f"{plan.describe()}, {self.loss(source, settings).kind} loss")

    def loss(self, source, settings):
        if self.label_loss is None:
            return super().loss(source, settings)
        return steps_lib.Loss(self.label_loss)

    def pinned(self, plan):
        return {**dataclasses.asdict(plan.details), "weight_decay": self.weight_decay,
                "augment": plan.augment, "resize": plan.resize, "crop": plan.crop}


def pretrain(model, train_data, eval_data=None, *, run_dir=None, recipe="bit-m", batch=4096,
             batch_split=1, epochs=None, steps=None, base_lr=BASE_LR, weight_decay=WEIGHT_DECAY,
             warmup_steps=None, crop=224, augment="inception", resize=None, loss=None, seed=0,
             precision="float32", strategy=None, eval_every=None, checkpoint_every=1000,
             progress=None, data_service=None,
             jit_compile=None, steps_per_execution=1, remat=False):
    """Pre-trains a BiT model upstream with the paper's recipe, resumably.

    Args:
        model: a BiT model (``bit_keras.build("BiT-M-R50x1")`` or ``bit_keras.resnet_v2``);
            a head of the wrong size is replaced by a zero-initialized one.
        train_data: anything ``bit_keras.data.load_source`` takes (folder, TFDS name,
            ``(images, labels)`` with int or multi-hot labels, ``tf.data.Dataset``, ``Source``).
        eval_data: the same, for held-out accuracy; None evaluates nothing.
        run_dir: checkpoints, ``metrics.jsonl``, TensorBoard summaries and the final
            ``weights.npz``; running again with the same folder resumes.
        recipe: ``"bit-s"``, ``"bit-m"`` (90 epochs) or ``"bit-l"`` (40 epochs).
        batch, batch_split: global batch and micro-batches per replica batch.
        epochs, steps: run length (default: the recipe's epochs).
        base_lr: learning rate at batch 256 (0.03).
        weight_decay: L2 on kernels (1e-4).
        warmup_steps: default 5000, shorter for short runs (see ``upstream_plan``).
        crop: side of the training crops (224).
        augment: ``"inception"`` (the paper's random-resized crops and flips) or
            ``"hyperrule"`` (resize to ``resize``, random ``crop`` crop and flip: gentler,
            for small images such as the demo's 32x32 ones).
        resize: the resize side with ``augment="hyperrule"`` (default ``crop * 9 // 8``).
        loss: ``"softmax"`` or ``"sigmoid"``; default sigmoid for multi-label data.
        seed, precision, strategy, eval_every, checkpoint_every, progress, data_service,
            jit_compile, steps_per_execution, remat: as for ``bit_keras.fine_tune``.

    Returns:
        A ``bit_keras.training.Result`` (its ``plan``: the ``UpstreamPlan``).

    Example:

    >>> model = bit_keras.build("R50x1", num_classes=1000)
    >>> result = bit_keras.pretrain(model, "imagenet2012", run_dir="runs/bit-s", batch=4096,
    ...                             strategy="multi_worker", precision="bfloat16")
    """
    recipe = Pretrain(recipe, epochs, steps, base_lr, weight_decay, warmup_steps, crop,
                      augment, resize, loss)
    return runner.run(recipe, model, train_data, eval_data, runner.RunSettings(
        run_dir=run_dir, batch=batch, batch_split=batch_split, precision=precision,
        strategy=strategy, seed=seed, eval_every=eval_every, checkpoint_every=checkpoint_every,
        progress=progress, data_service=data_service,
        jit_compile=jit_compile, steps_per_execution=steps_per_execution, remat=remat))
