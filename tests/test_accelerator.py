"""Accelerator speed on CPU (issue 28): an XLA-compiled step, several steps per host call,
evaluation inside the strategy and rematerialization, each against the plain step."""


import fine_tune_support as support
import numpy as np
import pytest
import tensorflow as tf

import bit_keras
from bit_keras import training
from bit_keras.training import loop, remat


def _start(seed=1):
    import keras
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    model = bit_keras.resnet_v2(num_classes=3, **support.TINY)
    # A non-zero head, so that the whole backbone gets gradients in the first step.
    head = model.get_layer("head")
    head.kernel.assign(rng.normal(0, 0.5, head.kernel.shape))
    return model


def _batch(size=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1, (size, 32, 32, 3)).astype(np.float32),
            np.eye(3, dtype=np.float32)[rng.integers(0, 3, size)])


def _copy(start):
    import keras
    model = keras.models.clone_model(start)
    model.set_weights(start.get_weights())
    return model


def _trained(start, steps=2, **options):
    """(losses, weights, step function, iterator) after ``steps`` SGD-momentum updates."""
    import keras
    images, labels = _batch()
    model = _copy(start)
    step = training.make_train_step(model, keras.optimizers.SGD(0.1, momentum=0.9),
                                    tf.distribute.get_strategy(), len(images),
                                    weight_decay=1e-3, **options)
    data = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
    losses = [float(step(data)) for _ in range(steps)]
    return losses, model.get_weights(), step, data


def _same_update(start, a, b):
    """Two runs' weights moved alike: equal to 1e-4 of each tensor's largest change (float32
    sums in another order)."""
    for before, x, y in zip(start.get_weights(), a, b):
        change = np.abs(x - before).max()
        assert change > 0
        np.testing.assert_allclose(y - before, x - before, rtol=1e-3, atol=1e-4 * change)


def _graph_nodes(function, *args):
    graph = function.get_concrete_function(*args).graph.as_graph_def()
    functions = list(graph.library.function)
    return list(graph.node) + [n for f in functions for n in f.node_def], functions


def _must_compile(function, *args):
    """Whether the traced ``function`` holds a computation XLA must compile."""
    nodes, functions = _graph_nodes(function, *args)
    return (any(n.attr["_XlaMustCompile"].b for n in nodes if "_XlaMustCompile" in n.attr)
            or any(f.attr["_XlaMustCompile"].b for f in functions if "_XlaMustCompile" in f.attr))


@pytest.mark.parametrize("option, batch_split", [("jit_compile", 1), ("jit_compile", 2),
                                                  ("remat", 2)])
def test_xla_and_remat_steps_make_the_plain_steps_update(option, batch_split):
    start = _start()
    plain_losses, plain, plain_step, plain_data = _trained(start, batch_split=batch_split)
    losses, weights, step, data = _trained(start, batch_split=batch_split, **{option: True})
    assert _must_compile(step, data) == (option == "jit_compile")
    assert not _must_compile(plain_step, plain_data)
    assert losses == pytest.approx(plain_losses, rel=1e-5)
    _same_update(start, plain, weights)


def test_an_xla_evaluation_scores_as_the_plain_one():
    model = _start()
    images, labels = _batch(7)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    plain = training.step.evaluate(training.make_eval_step(model), dataset)
    xla_step = training.make_eval_step(model, jit_compile=True)
    xla = training.step.evaluate(xla_step, dataset)
    assert _must_compile(xla_step, images[:4], labels[:4])
    assert xla == pytest.approx(plain, rel=1e-5)
    # The float64 reference: the mean cross-entropy and accuracy of the model's own logits.
    logits = model.predict_on_batch(images).astype(np.float64)
    log_p = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
                                                                              keepdims=True)) \
        - logits.max(1, keepdims=True)
    expected = (-(labels * log_p).sum(1).mean(), (logits.argmax(1) == labels.argmax(1)).mean())
    assert plain == pytest.approx(expected, rel=1e-5)


def _conv_forward_ops(model, forward):
    """Forward convolutions in the traced gradient of ``forward`` (recomputation adds some)."""
    images, labels = _batch(2)
    variables = model.trainable_variables

    @tf.function
    def gradients(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(
                labels, forward(x, training=True)))
        return tape.gradient(loss, variables)

    nodes, _ = _graph_nodes(gradients, tf.constant(images))
    return sum(n.op == "Conv2D" for n in nodes), gradients(tf.constant(images))


def test_remat_recomputes_each_unit_and_keeps_the_gradients():
    model = _start()
    plain_convs, plain = _conv_forward_ops(model, model)
    remat_convs, rematerialized = _conv_forward_ops(model, remat.rematerialized(model))
    # The tiny BiT's four units hold 4 x 3 convolutions and 3 projections (the last unit's
    # input is recomputed too): each runs again in the backward pass.
    units = [layer.name for layer in model.layers if layer.name.endswith("_add")]
    convs_in_units = sum(isinstance(layer, bit_keras.layers.StandardizedConv2D)
                         for layer in model.layers if layer.name.startswith("block"))
    assert len(units) == 4 and remat_convs == plain_convs + convs_in_units
    for a, b in zip(plain, rematerialized):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4,
                                   atol=1e-5 * np.abs(a.numpy()).max())


def test_remat_refuses_what_it_cannot_recompute():
    import keras
    with pytest.raises(ValueError, match="remat cannot recompute a unit with drop path"):
        remat.rematerialized(bit_keras.resnet_v2(num_classes=3, drop_path_rate=0.1,
                                                 **support.TINY))

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="remat needs a BiT model built by bit_keras"):
        remat.rematerialized(Subclassed(name="plain"))
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="residual units .* in its own graph"):
        remat.rematerialized(keras.Model(inputs, keras.layers.Dense(3)(inputs)))


def test_a_host_call_runs_up_to_the_next_evaluation_or_checkpoint():
    # (step, steps, steps_per_execution, eval_every, checkpoint_every) -> updates in the call
    assert loop.chunk(0, 10, 8, 4, None) == 4
    assert loop.chunk(4, 10, 8, 0, 6) == 2
    assert loop.chunk(6, 10, 8, None, None) == 4
    assert loop.chunk(8, 10, 1, 3, 3) == 1
    assert loop.chunk(9, 10, 8, 4, 3) == 1


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return support.write_task(str(tmp_path_factory.mktemp("accelerator") / "task"))


def _fine_tune(task, run_dir, drop_path_rate=0.0, **options):
    import keras
    keras.utils.set_random_seed(0)
    model = bit_keras.resnet_v2(num_classes=3, drop_path_rate=drop_path_rate, **support.TINY)
    settings = {**support.RUN, "steps": 7, "eval_every": 3, "checkpoint_every": 5}
    return bit_keras.fine_tune(model, task, run_dir=run_dir, **{**settings, **options})


def test_several_steps_per_call_train_alike_and_resume_exactly(task, tmp_path):
    import shutil
    one = _fine_tune(task, str(tmp_path / "one"))
    several = _fine_tune(task, str(tmp_path / "several"), steps_per_execution=4)
    # Evaluations at 3, 6 and the end; checkpoints at 5 and the end: the calls are cut there.
    assert [h["step"] for h in several.history] == [h["step"] for h in one.history] == [3, 6, 7]
    for a, b in zip(one.history, several.history):  # each the mean of its steps' losses
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["accuracy"] == pytest.approx(a["accuracy"])
    assert sorted(p.name for p in (tmp_path / "several" / "checkpoints").glob("*.index")) == \
        ["ckpt-5.index", "ckpt-7.index"]
    for a, b in zip(one.model.get_weights(), several.model.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    # Killed after step 5: the resumed run (remat on too: the same update) ends alike.
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "several", killed)
    for path in (killed / "checkpoints").glob("ckpt-7*"):
        path.unlink()
    resumed = _fine_tune(task, str(killed), steps_per_execution=4, remat=True)
    assert resumed.resumed_from.endswith("ckpt-5")
    for a, b in zip(several.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("option, value, message", [
    ("jit_compile", "yes", "jit_compile must be None .*, True or False"),
    ("jit_compile", 1, "jit_compile must be None .*, True or False"),
    ("remat", True, "remat cannot recompute a unit with drop path"),
    ("steps_per_execution", 0, "steps_per_execution must be"),
    ("remat", 1, "remat must be True or False"),
])
def test_speed_settings_are_checked_before_anything_is_written(task, tmp_path, option, value,
                                                               message):
    with pytest.raises(ValueError, match=message):
        _fine_tune(task, str(tmp_path / "run"), drop_path_rate=0.1 if option == "remat" else 0,
                   **{option: value})
    assert not (tmp_path / "run").exists()


def test_the_speed_flags_reach_the_run_settings():
    from absl import flags

    from bit_keras.cli import run_fine_tune, shared_flags
    def settings(*argv):
        fv = flags.FlagValues()
        run_fine_tune.define_flags(fv)
        fv(["fine_tune", "--logdir=runs", "--name=a", *argv])
        chosen = shared_flags.run_settings(fv)
        return chosen["jit_compile"], chosen["steps_per_execution"], chosen["remat"]

    assert settings("--jit_compile=false", "--steps_per_execution=4", "--remat") == \
        (False, 4, True)
    assert settings("--jit_compile=true") == (True, 1, False)
    assert settings() == (None, 1, False)  # auto: XLA where a GPU or TPU is visible


def test_a_tpu_strategy_without_a_tpu_says_what_would_be_accepted():
    with pytest.raises(ValueError, match="strategy='tpu' found no TPU: run it on a TPU VM .* "
                       "make_strategy\\('tpu', tpu=<name or grpc:// address>\\)"):
        training.make_strategy("tpu")
