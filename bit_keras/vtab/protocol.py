"""The VTAB-1k protocol: fine-tune a copy of one model on each task's 1000 examples with the
BiT-HyperRule, score it on the task's test split, and summarise (the mean over all tasks and
over each category), resumably task by task."""

import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from bit_keras.utils import atomic, checks
from bit_keras.vtab.tasks import CATEGORIES, chosen_tasks, label_of, splits

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.json"


def _tfds():
    import tensorflow_datasets as tfds
    return tfds


def _builder(task, data_dir):
    tfds = _tfds()
    builder = tfds.builder(task.tfds, data_dir=data_dir)
    builder.download_and_prepare()
    return builder


def _examples(task, builder, split):
    """``(uint8 RGB image, int64 label)`` pairs of one VTAB split, in order."""
    counts = {name: info.num_examples for name, info in builder.info.splits.items()}
    ds = builder.as_dataset(split=splits(task, counts)[split], shuffle_files=False)

    def pair(example):
        image = example["image"]
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        return image, label_of(task, example)

    return ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)


def training_source(task, builder):
    """The task's ``train800val200`` as a ``bit_keras.data.Source`` (1000 images, in memory)."""
    from bit_keras import data

    images, labels = [], []
    for image, label in _tfds().as_numpy(_examples(task, builder, "train800val200")):
        images.append(image)
        labels.append(label)
    return data.from_arrays(images, np.asarray(labels, np.int64),
                            class_names=[str(i) for i in range(task.num_classes)])


def test_accuracy(model, task, builder, crop, batch=64):
    """Top-1 accuracy on the task's test split, streamed, each image resized to ``crop``
    (the evaluation of ``bit_keras.data.eval_dataset``)."""
    def prepare(image, label):
        return tf.image.resize(tf.cast(image, tf.float32) / 255.0, [crop, crop]), label

    hits = count = 0
    stream = _examples(task, builder, "test").map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    for images, labels in stream.batch(batch):
        predicted = np.argmax(np.asarray(model(images, training=False)), -1)
        hits += int(np.sum(predicted == labels.numpy()))
        count += len(predicted)
    return hits / max(count, 1), count


def summarise(results):
    """Mean accuracy over every task with a result, and over each category present."""
    by = {c: [r["accuracy"] for r in results.values() if r["category"] == c] for c in CATEGORIES}
    every = [r["accuracy"] for r in results.values()]
    summary = {"tasks": len(every), "mean": float(np.mean(every)) if every else None}
    for category, values in by.items():
        summary[category] = float(np.mean(values)) if values else None
    return summary


def table(results, summary):
    """The results as a Markdown table, the summary rows last."""
    rows = ["| task | category | test accuracy | test images |", "|---|---|---|---|"]
    rows += [f"| {n} | {r['category']} | {100 * r['accuracy']:.1f}% | {r['test_examples']} |"
             for n, r in results.items()]
    for key in ("mean",) + CATEGORIES:
        if summary[key] is not None:
            rows.append(f"| **{key}** | | {100 * summary[key]:.1f}% | |")
    return "\n".join(rows)


def run(model, run_dir, tasks=None, data_dir=None, batch=512, hyperrule="code", seed=0,
        strategy=None, precision="float32", progress=None, **fine_tune_options):
    """Runs VTAB-1k: each task fine-tuned from a copy of ``model`` and scored on its test.

    Args:
        model: a BiT model (its head, if any, is replaced per task).
        run_dir: one folder per task (the ``fine_tune`` run, and ``result.json`` once
            scored), ``summary.json`` and ``summary.md``. Running again skips scored tasks
            and resumes the one a kill interrupted.
        tasks: task names or ``Task`` objects (default all 19).
        data_dir: TFDS ``data_dir``; each dataset is prepared there (downloads on first use).
        batch, hyperrule, seed, strategy, precision, progress, fine_tune_options: for
            ``bit_keras.fine_tune`` (the HyperRule on 1000 examples: 500 steps).

    Returns:
        ``(results, summary)``: per task ``accuracy``, ``test_examples``, ``category``;
        the means (``mean``, ``natural``, ``specialized``, ``structured``).
    """
    from bit_keras.training import finetuning, loop

    # Checked before a dataset is prepared (downloads) or a folder written; fine_tune checks
    # the rest of its options again for each task.
    checks.positive_int(batch, "batch")
    checks.seed(seed)
    for name in ("batch_split", "steps"):
        checks.positive_int(fine_tune_options.get(name), name, allow_none=True)
    for name in ("eval_every", "checkpoint_every"):
        checks.non_negative_int(fine_tune_options.get(name), name, allow_none=True)
    loop.check_speed(fine_tune_options.get("jit_compile"),
                     fine_tune_options.get("steps_per_execution", 1),
                     fine_tune_options.get("remat", False))
    chosen = chosen_tasks(tasks)
    weights = model.get_weights()
    results = {}
    for task in chosen:
        folder = os.path.join(run_dir, task.name)
        done = os.path.join(folder, RESULT_FILE)
        if os.path.exists(done):
            with open(done, encoding="utf-8") as f:
                results[task.name] = json.load(f)
            continue
        builder = _builder(task, data_dir)
        source = training_source(task, builder)
        copy = type(model).from_config(model.get_config())
        copy.set_weights(weights)
        logging.info("VTAB-1k %s: fine-tuning on %d examples", task.name, source.num_examples)
        tuned = finetuning.fine_tune(copy, source, None, run_dir=folder, hyperrule=hyperrule,
                                     batch=batch, seed=seed, strategy=strategy,
                                     precision=precision, progress=progress, **fine_tune_options)
        accuracy, count = test_accuracy(tuned.model, task, builder, tuned.hyperparams.crop)
        results[task.name] = {"accuracy": accuracy, "test_examples": count,
                              "category": task.category, "steps": tuned.step}
        atomic.write_json(done, results[task.name])
    summary = summarise(results)
    atomic.write_json(os.path.join(run_dir, SUMMARY_FILE), {"results": results, **summary})
    atomic.write_text(os.path.join(run_dir, "summary.md"), table(results, summary) + "\n")
    return results, summary
