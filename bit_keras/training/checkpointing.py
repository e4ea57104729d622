"""Resumable runs: ``tf.train.CheckpointManager`` in ``<run_dir>/checkpoints``.

A checkpoint holds the model, the optimizer (its slots, its step count and so the learning
rate schedule) and the loop's step, which also fixes the data order (the pipelines restart
at ``start_step``). In a multi-worker run every worker must save (saving is collective); the
chief writes the real checkpoint and the others write to a scratch folder they delete.
Every worker restores from the chief's folder, so ``run_dir`` must be on a file system that
all workers see (a shared disk, or ``gs://`` on Cloud TPU).
"""

import os
import shutil

import tensorflow as tf
from absl import logging

from bit_keras.training import strategy as strategies

CHECKPOINT_DIR = "checkpoints"


class Checkpointer:
    """Saves every ``every`` steps and at the end; restores the latest on start.

    Args:
        run_dir: the run folder, or None for no checkpoints.
        strategy: the ``tf.distribute`` strategy.
        every: steps between checkpoints (None or 0: only at the end).
        **objects: what to save, e.g. ``model=..., optimizer=..., step=...``.
    """

    def __init__(self, run_dir, strategy, every=None, max_to_keep=2, **objects):
        self.every = every
        self.directory = None if run_dir is None else os.path.join(run_dir, CHECKPOINT_DIR)
        if self.directory is None:
            return
        _, task_id, chief = strategies.worker(strategy)
        self._scratch = None if chief else os.path.join(run_dir, f".worker{task_id}")
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.directory if chief else os.path.join(self._scratch, CHECKPOINT_DIR),
            max_to_keep=max_to_keep)

    def restore(self):
        """Restores the chief's latest checkpoint; returns its path or None."""
        latest = self.directory and tf.train.latest_checkpoint(self.directory)
        if not latest:
            return None
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s", latest)
        return latest

    def due(self, step, last):
        return self.directory is not None and (
            step == last or bool(self.every) and step % self.every == 0)

    def save(self, step):
        path = self.manager.save(checkpoint_number=step)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return path
