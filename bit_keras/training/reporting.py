"""What a run reports: ``metrics.jsonl``, TensorBoard summaries, a progress bar, log lines."""

import json
import os
import sys
import time

import keras
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

from bit_keras.utils import atomic

METRICS_FILE = "metrics.jsonl"
SKIPPED_FILE = "skipped_files.txt"  # unreadable image files the streams passed over
TENSORBOARD_DIR = "tensorboard"
# What tf.summary.scalar writes, without needing the tensorboard package installed.
_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR)


def last_accuracy(history):
    """The last validation accuracy of a run's evaluation history, or None."""
    scored = [r["accuracy"] for r in history if r.get("accuracy") is not None]
    return scored[-1] if scored else None


def read_metrics(run_dir):
    """The evaluations of a run: a list of dicts, one per ``metrics.jsonl`` line.

    A torn last line (a crash or a full disk during an append) is dropped with a warning;
    any other line that does not parse is a ValueError naming the file and the line.
    """
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip("\0 \t\r\n")]
    records = []
    for i, (number, line) in enumerate(lines):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not a record with a step")
        except ValueError as error:
            if i == len(lines) - 1:
                logging.warning("%s: dropping its torn last line %d (%r): %s", path, number,
                                line[:80], error)
                break
            raise ValueError(f"{path}, line {number} does not parse ({error}); repair or "
                             "remove that line, or use a new run_dir") from None
        records.append(record)
    return records


def skipped_log(run_dir):
    """Where a run's streams append the unreadable image files they meet (None: nowhere)."""
    return None if run_dir is None else os.path.join(run_dir, SKIPPED_FILE)


def read_skipped(run_dir):
    """The unreadable image files a run's streams passed over: sorted, each once."""
    path = os.path.join(run_dir, SKIPPED_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return sorted({line.strip() for line in f if line.strip()})


class Reporter:
    """Collects training losses between evaluations and writes one record per evaluation.

    Only the chief writes files; every process keeps the history in memory.
    """

    def __init__(self, run_dir, steps, global_batch, start_step=0, write=True, progress=None):
        self.run_dir, self.steps, self.global_batch = run_dir, steps, global_batch
        self.write = write and run_dir is not None
        self.history = []
        self._losses, self._start, self._step = [], time.perf_counter(), start_step
        self._first = start_step + 1  # its time is mostly tracing: left out of images/second
        if self.write:
            os.makedirs(run_dir, exist_ok=True)
            self._keep_until(start_step)
            self._writer = tf.summary.create_file_writer(os.path.join(run_dir, TENSORBOARD_DIR))
            self.history = read_metrics(run_dir)
        if progress is None:
            progress = write and sys.stdout.isatty()
        self._bar = (keras.utils.Progbar(steps, stateful_metrics=["lr"], unit_name="step")
                     if progress else None)

    def _keep_until(self, step):
        """A resumed run drops the records of steps it will train again."""
        kept = [r for r in read_metrics(self.run_dir) if r["step"] <= step]
        atomic.write_text(os.path.join(self.run_dir, METRICS_FILE),
                          "".join(json.dumps(r) + "\n" for r in kept))

    def train_step(self, step, loss, lr):
        self._losses.append(loss)
        if step == self._first:
            self._start, self._step = time.perf_counter(), step
        if self._bar is not None:
            self._bar.update(step, [("loss", loss), ("lr", lr)])

    def images_per_second(self, step):
        """Training throughput since the last record (call it before evaluating), or None."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        return (step - self._step) * self.global_batch / elapsed if step > self._step else None

    def evaluation(self, step, lr, images_per_second, val_loss=None, accuracy=None):
        """Records the train loss since the last evaluation and the validation results."""
        record = {"step": int(step), "lr": float(lr),
                  "loss": float(sum(self._losses) / len(self._losses)) if self._losses else None,
                  "val_loss": val_loss, "accuracy": accuracy,
                  "images_per_second": images_per_second}
        self.history.append(record)
        logging.info("step %d/%d: %s", step, self.steps,
                     ", ".join(f"{k} {v:.5g}" for k, v in record.items()
                               if k != "step" and v is not None))
        if self.write:
            with open(os.path.join(self.run_dir, METRICS_FILE), "a") as f:
                f.write(json.dumps(record) + "\n")
            with self._writer.as_default(step=int(step)):
                for key, value in record.items():
                    if key != "step" and value is not None:
                        tf.summary.write(key, tf.constant(value, tf.float32), metadata=_SCALAR)
            self._writer.flush()
        self._losses, self._step = [], step
        return record

    def restart_clock(self):
        """Leaves evaluation and checkpoint time out of images/second."""
        self._start = time.perf_counter()
