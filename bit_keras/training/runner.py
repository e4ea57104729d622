"""``run``: the one skeleton under every recipe (``fine_tune``, ``pretrain``, ``distill``).

What all training runs share is here, once: the strategy, the checks (every one before
anything is written), the training and evaluation data (one rule for the evaluation data),
the tf.data service, the run folder's lock and ``run.json``, the head, the input functions,
the loop (``loop.train_held``), the final weights and the ``Result``. What differs is a
``Recipe``: its plan (steps, schedule, optimizer, augmentation, resolution, MixUp), its loss
and what ``run.json`` pins. A new recipe is one file: a ``Recipe`` and the function that
runs it (big_vision's one ``train.py`` with its configs; STYLE.md habit 18).

Example:

>>> from bit_keras.training import finetuning
>>> settings = bit_keras.training.RunSettings(run_dir="runs/a", batch=64)
>>> result = bit_keras.training.run(finetuning.FineTune(freeze=1), model, "flowers/", None,
...                                 settings)
"""

import abc
import dataclasses
import functools
import os

from absl import logging

from bit_keras.models import resolver
from bit_keras.training import loop, model_setup, reporting, run_lock, run_record
from bit_keras.training import remat as remat_lib
from bit_keras.training import step as steps_lib
from bit_keras.training import strategy as strategies
from bit_keras.utils import checks

WEIGHTS_FILE = "weights.npz"


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How a run runs, whatever its recipe (the command lines' shared flags).

    Attributes:
        run_dir: checkpoints, ``metrics.jsonl``, TensorBoard, ``run.json``, the final
            ``weights.npz``; running again with the same folder resumes. None writes nothing.
        batch: the global batch; batch_split: micro-batches per replica batch.
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        strategy: a ``tf.distribute.Strategy``, a name (``STRATEGIES``) or None.
        seed: the augmentation seed (crops, flips, MixUp).
        eval_every, checkpoint_every: steps between evaluations and checkpoints (one of
            each always at the end).
        progress: show a progress bar (default: on a terminal).
        data_service: a tf.data service dispatcher's ``"host:port"`` (``bit_keras.data.service``).
        eval_batch: the evaluation batch per replica (default: the per-replica
            micro-batch); each evaluation batch is split across the replicas.
        jit_compile: XLA-compile the steps; None: where a GPU or TPU is visible.
        steps_per_execution: optimizer updates per call from the host.
        remat: recompute each residual unit in the backward pass (less memory).
    """

    run_dir: str | None = None
    batch: int = 512
    batch_split: int = 1
    precision: str = "float32"
    strategy: object = None
    seed: int = 0
    eval_every: int | None = None
    checkpoint_every: int | None = 500
    progress: bool | None = None
    data_service: str | None = None
    eval_batch: int | None = None
    jit_compile: bool | None = None
    steps_per_execution: int = 1
    remat: bool = False


@dataclasses.dataclass(frozen=True)
class Plan:
    """A recipe's plan for one run: length, learning rate, optimizer, views.

    ``optimizer`` is ``fn(schedule) -> keras optimizer`` (None: SGD with ``momentum``);
    ``weight_decay`` is coupled L2 on kernels in the step; ``details`` is what the run's
    ``Result.plan`` carries (``HyperParams``, ``UpstreamPlan``), ``text`` the log line.
    """

    steps: int
    schedule: object
    augment: str
    resize: int
    crop: int
    mixup_alpha: float = 0.0
    optimizer: object = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    details: object = None
    text: str = ""


@dataclasses.dataclass
class Result:
    """What every recipe returns.

    Attributes:
        model: the trained model (the one passed in, or a new model sharing its backbone
            when its head had to be replaced to fit the number of classes).
        plan: the recipe's plan (``fine_tune``: the ``HyperParams``; ``pretrain``: the
            ``UpstreamPlan``; ``distill``: the runner's ``Plan``).
        history: one dict per evaluation: ``step``, ``lr``, ``loss`` (training, mean since
            the previous evaluation), ``val_loss``, ``accuracy``, ``images_per_second``.
        step: the last step trained.
        run_dir: the run folder (None when nothing was written).
        weights_path: the final weights in the official ``.npz`` layout, or None.
        resumed_from: the checkpoint this run resumed from, or None.
        frozen: names of the layers kept frozen.
        agreement: ``distill``: the top-1 agreement of student and teacher on the
            evaluation data (None without it, and for the other recipes).
    """

    model: object
    plan: object
    history: list
    step: int
    run_dir: str | None
    weights_path: str | None
    resumed_from: str | None
    frozen: list = dataclasses.field(default_factory=list)
    agreement: float | None = None

    @property
    def hyperparams(self):
        """``fine_tune``'s name for ``plan``: the ``bit_keras.hyperrule.HyperParams``."""
        return self.plan

    @property
    def accuracy(self):
        """The last validation accuracy, or None."""
        return reporting.last_accuracy(self.history)


class Recipe(abc.ABC):
    """What differs between training runs; ``run`` calls these in this order."""

    # With eval_data=None: True evaluates on a TFDS name's test split or a folder's test/.
    default_eval = False

    def check(self):
        """Checks the recipe's own options, before any data is read."""
        return None

    def load(self, train_data):
        """The training ``Source``."""
        from bit_keras import data
        return data.load_source(train_data, "train")

    @abc.abstractmethod
    def plan(self, source, model, settings):
        """The ``Plan`` for this data, model and settings."""

    def ready(self, model, source, settings):
        """Checks the model against the data, before anything is written."""
        return None

    def loss(self, source, settings):
        """The step's ``Loss`` (``settings.strategy`` is resolved): cross-entropy on the
        labels, sigmoid for multi-label data."""
        return steps_lib.Loss("sigmoid" if source.multi_label else "softmax")

    def pinned(self, plan):
        """What ``run.json`` pins besides the data (a dict of JSON values)."""
        return {}

    def prepare(self, model, source):
        """``(model, frozen layer names)``: the model to train, with a head for the data."""
        return model_setup.with_head(model, source.num_classes), []

    def finish(self, model, eval_input):
        """Extra ``Result`` fields once trained (``eval_input`` is None without eval data)."""
        return {}


def run(recipe, model, train_data, eval_data, settings):
    """Runs ``recipe`` on ``model`` and the data with ``settings``; returns a ``Result``.

    Args:
        recipe: a ``Recipe``.
        model: a Keras model, or what ``bit_keras.models.resolver.resolve`` takes (a variant
            name, a checkpoint, a ``.keras`` file, a feature-vector SavedModel to train).
        train_data, eval_data: anything ``bit_keras.data.load_source`` takes; ``eval_data``
            None evaluates on the training data's test split when the recipe says so
            (``Recipe.default_eval``), else on nothing.
        settings: the ``RunSettings``.
    """
    from bit_keras import data

    strategy = strategies.resolve_strategy(settings.strategy)
    settings = dataclasses.replace(settings, strategy=strategy)
    loop.check_numbers(every=dict(eval_every=settings.eval_every,
                                  checkpoint_every=settings.checkpoint_every))
    checks.positive_int(settings.eval_batch, "eval_batch", allow_none=True)
    checks.seed(settings.seed)
    checks.positive_int(settings.batch, "batch")
    checks.positive_int(settings.batch_split, "batch_split")
    loop.check_speed(settings.jit_compile, settings.steps_per_execution, settings.remat)
    recipe.check()
    source = recipe.load(train_data)
    loop.check_classes(source)
    eval_source = eval_source_of(source, train_data, eval_data, recipe.default_eval)
    model = resolver.resolve(model, include_top=False, trainable=True)  # the data picks the head
    plan = recipe.plan(source, model, settings)
    # Everything is checked before run.json is written: a corrected command must not be
    # refused as "a run with other settings".
    data.check_augmentation(plan.augment, plan.resize, plan.crop, plan.mixup_alpha)
    data_service = data.service.check_run(settings.data_service, source)
    loop.check_settings(settings.batch, settings.batch_split, settings.precision, strategy)
    recipe.ready(model, source, settings)
    if settings.remat:
        remat_lib.check(model)
    logging.info("%s on %d examples of %d classes", plan.text, source.num_examples,
                 source.num_classes)
    chief = strategies.worker(strategy)[2]
    run_dir = settings.run_dir
    with run_lock.hold(run_dir if chief else None):
        if run_dir is not None and chief:
            run_record.record(run_dir, {**recipe.pinned(plan), "seed": settings.seed,
                                        "num_classes": source.num_classes,
                                        "num_examples": source.num_examples,
                                        "class_names": [str(n) for n in source.class_names]})
        model, frozen = recipe.prepare(model, source)
        skipped = reporting.skipped_log(run_dir)

        def train_input(context, start_step):
            return data.train_dataset(
                source, context.get_per_replica_batch_size(settings.batch), plan.resize,
                plan.crop, plan.mixup_alpha, seed=settings.seed, start_step=start_step,
                augment=plan.augment, input_context=context, skipped_log=skipped,
                data_service=data_service)

        eval_batch = settings.eval_batch or max(
            1, settings.batch // (settings.batch_split * strategy.num_replicas_in_sync))

        def evaluation(split=True):
            # Global batches, which the loop splits across the replicas; split=False: a
            # replica's batch, for one device (a recipe's ``finish``).
            batch = eval_batch * (strategy.num_replicas_in_sync if split else 1)
            return data.eval_dataset(eval_source, batch, plan.crop, skipped_log=skipped)

        eval_input = None if eval_source is None else evaluation

        trained = loop.train_held(
            model, train_input, plan.steps, plan.schedule, settings.batch, strategy=strategy,
            loss=recipe.loss(source, settings), momentum=plan.momentum,
            weight_decay=plan.weight_decay, batch_split=settings.batch_split,
            precision=settings.precision, eval_input=eval_input,
            eval_every=settings.eval_every, run_dir=run_dir,
            checkpoint_every=settings.checkpoint_every, progress=settings.progress,
            optimizer=plan.optimizer, jit_compile=settings.jit_compile,
            steps_per_execution=settings.steps_per_execution, remat=settings.remat)
        weights_path = loop.save_final_weights(trained.model, run_dir, chief, WEIGHTS_FILE)
        extras = recipe.finish(trained.model, eval_input and functools.partial(evaluation,
                                                                             split=False))
        return Result(trained.model, plan.details or plan, trained.history, trained.step,
                      run_dir, weights_path, trained.resumed_from, frozen, **extras)


def eval_source_of(source, train_data, eval_data, default):
    """The evaluation ``Source`` (the one rule): ``eval_data`` when given (a folder: its
    ``test/`` subfolder if it has one, else its class subfolders); else, with ``default``,
    the test split of a TFDS name or the ``test/`` subfolder of the training folder; else
    None. Its classes must be the training data's, in the same order."""
    from bit_keras import data

    spec, explicit = (train_data, False) if eval_data is None else (eval_data, True)
    if not explicit and not default:
        return None
    found = None
    if explicit:
        if isinstance(spec, (str, os.PathLike)) and os.path.isdir(spec) and not os.path.isdir(
                os.path.join(spec, "test")):
            found = data.from_folder(os.fspath(spec))  # a folder of class subfolders
        else:
            found = data.load_source(spec, "test")
    elif isinstance(spec, (str, os.PathLike)):
        spec = os.fspath(spec)
        one_set_of_records = spec.startswith(data.TFRECORDS) and "{split}" not in spec
        if not one_set_of_records and (not os.path.isdir(spec)
                                       or os.path.isdir(os.path.join(spec, "test"))):
            found = data.load_source(spec, "test")
    if found is None:
        logging.warning("No evaluation data: pass eval_data= (or a folder with test/) to "
                        "evaluate")
    elif list(found.class_names) != list(source.class_names):
        raise ValueError("eval_data must have the classes of train_data, in the same order. "
                         f"Received: train classes {list(source.class_names)[:10]}, eval "
                         f"classes {list(found.class_names)[:10]}")
    return found
