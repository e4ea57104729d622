"""``bit_keras.fine_tune``: BiT transfer with the BiT-HyperRule, and its command line.

Kolesnikov et al., "Big Transfer (BiT)", arXiv 1912.11370, section 3.3: SGD with momentum,
a zero-initialized head, and schedule length, resolution and MixUp picked from the dataset
by ``bit_keras.hyperrule``: the ``FineTune`` recipe, run by ``bit_keras.training.runner.run``
(distribution, ``batch_split``, precision, checkpoints, resume, ``run.json``, reporting). The
command line ``bit-keras fine_tune``
(``bit_keras/cli/run_fine_tune.py``) is a thin layer of flags over it.
"""

import dataclasses
import os

from absl import logging

from bit_keras.models import network as bit_model
from bit_keras.training import hyperrule as hyperrule_lib
from bit_keras.training import loop, model_setup, run_record, runner
from bit_keras.utils import checks

RUN_FILE = run_record.RUN_FILE
EXPORT_KINDS = ("feature_vector", "classifier")
FineTuneResult = runner.Result  # the one Result type (``hyperparams`` is its ``plan``)


class FineTune(runner.Recipe):
    """The BiT-HyperRule transfer recipe: SGD with momentum, a zero head, the schedule,
    resolution and MixUp from the dataset's size and image area."""

    default_eval = True

    def __init__(self, hyperrule="code", base_lr=hyperrule_lib.BASE_LR, steps=None,
                 resize=None, crop=None, mixup_alpha=None, examples_per_class=None,
                 examples_per_class_seed=0, freeze=None, batch_scaling=True):
        self.flavour, self.base_lr, self.steps = hyperrule, base_lr, steps
        self.overrides = {k: v for k, v in dict(resize=resize, crop=crop,
                                                mixup_alpha=mixup_alpha).items() if v is not None}
        self.examples_per_class = examples_per_class
        self.examples_per_class_seed = examples_per_class_seed
        self.freeze, self.batch_scaling = freeze, batch_scaling

    def check(self):
        loop.check_numbers(base_lr=self.base_lr)
        checks.seed(self.examples_per_class_seed, "examples_per_class_seed")
        checks.positive_int(self.steps, "steps", allow_none=True)
        for name in ("resize", "crop"):
            checks.positive_int(self.overrides.get(name), name, allow_none=True)
        checks.finite_number(self.overrides.get("mixup_alpha"), "mixup_alpha", allow_none=True)

    def load(self, train_data):
        from bit_keras import data
        return data.load_source(train_data, "train", examples_per_class=self.examples_per_class,
                                seed=self.examples_per_class_seed)

    def plan(self, source, model, settings):
        hp = hyperrule_lib.hyperrule(source.num_examples, source.median_image_area(),
                                     settings.batch, self.flavour, self.base_lr,
                                     architecture=_architecture(model), steps=self.steps,
                                     batch_scaling=self.batch_scaling)
        hp = dataclasses.replace(hp, **self.overrides)
        return runner.Plan(hp.steps, hp.schedule(), "hyperrule", hp.resize, hp.crop,
                           hp.mixup_alpha, momentum=hp.momentum, details=hp,
                           text=hp.describe())

    def ready(self, model, source, settings):
        model_setup.frozen_layer_names(model, self.freeze)  # check before touching anything

    def pinned(self, plan):
        hp = plan.details
        return {**dataclasses.asdict(hp), "supports": list(hp.supports),
                "examples_per_class": self.examples_per_class,
                "examples_per_class_seed": self.examples_per_class_seed}

    def prepare(self, model, source):
        model = model_setup.with_head(model, source.num_classes)
        frozen = model_setup.freeze_blocks(model, self.freeze)
        if frozen:
            logging.info("Freezing %d layers: %s ... %s", len(frozen), frozen[0], frozen[-1])
        return model, frozen


def fine_tune(model, train_data, eval_data=None, *, run_dir=None, hyperrule="code", batch=512,
              batch_split=1, base_lr=hyperrule_lib.BASE_LR, steps=None, resize=None, crop=None,
              mixup_alpha=None, examples_per_class=None, examples_per_class_seed=0, seed=0,
              precision="float32", strategy=None, freeze=None, eval_every=None,
              checkpoint_every=500, progress=None, data_service=None, batch_scaling=True,
              eval_batch=None,
              jit_compile=None, steps_per_execution=1, remat=False):
    """Fine-tunes a BiT model on a labelled image dataset with the BiT-HyperRule.

    Running it again with the same ``run_dir`` resumes from the last checkpoint (step,
    optimizer state, schedule and data order), so a killed run loses at most
    ``checkpoint_every`` steps.

    Args:
        model: a BiT ``keras.Model`` (``bit_keras.load(name, num_classes=K)``). A head of
            another size (or none) is replaced by a zero-initialized one of the right size.
            For ``strategy="multi_worker"`` create the strategy before building the model.
            Also a variant name, a checkpoint file, a ``.keras`` file or a feature-vector
            SavedModel (``bit_keras.models.resolver.resolve``).
        train_data: anything ``bit_keras.data.load_source`` takes: a folder of class
            subfolders (or with ``train/`` and ``test/``), a TFDS name, a
            ``tf.data.Dataset``, an ``(images, labels)`` pair, a ``bit_keras.data.Source``.
        eval_data: the same for evaluation (a folder: its ``test/`` subfolder if it has one,
            else its class subfolders); None uses the ``test`` split of a TFDS name or the
            ``test/`` subfolder of the training folder, if there is one, and otherwise
            evaluates nothing.
        run_dir: the run folder for checkpoints, ``metrics.jsonl``, TensorBoard summaries,
            ``run.json`` and the final ``weights.npz``; None writes nothing.
        hyperrule: ``"code"`` (official bit_hyperrule.py) or ``"paper"`` (arXiv 1912.11370).
        batch: global batch; with ``batch_scaling`` the learning rate scales by batch/512
            and steps by 512/batch.
        batch_split: micro-batches per replica batch (gradient accumulation; same update).
        base_lr: the learning rate at batch 512.
        steps: stretch the schedule to this many steps (default: the HyperRule's).
        resize, crop, mixup_alpha: override the HyperRule's choices.
        examples_per_class, examples_per_class_seed: few-shot: K training images per class,
            drawn deterministically by the seed.
        seed: the augmentation seed (crops, flips, MixUp).
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (GPU, with loss scaling).
        strategy: ``"default"``, ``"mirrored"``, ``"multi_worker"``, ``"tpu"`` or a
            ``tf.distribute.Strategy``.
        freeze: None trains everything; 0 freezes the stem; k the stem and blocks 1..k
            (those layers stay ``trainable=False`` on the returned model).
        eval_every: steps between evaluations (one always runs at the end).
        checkpoint_every: steps between checkpoints (one is always written at the end).
        progress: show a progress bar (default: on a terminal).
        data_service: the ``"host:port"`` of a tf.data service dispatcher whose workers
            decode and augment the training batches (``bit_keras.data.service``): each
            batch as without it, in the order the workers finish them.
        batch_scaling: True (default; the official colab) scales lr and steps to ``batch``;
            False keeps ``base_lr`` and the batch-512 schedule whatever the batch (the
            official ``train.py``, and the ``bit-keras fine_tune`` default).
        eval_batch: the evaluation batch per replica (default: the training batch per
            replica and micro-batch); evaluation runs on every replica.
        jit_compile: XLA-compile the training and evaluation steps; None (default): where
            a GPU or TPU is visible (on CPU the compiled kernels are faster).
        steps_per_execution: optimizer updates per call from the host (fewer round trips
            to an accelerator; evaluations and checkpoints still fall at their steps).
        remat: recompute each residual unit in the backward pass: less activation memory
            for about one more forward pass of time (with or without ``batch_split``).

    Returns:
        A ``bit_keras.training.Result`` (its ``hyperparams``: the HyperRule's choices).

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1", num_classes=5)
    >>> result = bit_keras.fine_tune(model, "flowers/", run_dir="runs/flowers",
    ...                              batch=64, examples_per_class=10)
    >>> result.accuracy
    """
    recipe = FineTune(hyperrule, base_lr, steps, resize, crop, mixup_alpha, examples_per_class,
                      examples_per_class_seed, freeze, batch_scaling)
    return runner.run(recipe, model, train_data, eval_data, runner.RunSettings(
        run_dir=run_dir, batch=batch, batch_split=batch_split, precision=precision,
        strategy=strategy, seed=seed, eval_every=eval_every, checkpoint_every=checkpoint_every,
        progress=progress, data_service=data_service, eval_batch=eval_batch,
        jit_compile=jit_compile, steps_per_execution=steps_per_execution, remat=remat))


def _architecture(model):
    """``R50x1`` for a ``BiTModel`` (the HyperRule's R152x4 rule), else None."""
    spec = bit_model.spec_of(model)
    return None if spec is None else model.architecture


def export_run(model, run_dir):
    """Exports the fine-tuned model into ``<run_dir>/export/{feature_vector,classifier}``;
    the classifier carries the class names ``run.json`` recorded (the training data's)."""
    from bit_keras import exporter

    names = run_record.read(run_dir).get("class_names")
    paths = []
    for kind in EXPORT_KINDS:
        labels = (names or False) if kind == "classifier" else None
        paths.append(exporter.export(model, os.path.join(run_dir, "export", kind), kind=kind,
                                     overwrite=True, labels=labels))
    return paths
