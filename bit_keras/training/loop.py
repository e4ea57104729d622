"""``train``: the training loop under every recipe (``runner.run``).

Everything task-specific is a parameter: the data (a function of the input context and the
step to start at), the loss, the learning rate schedule, momentum and weight decay. The loop
owns distribution, gradient accumulation, precision, checkpoints and resume, evaluation and
reporting.
"""

import dataclasses
import os

import keras
import tensorflow as tf
from absl import logging

from bit_keras import runtime
from bit_keras.training import checkpointing, model_setup, reporting, run_lock
from bit_keras.training import step as steps_lib
from bit_keras.training import strategy as strategies
from bit_keras.utils import checks

KERAS_WEIGHTS_FILE = "weights.weights.h5"  # a model the official layout cannot hold


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        model: the trained model (the one passed in, its weights updated).
        step: the last step trained.
        history: one dict per evaluation (step, lr, loss, val_loss, accuracy,
            images_per_second), including those of earlier runs of the same ``run_dir``.
        resumed_from: the checkpoint the run started from, or None.
        run_dir: the run folder, or None.
    """

    model: keras.Model
    step: int
    history: list
    resumed_from: str | None
    run_dir: str | None


def check_settings(global_batch, batch_split, precision, strategy):
    """Raises a ValueError naming the setting when batch, batch_split or precision is wrong."""
    checks.positive_int(global_batch, "batch")
    checks.positive_int(batch_split, "batch_split")
    model_setup.check_precision(precision)
    replicas = strategy.num_replicas_in_sync
    if global_batch % (replicas * batch_split):
        raise ValueError(f"batch must be divisible by replicas ({replicas}) x batch_split "
                         f"({batch_split}). Received: batch={global_batch}")


def check_numbers(base_lr=None, every=None):
    """Raises a ValueError naming the setting, before a run writes anything: ``base_lr`` a
    finite number > 0, ``every`` (a dict such as ``eval_every=...``) None or ints >= 0.
    (The augmentation settings: ``bit_keras.data.check_augmentation``.)"""
    if base_lr is not None:
        checks.finite_number(base_lr, "base_lr", strictly_positive=True)
    for name, value in (every or {}).items():
        checks.non_negative_int(value, name, allow_none=True)


def check_speed(jit_compile, steps_per_execution, remat):
    """Raises a ValueError naming the setting when a speed setting is wrong."""
    if jit_compile is not None and not isinstance(jit_compile, bool):
        raise ValueError("jit_compile must be None (on where a GPU or TPU is visible), True "
                         f"or False. Received: jit_compile={jit_compile!r}")
    checks.positive_int(steps_per_execution, "steps_per_execution")
    if not isinstance(remat, bool):
        raise ValueError(f"remat must be True or False. Received: remat={remat!r}")


def use_xla():
    """Whether ``jit_compile=None`` means XLA here: where a GPU or TPU is visible. On CPU
    the compiled GroupNorm and Weight Standardization kernels are the faster path."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def chunk(step, steps, steps_per_execution, eval_every, checkpoint_every):
    """How many updates the next host call runs after ``step``: ``steps_per_execution``, cut
    short at the next evaluation, the next checkpoint and the last step."""
    end = min(steps, step + steps_per_execution)
    for every in (eval_every, checkpoint_every):
        if every:
            end = min(end, (step // every + 1) * every)
    return end - step


def several_steps(train_step, counter):
    """A ``tf.function`` ``(iterator, count) -> the losses of count updates``: one call from
    the host runs ``count`` calls of ``train_step`` (``step.make_train_step``), adding one
    to ``counter`` (the checkpointed step) after each. ``count`` is a tensor: one trace
    serves every count."""

    @tf.function
    def run(iterator, count):
        values = tf.TensorArray(tf.float32, size=count)
        for i in tf.range(count):
            values = values.write(i, train_step(iterator))
            counter.assign_add(1)
        return values.stack()

    return run


def save_final_weights(model, run_dir, chief, name="weights.npz"):
    """Writes the trained weights to ``<run_dir>/<name>`` (the chief only) in the official
    layout; a model around a SavedModel (``bit_keras.SavedModelLayer``), which has no place
    in that layout, to ``<run_dir>/weights.weights.h5`` (``model.load_weights`` reads it).
    Returns the path or None."""
    from bit_keras.checkpoints import transfer
    from bit_keras.exporter import SavedModelLayer
    if run_dir is None or not chief:
        return None
    if any(isinstance(layer, SavedModelLayer) for layer in model.layers):
        path = os.path.join(run_dir, KERAS_WEIGHTS_FILE)
        model.save_weights(path, overwrite=True)
        return path
    return transfer.save_npz(model, os.path.join(run_dir, name))


def check_classes(source, name="train_data"):
    """Refuses single-label data of fewer than two classes (the loss would be 0 throughout)."""
    if source.num_classes < 2 and not source.multi_label:
        raise ValueError(
            f"{name} must have at least two classes for a classifier (or multi-label "
            f"labels). Received: {source.num_classes} class(es) {list(source.class_names)} "
            f"in {source.description or 'the data'}")


def train(model, train_input, steps, schedule, global_batch, *, strategy=None, loss="softmax",
          momentum=0.9, weight_decay=0.0, batch_split=1, precision="float32", eval_input=None,
          eval_every=None, run_dir=None, checkpoint_every=None, progress=None, optimizer=None,
          jit_compile=None, steps_per_execution=1, remat=False):
    """Trains ``model`` with SGD + momentum (or ``optimizer``) for ``steps`` steps, resumably.

    Args:
        model: a Keras model (built anywhere; it is copied into the strategy's scope when
            needed and the trained weights are copied back).
        train_input: ``fn(input_context, start_step) -> tf.data.Dataset`` of per-replica
            ``(images, labels)`` batches (``input_context.get_per_replica_batch_size``),
            infinite, whose batch ``i`` is the run's batch ``start_step + i``.
        steps: total optimizer updates.
        schedule: a learning rate or a ``keras.optimizers.schedules.LearningRateSchedule``.
        global_batch: examples per update over all replicas.
        strategy: a ``tf.distribute.Strategy``, a name for ``make_strategy`` or None.
        loss: ``"softmax"`` or ``"sigmoid"`` cross-entropy on float labels ``[B, K]``, or a
            ``bit_keras.training.step.Loss`` (distillation's function matching); evaluation
            scores the labels with its ``kind``.
        momentum, weight_decay: SGD momentum; coupled L2 on kernels.
        batch_split: micro-batches per replica batch (gradient accumulation).
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (with loss scaling).
        eval_input: ``fn() -> finite tf.data.Dataset`` of ``(images, labels)`` in global
            batches (each is split across the replicas), or None. Every worker of a
            multi-worker run must give it: every worker evaluates its share.
        eval_every: steps between evaluations (always one at the end).
        run_dir: where checkpoints, ``metrics.jsonl`` and TensorBoard summaries go; a run
            finding checkpoints there resumes from the newest that restores. One process
            at a time holds it (``run_lock``; under multi-worker, the chief). None writes
            nothing.
        checkpoint_every: steps between checkpoints (always one at the end).
        progress: show a progress bar (default: when stdout is a terminal).
        optimizer: ``fn(schedule) -> keras optimizer`` instead of SGD with ``momentum``
            (built in the strategy's scope; its state is checkpointed with the model).
        jit_compile: XLA-compile each step's forward and backward pass and the evaluation's
            forward pass; None (the default): where a GPU or TPU is visible
            (``use_xla``). On CPU the compiled kernels are faster (docs/performance.md).
        steps_per_execution: optimizer updates per call from the host (one ``tf.function``
            call loops over them): fewer round trips to an accelerator. Evaluations and
            checkpoints fall between calls, at their steps; the losses of every step are
            reported, and a resumed run continues from the last checkpoint as before.
        remat: recompute each residual unit in the backward pass (``remat.rematerialized``):
            less activation memory for about one more forward pass of time.

    Returns:
        A ``TrainResult``.

    Example:

    >>> result = bit_keras.training.train(model, lambda ctx, start: ds.skip(start), 500,
    ...                                   0.003, global_batch=64)
    """
    steps = checks.positive_int(steps, "steps")
    loss = steps_lib.as_loss(loss)
    strategy = strategies.resolve_strategy(strategy)
    check_settings(global_batch, batch_split, precision, strategy)
    check_speed(jit_compile, steps_per_execution, remat)
    with run_lock.hold(run_dir if strategies.worker(strategy)[2] else None):
        return train_held(model, train_input, steps, schedule, global_batch, strategy=strategy,
                          loss=loss, momentum=momentum, weight_decay=weight_decay,
                          batch_split=batch_split, precision=precision, eval_input=eval_input,
                          eval_every=eval_every, run_dir=run_dir,
                          checkpoint_every=checkpoint_every, progress=progress,
                          optimizer=optimizer, jit_compile=jit_compile,
                          steps_per_execution=steps_per_execution, remat=remat)


def train_held(model, train_input, steps, schedule, global_batch, *, strategy, loss, momentum,
               weight_decay, batch_split, precision, eval_input, eval_every, run_dir,
               checkpoint_every, progress, optimizer, jit_compile=None, steps_per_execution=1,
               remat=False):
    """``train`` once its settings are checked and the run folder is held (by ``train``, or
    by the runner, which holds it from its ``run.json`` on)."""
    worker_model = model_setup.replica(model, strategy, precision,
                                       needs_copy=not strategies.is_default(strategy))
    with strategy.scope():
        optimizer = (optimizer(schedule) if optimizer is not None
                     else keras.optimizers.SGD(schedule, momentum=momentum))
        if precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(worker_model.trainable_variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    saver = checkpointing.Checkpointer(run_dir, strategy, checkpoint_every, model=worker_model,
                                       optimizer=optimizer, step=step_var)
    resumed_from = saver.restore()
    start = int(step_var.numpy())
    chief = strategies.worker(strategy)[2]
    reporter = reporting.Reporter(run_dir, steps, global_batch, start, write=chief,
                                  progress=progress)
    if start < steps:
        runtime.log_cpu_speed_hint(precision)
    else:
        logging.info("Nothing to train: %s is already at step %d of %d", run_dir, start, steps)
    jit_compile = use_xla() if jit_compile is None else jit_compile
    logging.info("Training steps: jit_compile=%s, steps_per_execution=%d, remat=%s",
                 jit_compile, steps_per_execution, remat)
    train_step = steps_lib.make_train_step(worker_model, optimizer, strategy, global_batch, loss,
                                           batch_split, weight_decay, jit_compile=jit_compile,
                                           remat=remat)
    # Every worker evaluates (the batches are split across all replicas); the chief reports.
    eval_step = (steps_lib.make_eval_step(worker_model, loss, strategy, jit_compile=jit_compile)
                 if eval_input else None)
    learning_rate = schedule if callable(schedule) else (lambda s: schedule)
    data = iter(strategy.distribute_datasets_from_function(lambda ctx: train_input(ctx, start)))

    run_steps = several_steps(train_step, step_var)
    step = start
    while step < steps:
        # The first call runs one update (its time is mostly tracing, which the reporter
        # leaves out of images/second); then several per call.
        count = 1 if step == start else chunk(
            step, steps, steps_per_execution, eval_every,
            saver.every if saver.directory is not None else None)
        values = run_steps(data, tf.constant(count)).numpy()
        for value in values:
            step += 1
            value = float(value)
            lr = float(learning_rate(step - 1))  # the rate this update used
            reporter.train_step(step, value, lr)
            if not tf.math.is_finite(value):
                raise FloatingPointError(f"the training loss is {value} at step {step}")
        evaluate_now = step == steps or bool(eval_every) and step % eval_every == 0
        if evaluate_now:
            rate = reporter.images_per_second(step)
            val_loss = accuracy = None
            if eval_step is not None:
                val_loss, accuracy = steps_lib.evaluate(eval_step, eval_input(), strategy)
            reporter.evaluation(step, lr, rate, val_loss, accuracy)
        if saver.due(step, steps):
            saver.save(step)
        if evaluate_now:
            reporter.restart_clock()
    if worker_model is not model:
        model.set_weights(worker_model.get_weights())
    return TrainResult(model, max(start, steps), reporter.history, resumed_from, run_dir)
