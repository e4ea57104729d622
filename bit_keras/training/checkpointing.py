"""Resumable runs: ``tf.train.CheckpointManager`` in ``<run_dir>/checkpoints``.

A checkpoint holds the model, the optimizer (its slots, its step count and so the learning
rate schedule) and the loop's step, which also fixes the data order (the pipelines restart
at ``start_step``). In a multi-worker run every worker must save (saving is collective); the
chief writes the real checkpoint and the others write to a scratch folder they delete.
Every worker restores from the chief's folder, so ``run_dir`` must be on a file system that
all workers see (a shared disk, or ``gs://`` on Cloud TPU).
"""

import os
import re
import shutil

import tensorflow as tf
from absl import logging

from bit_keras.checkpoints.formats import CheckpointError  # noqa: F401 - raised here too
from bit_keras.training import strategy as strategies

CHECKPOINT_DIR = "checkpoints"
_PREFIX = "ckpt"  # tf.train.CheckpointManager's default checkpoint_name
_STATE_FILE = "checkpoint"
_INDEX = re.compile(rf"^{_PREFIX}-(\d+)\.index$")
_TEMP = re.compile(rf"^{_PREFIX}-\d+_temp")  # what a killed save leaves


def _write_state(directory, prefixes):
    """The ``checkpoint`` state file listing ``prefixes`` (oldest first; the last is the
    latest), relative to ``directory``."""
    names = [os.path.basename(p) for p in prefixes]
    tf.compat.v1.train.update_checkpoint_state(directory, names[-1],
                                               all_model_checkpoint_paths=names)


def _candidates(directory):
    """``(N, prefix)`` of every ``ckpt-N.index`` in ``directory``, newest first."""
    found = [(int(m.group(1)), os.path.join(directory, f"{_PREFIX}-{m.group(1)}"))
             for m in map(_INDEX.match, tf.io.gfile.listdir(directory)) if m]
    return sorted(found, reverse=True)


def _remove_temp_folders(directory):
    """Deletes the ``ckpt-N_temp`` folders that a save killed midway leaves."""
    for name in tf.io.gfile.listdir(directory):
        name = name.rstrip("/")
        path = os.path.join(directory, name)
        if _TEMP.match(name) and tf.io.gfile.isdir(path):
            logging.info("Removing %s, left by an interrupted save", path)
            tf.io.gfile.rmtree(path)


def _repair_state_file(directory):
    """Rewrites a ``checkpoint`` state file that does not parse from the checkpoints present.

    The state file only lists checkpoints (``restore`` does not trust it either), so nothing
    is lost; ``tf.train.CheckpointManager`` would otherwise fail to start.
    """
    path = os.path.join(directory, _STATE_FILE)
    if not tf.io.gfile.exists(path):
        return
    try:
        tf.train.get_checkpoint_state(directory)
        return
    except Exception as error:  # noqa: BLE001 - any damage: bytes, text, protobuf syntax
        logging.warning("%s does not parse (%s: %s); rewriting it from the checkpoints present",
                        path, type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")
    kept = [p for _, p in sorted(_candidates(directory))]
    if kept:
        _write_state(directory, kept)
    else:
        tf.io.gfile.remove(path)


class Checkpointer:
    """Saves every ``every`` steps and at the end; restores the newest that restores on start.

    Args:
        run_dir: the run folder, or None for no checkpoints.
        strategy: the ``tf.distribute`` strategy.
        every: steps between checkpoints (None or 0: only at the end).
        **objects: what to save, e.g. ``model=..., optimizer=..., step=...``.
    """

    def __init__(self, run_dir, strategy, every=None, max_to_keep=2, **objects):
        self.every, self._max_to_keep = every, max_to_keep
        self.directory = None if run_dir is None else os.path.join(run_dir, CHECKPOINT_DIR)
        if self.directory is None:
            return
        _, task_id, chief = strategies.worker(strategy)
        self._scratch = None if chief else os.path.join(run_dir, f".worker{task_id}")
        self.checkpoint = tf.train.Checkpoint(**objects)
        if chief:
            _repair_state_file(self.directory)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.directory if chief else os.path.join(self._scratch, CHECKPOINT_DIR),
            max_to_keep=max_to_keep)

    def restore(self):
        """Restores the newest checkpoint that restores; returns its path or None.

        Every ``ckpt-N.index`` in the chief's folder is a candidate, newest first (the
        ``checkpoint`` state file may be damaged or lag behind). A candidate that fails (a
        truncated ``.data``, a garbage ``.index``) is skipped with a warning; the next one
        assigns every variable again, so nothing of the failed one survives. When none
        restores, a ``CheckpointError`` names the files and nothing is deleted.
        """
        if self.directory is None or not tf.io.gfile.isdir(self.directory):
            return None
        if self._scratch is None:
            _remove_temp_folders(self.directory)
        candidates = _candidates(self.directory)
        failures = []
        for number, prefix in candidates:
            try:
                self.checkpoint.restore(prefix).assert_existing_objects_matched()
            except Exception as error:  # any damage: the next candidate overwrites everything
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                failures.append(f"{os.path.basename(prefix)} ({type(error).__name__}: {reason[:200]})")
                logging.warning("Checkpoint %s does not restore, trying an older one: %s",
                                prefix, failures[-1])
                continue
            if failures:
                logging.info("Resumed from %s (the newest that restores; skipped %s)", prefix,
                             ", ".join(failures))
            else:
                logging.info("Resumed from %s", prefix)
            if self._scratch is None:
                self._reset_state([p for n, p in sorted(candidates) if n <= number])
            return prefix
        leftovers = sorted(f for f in tf.io.gfile.listdir(self.directory)
                           if f.startswith(_PREFIX + "-") or f == _STATE_FILE)
        if leftovers:
            raise CheckpointError(
                f"no checkpoint in {self.directory!r} restores"
                + (f" ({'; '.join(failures)})" if failures else "")
                + f"; files left as they are: {', '.join(leftovers)}. Repair or move them, or "
                "use a new run_dir")
        return None

    def _reset_state(self, kept):
        """Points the state file and the manager at ``kept`` (oldest first), the restored
        checkpoint last, so that no damaged newer one counts among those kept."""
        _write_state(self.directory, kept)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=self._max_to_keep)

    def due(self, step, last):
        return self.directory is not None and (
            step == last or bool(self.every) and step % self.every == 0)

    def save(self, step):
        path = self.manager.save(checkpoint_number=step)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return path
