"""Fine-tuning images/second: ``bit_keras.training``'s step on our BiT and on the reference.

The step is the library's own (``bit_keras.training.make_train_step``: ``tf.GradientTape``,
SGD with momentum, ``batch_split`` micro-batches summed in float32) so the figure is what
``bit_keras.fine_tune`` runs; only the model differs between ``bit_keras`` and the reference.
"""

import numpy as np

from benchmarks import flops, models, timing

# Forward + backward is about 3x the forward multiply-adds (two matmuls per weight gradient
# and input gradient), the usual convention.
TRAIN_FLOPS_FACTOR = 3


def train_step(model, images, labels, batch_split=1, **options):
    """A zero-argument callable running one SGD-momentum update of ``model`` on one batch
    (``options``: ``make_train_step``'s ``jit_compile``, ``remat``)."""
    step, data = step_and_data(model, images, labels, batch_split, **options)
    return lambda: step(data)


def step_and_data(model, images, labels, batch_split=1, **options):
    """The library's step (``step(iterator)``) with SGD-momentum and an endless iterator
    over the one batch."""
    import keras
    import tensorflow as tf

    from bit_keras import training
    strategy = tf.distribute.get_strategy()
    optimizer = keras.optimizers.SGD(0.003, momentum=0.9)
    step = training.make_train_step(model, optimizer, strategy, global_batch=len(images),
                                    loss="softmax", batch_split=batch_split, **options)
    return step, iter(tf.data.Dataset.from_tensors((images, labels)).repeat())


def batch(arch, resolution, size, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (size, resolution, resolution, 3)).astype(np.float32)
    labels = np.eye(arch["num_classes"], dtype=np.float32)[
        rng.integers(0, arch["num_classes"], size)]
    return images, labels


def fine_tuning(arch, resolution, batches, reps=3, warmup=1, dtypes=("float32", "bfloat16"),
                batch_split=None, other_dtype_batches=None, other_dtype_reps=None, timm=False):
    """Images/second of one training step, ours vs the reference, for each batch size.

    Args:
        arch: the architecture dict (see ``benchmarks.models.pair``).
        resolution: the square image side (BiT fine-tunes R50x1 at 128 for small images).
        batches: batch sizes (global batch of one update).
        reps, warmup: timed and untimed steps per candidate.
        dtypes: ``"float32"`` and/or ``"bfloat16"``.
        batch_split: also time ``bit_keras`` with this many micro-batches.
        other_dtype_batches: the batch sizes at which dtypes other than float32 are timed
            (default: all). On a CPU without bfloat16 arithmetic a bfloat16 step is ~10x
            slower than float32, and the full run has a time budget.
        other_dtype_reps: timed repetitions for those dtypes (default ``reps``); they are
            timed in their own round-robin after the float32 candidates.
        timm: also time timm's BiT with the same weights and the same update
            (``benchmarks.peers.train_steps``), float32, in both memory layouts.

    Returns:
        Table rows (``images_per_s`` counts images per second of updates).
    """
    per_image = TRAIN_FLOPS_FACTOR * flops.bit_flops(
        arch["units"], arch["width"], resolution, arch["num_classes"], arch["base_filters"])
    # One reference, float32: every ratio is to the plain float32 model.
    pairs = {d: models.pair(arch, d, seed=0, include_reference=d == "float32") for d in dtypes}
    rows = []
    for size in batches:
        images, labels = batch(arch, resolution, size)
        candidates, others = {}, {}
        if timm:
            from benchmarks import peers
            candidates.update(peers.train_steps(pairs["float32"][0], arch, images, labels))
        for dtype, (ours, ref) in pairs.items():
            if dtype != "float32" and other_dtype_batches is not None \
                    and size not in other_dtype_batches:
                continue
            group = candidates if dtype == "float32" else others
            if ref is not None:
                group[f"reference/step/{dtype}"] = train_step(ref, images, labels)
            group[f"bit_keras/step/{dtype}"] = train_step(ours, images, labels)
            if batch_split and size % batch_split == 0 and size > batch_split and dtype == "float32":
                group[f"bit_keras/step_split{batch_split}/{dtype}"] = train_step(
                    ours, images, labels, batch_split)
        measured = timing.interleaved(candidates, reps=reps, warmup=warmup)
        if others:
            measured.update(timing.interleaved(
                others, reps=other_dtype_reps or reps, warmup=warmup))
        rows += _rows(measured, resolution, size, per_image)
    return rows


def _rows(measured, resolution, size, per_image):
    from benchmarks import peers
    peer = peers.best(measured, "timm/", "float32")
    rows = []
    for name, m in measured.items():
        row = {"section": f"fine-tune {resolution}px", "name": name, "batch": size,
               "images_per_s": size / m["seconds"], "cpu_images_per_s": size / m["cpu_seconds"],
               "flops_per_image": per_image, "dtype": name.rsplit("/", 1)[1],
               "vs_reference": measured["reference/step/float32"]["seconds"] / m["seconds"],
               "seconds": m["seconds"], "wall": m["wall"], "reps": m["reps"]}
        if peer:
            row.update(vs_timm_float32=measured[peer]["seconds"] / m["seconds"],
                       vs_timm_float32_peer=peer)
            if row["dtype"] == "float32":
                row.update(vs_timm=row["vs_timm_float32"], vs_timm_peer=peer)
        rows.append(row)
    return rows
