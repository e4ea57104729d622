"""The training machinery under ``bit_keras.fine_tune``, ``pretrain`` and ``distill``.

One runner (``run``) runs a ``Recipe`` (its plan, loss and ``run.json`` pins) with the
``RunSettings`` all recipes share; under it, a training step of our own under any
``tf.distribute`` strategy, gradient accumulation, mixed precision, resumable checkpoints
and reporting.

Example:

>>> strategy = bit_keras.training.make_strategy("mirrored")
>>> result = bit_keras.training.train(model, make_batches, steps=500, schedule=0.003,
...                                   global_batch=512, strategy=strategy, run_dir="runs/a")
"""

from bit_keras.training.checkpointing import CHECKPOINT_DIR, Checkpointer
from bit_keras.training.loop import TrainResult, check_settings, train
from bit_keras.training.model_setup import PRECISIONS, freeze_blocks, replica, with_head
from bit_keras.training.reporting import (
    METRICS_FILE,
    SKIPPED_FILE,
    read_metrics,
    read_skipped,
    skipped_log,
)
from bit_keras.training.runner import Plan, Recipe, Result, RunSettings, run
from bit_keras.training.step import LOSSES, Loss, make_eval_step, make_train_step
from bit_keras.training.strategy import STRATEGIES, make_strategy, resolve_strategy

__all__ = ["CHECKPOINT_DIR", "Checkpointer", "LOSSES", "METRICS_FILE", "PRECISIONS",
           "SKIPPED_FILE", "STRATEGIES", "Loss", "Plan", "Recipe", "Result", "RunSettings",
           "TrainResult", "check_settings", "freeze_blocks", "make_eval_step", "make_strategy",
           "make_train_step", "read_metrics", "read_skipped", "replica", "resolve_strategy",
           "run", "skipped_log", "train", "with_head"]
