"""``bit_keras.fine_tune``: BiT transfer with the BiT-HyperRule, and its command line.

Kolesnikov et al., "Big Transfer (BiT)", arXiv 1912.11370, section 3.3: SGD with momentum,
a zero-initialized head, and schedule length, resolution and MixUp picked from the dataset
by ``bit_keras.hyperrule``. The loop (distribution, ``batch_split``, precision, checkpoints,
resume, reporting) is ``bit_keras.training.train``. The command line ``bit-keras fine_tune``
(``bit_keras/cli/run_fine_tune.py``) is a thin layer of flags over it.
"""

import dataclasses
import json
import os

from absl import logging

from bit_keras import training
from bit_keras.models import network as bit_model
from bit_keras.training import hyperrule as hyperrule_lib
from bit_keras.training import loop, run_lock
from bit_keras.utils import atomic, checks

WEIGHTS_FILE = "weights.npz"
RUN_FILE = "run.json"
EXPORT_KINDS = ("feature_vector", "classifier")


@dataclasses.dataclass
class FineTuneResult:
    """What ``bit_keras.fine_tune`` returns.

    Attributes:
        model: the fine-tuned model (the one passed in, or a new model sharing its backbone
            when its head had to be replaced to fit the number of classes).
        hyperparams: the ``bit_keras.hyperrule.HyperParams`` used.
        history: one dict per evaluation: ``step``, ``lr``, ``loss`` (training, mean since
            the previous evaluation), ``val_loss``, ``accuracy``, ``images_per_second``.
        step: the last step trained.
        run_dir: the run folder (None when nothing was written).
        weights_path: the final weights in the official ``.npz`` layout, or None.
        resumed_from: the checkpoint this run resumed from, or None.
        frozen: names of the layers kept frozen.
    """

    model: object
    hyperparams: hyperrule_lib.HyperParams
    history: list
    step: int
    run_dir: str | None
    weights_path: str | None
    resumed_from: str | None
    frozen: list

    @property
    def accuracy(self):
        """The last validation accuracy, or None."""
        return training.reporting.last_accuracy(self.history)


def fine_tune(model, train_data, eval_data=None, *, run_dir=None, hyperrule="code", batch=512,
              batch_split=1, base_lr=hyperrule_lib.BASE_LR, steps=None, resize=None, crop=None,
              mixup_alpha=None, examples_per_class=None, examples_per_class_seed=0, seed=0,
              precision="float32", strategy=None, freeze=None, eval_every=None,
              checkpoint_every=500, progress=None, data_service=None, batch_scaling=True,
              eval_batch=None):
    """Fine-tunes a BiT model on a labelled image dataset with the BiT-HyperRule.

    Running it again with the same ``run_dir`` resumes from the last checkpoint (step,
    optimizer state, schedule and data order), so a killed run loses at most
    ``checkpoint_every`` steps.

    Args:
        model: a BiT ``keras.Model`` (``bit_keras.load(name, num_classes=K)``). A head of
            another size (or none) is replaced by a zero-initialized one of the right size.
            For ``strategy="multi_worker"`` create the strategy before building the model.
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
        eval_batch: the evaluation batch (default: the training batch per replica and
            micro-batch).

    Returns:
        A ``FineTuneResult``.

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1", num_classes=5)
    >>> result = bit_keras.fine_tune(model, "flowers/", run_dir="runs/flowers",
    ...                              batch=64, examples_per_class=10)
    >>> result.accuracy
    """
    from bit_keras import data

    strategy = training.resolve_strategy(strategy)
    loop.check_numbers(base_lr=base_lr, every=dict(eval_every=eval_every,
                                                       checkpoint_every=checkpoint_every))
    checks.seed(seed)
    checks.seed(examples_per_class_seed, "examples_per_class_seed")
    checks.positive_int(batch, "batch")
    checks.positive_int(batch_split, "batch_split")
    for name, value in (("steps", steps), ("resize", resize), ("crop", crop)):
        checks.positive_int(value, name, allow_none=True)
    checks.finite_number(mixup_alpha, "mixup_alpha", allow_none=True)
    source = data.load_source(train_data, "train", examples_per_class=examples_per_class,
                              seed=examples_per_class_seed)
    loop.check_classes(source)
    eval_source = eval_source_of(data, train_data if eval_data is None else eval_data,
                               explicit=eval_data is not None)
    if eval_source is not None and list(eval_source.class_names) != list(source.class_names):
        raise ValueError("eval_data must have the classes of train_data, in the same order. "
                         f"Received: train classes {list(source.class_names)[:10]}, eval classes "
                         f"{list(eval_source.class_names)[:10]}")
    hp = hyperrule_lib.hyperrule(source.num_examples, source.median_image_area(), batch, hyperrule,
                                 base_lr, architecture=_architecture(model), steps=steps,
                                 batch_scaling=batch_scaling)
    checks.positive_int(eval_batch, "eval_batch", allow_none=True)
    hp = dataclasses.replace(hp, **{k: v for k, v in dict(
        resize=resize, crop=crop, mixup_alpha=mixup_alpha).items() if v is not None})
    # Everything is checked before run.json is written: a corrected command must not be
    # refused as "a run with other settings".
    data.check_augmentation("hyperrule", hp.resize, hp.crop, hp.mixup_alpha)
    data_service = data.service.check_run(data_service, source)
    training.check_settings(hp.batch, batch_split, precision, strategy)
    training.model_setup.frozen_layer_names(model, freeze)  # check before touching anything
    logging.info("%s on %d examples of %d classes", hp.describe(), source.num_examples,
                 source.num_classes)
    chief = training.strategy.worker(strategy)[2]
    with run_lock.hold(run_dir if chief else None):
        if run_dir is not None and chief:
            _record_run(run_dir, hp, dict(examples_per_class=examples_per_class,
                                          examples_per_class_seed=examples_per_class_seed, seed=seed,
                                          num_classes=source.num_classes,
                                          num_examples=source.num_examples,
                                          class_names=[str(n) for n in source.class_names]))
        model = training.with_head(model, source.num_classes)
        frozen = training.freeze_blocks(model, freeze)
        if frozen:
            logging.info("Freezing %d layers: %s ... %s", len(frozen), frozen[0], frozen[-1])

        skipped = training.skipped_log(run_dir)

        def train_input(context, start_step):
            return data.train_dataset(source, context.get_per_replica_batch_size(hp.batch),
                                      hp.resize, hp.crop, hp.mixup_alpha, seed=seed,
                                      start_step=start_step, augment="hyperrule",
                                      input_context=context, skipped_log=skipped,
                                      data_service=data_service)

        if eval_batch is None:
            eval_batch = max(1, hp.batch // (batch_split * strategy.num_replicas_in_sync))
        result = training.train(
            model, train_input, hp.steps, hp.schedule(), hp.batch, strategy=strategy,
            loss="sigmoid" if source.multi_label else "softmax", momentum=hp.momentum,
            batch_split=batch_split, precision=precision,
            eval_input=None if eval_source is None else (
                lambda: data.eval_dataset(eval_source, eval_batch, hp.crop,
                                                skipped_log=skipped)),
            eval_every=eval_every, run_dir=run_dir, checkpoint_every=checkpoint_every,
            progress=progress)
        weights_path = loop.save_final_weights(model, run_dir, chief, WEIGHTS_FILE)
        return FineTuneResult(model, hp, result.history, result.step, run_dir, weights_path,
                              result.resumed_from, frozen)


def eval_source_of(data, spec, explicit):
    """The evaluation ``Source``: explicit data, or a name's test split when there is one."""
    if explicit:
        if isinstance(spec, (str, os.PathLike)) and os.path.isdir(spec) and not os.path.isdir(
                os.path.join(spec, "test")):
            return data.from_folder(os.fspath(spec))  # a folder of class subfolders
        return data.load_source(spec, "test")
    if isinstance(spec, (str, os.PathLike)):
        spec = os.fspath(spec)
        one_set_of_records = spec.startswith(data.TFRECORDS) and "{split}" not in spec
        if not one_set_of_records and (not os.path.isdir(spec)
                                       or os.path.isdir(os.path.join(spec, "test"))):
            return data.load_source(spec, "test")
    logging.warning("No evaluation data: pass eval_data= (or a folder with test/) to evaluate")
    return None


def _record_run(run_dir, hp, settings):
    """Writes ``run.json``; a resumed run must have the same HyperRule choices and data."""
    record = {**dataclasses.asdict(hp), "supports": list(hp.supports), **settings}
    path = os.path.join(run_dir, RUN_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            before = json.loads(text)
        except ValueError as error:
            line = getattr(error, "lineno", None)
            raise ValueError(f"{path}{'' if line is None else f', line {line}'} does not parse "
                             f"({error}); repair or remove it, or use a new run_dir") from None
        changed = sorted(k for k in record if k in before and before[k] != record[k])
        if changed:
            raise ValueError(
                f"run_dir {run_dir!r} holds a run with other settings; use a new run_dir or the "
                "same settings. Changed: " + "; ".join(
                    f"{k}: {before[k]!r} -> {record[k]!r}" for k in changed))
        return
    atomic.write_json(path, record)


def _architecture(model):
    """``R50x1`` for a ``BiTModel`` (the HyperRule's R152x4 rule), else None."""
    spec = bit_model.spec_of(model)
    return None if spec is None else model.architecture


def export_run(model, run_dir):
    """Exports the fine-tuned model into ``<run_dir>/export/{feature_vector,classifier}``;
    the classifier carries the class names ``run.json`` recorded (the training data's)."""
    from bit_keras import exporter

    with open(os.path.join(run_dir, RUN_FILE), encoding="utf-8") as f:
        names = json.load(f).get("class_names")
    paths = []
    for kind in EXPORT_KINDS:
        labels = (names or False) if kind == "classifier" else None
        paths.append(exporter.export(model, os.path.join(run_dir, "export", kind), kind=kind,
                                     overwrite=True, labels=labels))
    return paths
