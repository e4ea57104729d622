"""The BiT-HyperRule: fine-tuning hyperparameters from the dataset alone.

Kolesnikov et al., "Big Transfer (BiT)", arXiv 1912.11370, section 3.3, fix everything but
three choices (schedule length, resolution, MixUp) and pick those from the number of
training examples and the image size. Two flavours, selectable by name:

- ``"code"``: the official ``bit_hyperrule.py`` (google-research/big_transfer): images with
  area < 96x96 resize to 160 and crop 128, others 512/480; supports
  ``[warmup, decay, decay, decay, end]`` = ``[100, 200, 300, 400, 500]`` under 20k examples,
  ``[500, 3000, 6000, 9000, 10000]`` under 500k, else ``[500, 6000, 12000, 18000, 20000]``.
- ``"paper"``: the paper's text: 448/384 (512/480 for R152x4; 160/128 for small images),
  500 / 10k / 20k steps with decays at 30%, 60% and 90%. The paper does not state a warmup;
  this flavour warms up like the code (100 steps for small tasks, 500 otherwise).

Both: SGD with momentum 0.9, base learning rate 0.003 at batch 512 (scaled by batch/512,
steps by 512/batch, as the official colab does), no weight decay, a zero-initialized head,
linear warmup from 0, learning rate / 10 at each decay, MixUp alpha 0.1 from 20k examples.
Everything here is plain Python; ``HyperRuleSchedule`` is the one Keras adapter.
"""

import dataclasses

import keras
from keras import ops

from bit_keras.models import variants
from bit_keras.utils import checks

FLAVOURS = ("code", "paper")
BASE_LR = 0.003
BASE_BATCH = 512
MOMENTUM = 0.9
SMALL_TASK = 20_000  # fewer examples: a "small" task (500 steps, no MixUp)
LARGE_TASK = 500_000  # this many or more: a "large" task (20k steps)
SMALL_IMAGE_AREA = 96 * 96  # smaller images train at 160/128
MIXUP_ALPHA = 0.1

_CODE_SUPPORTS = ((100, 200, 300, 400, 500), (500, 3000, 6000, 9000, 10_000),
                  (500, 6000, 12_000, 18_000, 20_000))
_PAPER_STEPS = (500, 10_000, 20_000)
_PAPER_WARMUP = (100, 500, 500)
_PAPER_DECAYS = (0.3, 0.6, 0.9)


def _check_flavour(flavour):
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}. Received: flavour={flavour!r}")


def _tier(num_examples):
    checks.positive_int(num_examples, "num_examples")
    return 0 if num_examples < SMALL_TASK else 1 if num_examples < LARGE_TASK else 2


def resolution(image_area, flavour="code", architecture=None):
    """(resize, crop) sides for training images of a given area (pixels).

    Args:
        image_area: height * width of a typical (median) training image, or an (h, w) pair.
        flavour: ``"code"`` or ``"paper"``.
        architecture: an architecture (``"R152x4"``, what ``BiTModel.architecture`` gives)
            or a ``bit_keras.VARIANTS`` name (``"BiT-M-R152x4"``); the paper trains R152x4
            at 512/480.

    Returns:
        ``(resize, crop)``; evaluation resizes straight to ``crop``.

    Example:

    >>> bit_keras.hyperrule.resolution(32 * 32)
    (160, 128)
    """
    _check_flavour(flavour)
    if isinstance(image_area, (tuple, list)):
        image_area = image_area[0] * image_area[1]
    if image_area <= 0:
        raise ValueError(f"image_area must be positive. Received: image_area={image_area!r}")
    if image_area < SMALL_IMAGE_AREA:
        return 160, 128
    if flavour == "code" or _architecture(architecture) == "R152x4":
        return 512, 480
    return 448, 384


def _architecture(name):
    """An architecture name from an architecture or a variant name (None stays None)."""
    if name in variants.VARIANTS:
        return variants.VARIANTS[name].architecture
    return name


def schedule(num_examples, flavour="code"):
    """The supports ``(warmup, decay1, decay2, decay3, end)`` in steps at batch 512.

    Example:

    >>> bit_keras.hyperrule.schedule(19_999)
    (100, 200, 300, 400, 500)
    """
    _check_flavour(flavour)
    tier = _tier(num_examples)
    if flavour == "code":
        return _CODE_SUPPORTS[tier]
    end = _PAPER_STEPS[tier]
    return (_PAPER_WARMUP[tier],) + tuple(round(f * end) for f in _PAPER_DECAYS) + (end,)


def mixup_alpha(num_examples):
    """MixUp alpha: 0 for small tasks (< 20k examples), 0.1 from 20k on."""
    return 0.0 if _tier(num_examples) == 0 else MIXUP_ALPHA


def learning_rate(step, supports, base_lr=BASE_LR):
    """The learning rate at ``step``, or None once training is over (official ``get_lr``).

    Linear warmup from 0 over ``supports[0]`` steps, then ``base_lr / 10**k`` where k counts
    the decay supports strictly below ``step``.

    Example:

    >>> bit_keras.hyperrule.learning_rate(250, (100, 200, 300, 400, 500))
    0.0003
    """
    warmup, end = supports[0], supports[-1]
    if step < warmup:
        return base_lr * step / warmup
    if step >= end:
        return None
    return base_lr / 10 ** sum(1 for s in supports[1:] if s < step)


def scale_for_batch(batch, base_lr, supports):
    """Scales a batch-512 rule to another batch: lr * batch/512, steps * 512/batch.

    Returns:
        ``(learning rate, supports)``.
    """
    checks.positive_int(batch, "batch")
    return base_lr * batch / BASE_BATCH, scale_steps(supports, BASE_BATCH / batch)


def scale_steps(supports, factor):
    """Every support times ``factor``, rounded, the end at least 1 step."""
    scaled = tuple(int(round(s * factor)) for s in supports)
    return scaled[:-1] + (max(1, scaled[-1]),)


@dataclasses.dataclass(frozen=True)
class HyperParams:
    """Everything the HyperRule decided for one fine-tuning run.

    Attributes:
        flavour: ``"code"`` or ``"paper"``.
        batch: the global batch size.
        learning_rate: peak learning rate (after batch scaling).
        supports: ``(warmup, decays..., end)`` in steps (after batch scaling).
        resize, crop: training image sides.
        mixup_alpha: MixUp alpha (0 disables it).
        momentum: SGD momentum.
    """

    flavour: str
    batch: int
    learning_rate: float
    supports: tuple
    resize: int
    crop: int
    mixup_alpha: float
    momentum: float = MOMENTUM

    @property
    def steps(self):
        return self.supports[-1]

    def describe(self):
        return (f"BiT-HyperRule ({self.flavour}): batch {self.batch}, lr {self.learning_rate:g}, "
                f"steps {self.steps} (supports {list(self.supports)}), resize {self.resize} "
                f"crop {self.crop}, mixup {self.mixup_alpha:g}, momentum {self.momentum:g}")

    def schedule(self):
        return HyperRuleSchedule(self.supports, self.learning_rate)


def hyperrule(num_examples, image_area, batch=BASE_BATCH, flavour="code", base_lr=BASE_LR,
              architecture=None, steps=None, batch_scaling=True):
    """All BiT-HyperRule choices for a dataset, scaled to the batch size (or not).

    Args:
        num_examples: training examples (after few-shot sampling).
        image_area: median training image area in pixels (or an (h, w) pair).
        batch: global batch size; lr scales by batch/512 and steps by 512/batch.
        flavour: ``"code"`` (official bit_hyperrule.py) or ``"paper"`` (arXiv 1912.11370).
        base_lr: the learning rate at batch 512.
        architecture: model name, for the paper's R152x4 resolution.
        steps: if given, stretch the (batch-scaled) schedule to end at this step.
        batch_scaling: True (the official colab): lr and steps scale with the batch as
            above. False (the official ``train.py``): ``base_lr`` and the schedule's steps
            are used as they are, whatever the batch.

    Returns:
        A ``HyperParams``.

    Example:

    >>> hp = bit_keras.hyperrule.hyperrule(50_000, 32 * 32, batch=128)
    >>> hp.learning_rate, hp.supports
    (0.00075, (2000, 12000, 24000, 36000, 40000))
    """
    if not isinstance(batch_scaling, bool):
        raise ValueError(f"batch_scaling must be True or False. Received: "
                         f"batch_scaling={batch_scaling!r}")
    checks.positive_int(batch, "batch")
    lr, supports = scale_for_batch(batch if batch_scaling else BASE_BATCH, base_lr,
                                   schedule(num_examples, flavour))
    if checks.positive_int(steps, "steps", allow_none=True) is not None:
        supports = scale_steps(supports, steps / supports[-1])[:-1] + (steps,)
    resize, crop = resolution(image_area, flavour, architecture)
    return HyperParams(flavour, batch, lr, supports, resize, crop, mixup_alpha(num_examples))


@keras.saving.register_keras_serializable(package="bit_keras")
class HyperRuleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``bit_keras.hyperrule.learning_rate`` as a Keras schedule (linear warmup, staircase /10).

    Past the end it keeps the last rate (the training loop stops at ``supports[-1]``).

    Example:

    >>> sched = bit_keras.hyperrule.HyperRuleSchedule((100, 200, 300, 400, 500), 0.003)
    >>> opt = keras.optimizers.SGD(sched, momentum=0.9)
    """

    def __init__(self, supports, base_lr=BASE_LR):
        self.supports = tuple(int(s) for s in supports)
        self.base_lr = float(base_lr)
        if len(self.supports) < 2 or list(self.supports) != sorted(self.supports):
            raise ValueError("supports must be at least (warmup, end), non-decreasing. "
                             f"Received: supports={supports!r}")

    def __call__(self, step):
        # keras.ops: the same schedule on every backend (Keras' fit on JAX and PyTorch too).
        step = ops.cast(step, "float32")
        warmup = float(self.supports[0])
        decays = ops.zeros((), "float32")
        for s in self.supports[1:-1]:
            decays = decays + ops.cast(ops.less(float(s), step), "float32")
        staircase = self.base_lr / ops.power(10.0, decays)
        if warmup <= 0:
            return staircase
        return ops.where(ops.less(step, warmup), self.base_lr * step / warmup, staircase)

    def get_config(self):
        return {"supports": list(self.supports), "base_lr": self.base_lr}
