"""The distributed training step of our own, with gradient accumulation, and the eval step.

``model.fit`` fails under ``MultiWorkerMirroredStrategy`` on TF 2.21 / Keras 3.15 (docs/design.md),
so the step is ``strategy.run`` over a ``tf.function`` with a ``tf.GradientTape``. Every
replica's loss is a sum over its examples divided by the *global* batch, and the Keras
optimizer all-reduces (sums) the gradients, so the update is the mean over the global batch
whatever the number of replicas or micro-batches.
"""

import collections

import keras
import tensorflow as tf

from bit_keras import layers as bit_layers
from bit_keras.training import remat as remat_lib
from bit_keras.training import strategy as strategies

LOSSES = ("softmax", "sigmoid")


def check_loss(loss):
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}. Received: loss={loss!r}")
    return loss


class Loss:
    """What the step minimises: ``targets(images, labels)`` (computed outside the gradient
    tape: a teacher's outputs keep no activations for a backward pass) and
    ``per_example(targets, logits)``. ``kind`` is the label loss evaluation scores with.
    This one is cross-entropy on the labels; a recipe subclasses it (distillation)."""

    def __init__(self, kind="softmax"):
        self.kind = check_loss(kind)

    def targets(self, images, labels):
        return labels

    def per_example(self, targets, logits):
        return per_example_loss(self.kind, targets, logits)


def as_loss(loss):
    """A ``Loss`` from a ``Loss`` or the name of a label loss (``LOSSES``)."""
    return loss if isinstance(loss, Loss) else Loss(loss)


def per_example_loss(loss, labels, logits):
    """Cross-entropy per example: softmax over classes, or the sum of per-class sigmoids."""
    logits = tf.cast(logits, tf.float32)
    if loss == "softmax":
        return tf.nn.softmax_cross_entropy_with_logits(labels, logits)
    return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits), axis=-1)


def distillation_loss(teacher_logits, student_logits, temperature=1.0):
    """KL(teacher || student) per example over softmaxes at ``temperature`` (function
    matching, Beyer et al. 2021; big_vision's ``kl`` distance)."""
    t = tf.cast(teacher_logits, tf.float32) / temperature
    s = tf.cast(student_logits, tf.float32) / temperature
    p = tf.nn.softmax(t)
    return tf.reduce_sum(p * (tf.nn.log_softmax(t) - tf.nn.log_softmax(s)), axis=-1)


def correct(loss, labels, logits):
    """Per-example accuracy: top-1 for softmax, the fraction of right labels for sigmoid."""
    logits = tf.cast(logits, tf.float32)
    if loss == "softmax":
        hit = tf.equal(tf.argmax(logits, -1), tf.argmax(labels, -1))
        return tf.cast(hit, tf.float32)
    return tf.reduce_mean(tf.cast(tf.equal(logits > 0, labels > 0.5), tf.float32), axis=-1)


def standardized_convs(model):
    """The ``StandardizedConv2D`` layers of ``model`` (nested models included) that take
    given standardized kernels: subclasses with a convolution of their own are left out."""
    found, stack = [], [model]
    while stack:
        layer = stack.pop()
        if (isinstance(layer, bit_layers.StandardizedConv2D)
                and type(layer).convolution_op is bit_layers.StandardizedConv2D.convolution_op):
            found.append(layer)
        stack.extend(getattr(layer, "layers", ()))
    return found


def make_train_step(model, optimizer, strategy, global_batch, loss="softmax", batch_split=1,
                    weight_decay=0.0, jit_compile=False, remat=False):
    """A ``tf.function`` running one optimizer update on the next batch of an iterator.

    Args:
        model, optimizer: built in ``strategy.scope()``.
        strategy: the ``tf.distribute`` strategy.
        global_batch: examples per update over all replicas (the loss divisor).
        loss: ``"softmax"`` or ``"sigmoid"`` cross-entropy on the labels, or a ``Loss``
            (``bit_keras.training.distillation.FunctionMatching``: a teacher's outputs).
        batch_split: each replica's batch is cut into this many micro-batches whose
            gradients are summed in float32 before the one update (same update, less memory).
        weight_decay: coupled L2: ``weight_decay * w`` added to the gradient of every kernel.
        jit_compile: each micro-batch's forward and backward pass is one XLA computation
            (the compiled CPU kernels step aside inside it); the gradient sum across
            replicas and the optimizer's update stay outside it.
        remat: keep only each residual unit's input for the backward pass and recompute
            the unit's activations there (``remat.unit_segments``): less memory, about one
            more forward pass of time.

    Returns:
        ``step(iterator) -> mean loss over the global batch`` (a scalar tensor).
    """
    loss = as_loss(loss)
    variables = model.trainable_variables
    decayed = [len(v.shape) > 1 for v in variables]
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    # Convolutions that share one kernel variable keep standardizing per call (rare; their
    # gradients then reach the variable the ordinary way).
    convs = standardized_convs(model)
    shared = collections.Counter(id(conv.kernel) for conv in convs)
    convs = [conv for conv in convs if shared[id(conv.kernel)] == 1]
    # (conv, position of its kernel in ``variables``) for the trainable ones.
    kernel_index = {id(v): i for i, v in enumerate(variables)}
    trained = [(conv, kernel_index[id(conv.kernel)]) for conv in convs
               if id(conv.kernel) in kernel_index]

    forward = remat_lib.rematerialized(model) if remat else model

    def on(sources, watch=()):
        """``fn(images, labels) -> (loss, gradients for sources)`` of one micro-batch; one
        XLA computation with ``jit_compile`` (capturing, not taking, the variables)."""
        def gradients(images, targets):
            with tf.GradientTape() as tape:
                tape.watch(list(watch))
                logits = forward(images, training=True)
                value = tf.reduce_sum(loss.per_example(targets, logits)) / global_batch
                target = optimizer.scale_loss(value) if scaled else value
            grads = tape.gradient(target, sources)
            return value, [tf.cast(g, tf.float32) for g in grads]

        if jit_compile:
            gradients = tf.function(gradients, jit_compile=True)

        def run(images, labels):
            # The targets outside the tape, and outside XLA: a teacher (a reloaded SavedModel)
            # may hold its variables on one device only.
            return gradients(images, loss.targets(images, labels))

        return run

    def accumulate(images, labels, sources, watch=()):
        """The loss and gradient sums over ``batch_split`` micro-batches."""
        run = on(sources, watch)
        size = tf.shape(images)[0] // batch_split
        total = tf.zeros((), tf.float32)
        grads = [tf.zeros(s.shape, tf.float32) for s in sources]
        # A tf.while_loop: one micro-batch's activations live at a time.
        for i in tf.range(batch_split):
            # In order, one at a time: parallel iterations would keep several
            # micro-batches' activations alive and defeat the point of splitting.
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            value, more = run(images[i * size:(i + 1) * size], labels[i * size:(i + 1) * size])
            total += value
            grads = [a + g for a, g in zip(grads, more)]
        return total, grads

    def replica_step(images, labels):
        # The compiled kernels here (this step is never saved); opened in the replica's own
        # thread, where the strategy traces it.
        with bit_layers.compiled_kernels():
            return replica_update(images, labels)

    def replica_update(images, labels):
        if batch_split == 1:
            total, grads = on(variables)(images, labels)
        elif remat:
            # The recomputed units take their gradients to the variables themselves (a
            # standardized kernel handed in from outside would get none), so each
            # micro-batch standardizes again: the same update, a little more work.
            total, grads = accumulate(images, labels, variables)
        else:
            # Standardize every kernel once for all micro-batches: each micro-batch takes
            # its gradient with respect to the standardized kernels, and the sum goes back
            # through the standardization once (it is linear in that gradient).
            with tf.GradientTape() as ws_tape:
                kernels = {conv: conv.standardized_kernel() for conv in convs}
            standardized = [kernels[conv] for conv, _ in trained]
            sources = list(variables)
            for (_, i), kernel in zip(trained, standardized):
                sources[i] = kernel
            with bit_layers.given_standardized_kernels(kernels):
                total, grads = accumulate(images, labels, sources, standardized)
            if trained:
                raw = ws_tape.gradient(standardized,
                                       [variables[i] for _, i in trained],
                                       output_gradients=[grads[i] for _, i in trained])
                for (_, i), g in zip(trained, raw):
                    grads[i] = tf.cast(g, tf.float32)
        if weight_decay:
            # Gradients are summed over replicas: each adds its share of the decay.
            share = weight_decay / strategy.num_replicas_in_sync
            if scaled:
                share = share * optimizer.scale_loss(1.0)
            grads = [g + share * tf.cast(v, tf.float32) if d else g
                     for g, v, d in zip(grads, variables, decayed)]
        optimizer.apply([tf.cast(g, v.dtype) for g, v in zip(grads, variables)], variables)
        return total

    @tf.function
    def step(iterator):
        images, labels = next(iterator)
        losses = strategy.run(replica_step, (images, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    return step


def make_eval_step(model, loss="softmax", strategy=None, jit_compile=False):
    """A ``tf.function`` (images, labels) -> (summed loss, summed accuracy, count), scored
    on the labels with ``loss`` (a name in ``LOSSES``, or a ``Loss``'s ``kind``).

    Under ``strategy`` the batch is a distributed one (``evaluate`` makes it): every replica
    scores its share and the sums are over all replicas, so every worker of a multi-worker
    run calls it; without one it runs on this process's first device. ``jit_compile`` makes
    each replica's forward pass one XLA computation.
    """
    loss = as_loss(loss).kind

    def replica_sums(images, labels):
        # A function of its own in each replica's trace: one XLA computation placed on
        # that replica's device, reading that replica's variables.
        return (tf.function(sums, jit_compile=True) if jit_compile else sums)(images, labels)

    def sums(images, labels):
        with bit_layers.compiled_kernels():  # never saved: the fast path (not under XLA)
            logits = model(images, training=False)
        # float32 on the device (TPUs have no float64); the sums over batches are float64.
        return (tf.reduce_sum(per_example_loss(loss, labels, logits)),
                tf.reduce_sum(correct(loss, labels, logits)),
                tf.cast(tf.shape(images)[0], tf.float32))

    @tf.function(reduce_retracing=True)
    def evaluate(images, labels):
        if strategy is None:  # this process's first device
            sums = replica_sums(images, labels)
        else:
            sums = [strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                    for value in strategy.run(replica_sums, (images, labels))]
        return tuple(tf.cast(value, tf.float64) for value in sums)

    return evaluate


def evaluate(eval_step, dataset, strategy=None):
    """Mean loss and accuracy of a finite dataset of (images, labels) batches.

    With ``strategy`` (the one ``eval_step`` was made with), each batch is split across its
    replicas (a last, short batch too) and every worker must call this; the sums stay on
    the device until the end.
    """
    if strategy is not None and not strategies.is_default(strategy):
        options = tf.data.Options()
        # Every worker reads the (finite, small) evaluation data and scores its share.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))
    totals = None
    for images, labels in dataset:
        sums = eval_step(images, labels)
        totals = sums if totals is None else tuple(a + b for a, b in zip(totals, sums))
    loss, accuracy, count = (0.0, 0.0, 0.0) if totals is None else (float(t) for t in totals)
    if count == 0:
        raise ValueError("the evaluation data is empty")
    return loss / count, accuracy / count
