"""Accelerator speed under a real MirroredStrategy (issue 28): two logical CPU devices in a
fresh process, evaluation split across the replicas and the XLA step made in each
replica's trace (its own file, so that pytest-xdist runs it beside tests/test_accelerator.py).
"""

import json

import fine_tune_support as support
import pytest

MIRRORED_EVALUATION = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np, bit_keras
from bit_keras import training
from conftest import TINY
keras.utils.set_random_seed(0)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = bit_keras.resnet_v2(num_classes=3, **TINY)
rng = np.random.default_rng(0)
images = rng.uniform(0, 1, (7, 32, 32, 3)).astype(np.float32)
labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 7)]
model.get_layer("head").kernel.assign(rng.normal(0, 0.5, model.get_layer("head").kernel.shape))
dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)  # 4 then 3: 2+2, 2+1
ran_on = set()
original = model.call
def call(x, *args, **kwargs):
    context = tf.distribute.get_replica_context()
    ran_on.add(tf.get_static_value(context.replica_id_in_sync_group).item())
    return original(x, *args, **kwargs)
model.call = call
out = {}
for xla in (False, True):
    step = training.make_eval_step(model, strategy=strategy, jit_compile=xla)
    out[f"mirrored_{xla}"] = training.step.evaluate(step, dataset, strategy)
out["replicas"] = sorted(ran_on)
model.call = original
out["one_device"] = training.step.evaluate(training.make_eval_step(model), dataset)
# One update under the strategy (4 images per replica, 2 micro-batches), plain and XLA.
batches = tf.data.Dataset.from_tensors((np.concatenate([images, images[:1]]),
                                        np.concatenate([labels, labels[:1]])))
updates = {}
for xla in (False, True):
    with strategy.scope():
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        optimizer.build(copy.trainable_variables)  # as the loop does
    step = training.make_train_step(copy, optimizer, strategy, 8, batch_split=2,
                                    jit_compile=xla)
    data = iter(strategy.distribute_datasets_from_function(
        lambda ctx: batches.unbatch().batch(ctx.get_per_replica_batch_size(8)).repeat()))
    out[f"train_loss_{xla}"] = float(step(data))
    updates[xla] = [w - w0 for w, w0 in zip(copy.get_weights(), model.get_weights())]
out["update_error"] = max(float(np.abs(a - b).max() / (np.abs(a).max() + 1e-30))
                          for a, b in zip(updates[False], updates[True]) if np.abs(a).max())
print(json.dumps(out))
"""


def test_evaluation_runs_inside_the_strategy_on_every_replica():
    process = support.python(MIRRORED_EVALUATION)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["replicas"] == [0, 1]  # each replica scores its share
    for xla in (False, True):
        assert result[f"mirrored_{xla}"] == pytest.approx(result["one_device"], rel=1e-5)
    # Training under the strategy: the XLA step (made in each replica's trace) makes the
    # plain step's update.
    assert result["train_loss_True"] == pytest.approx(result["train_loss_False"], rel=1e-5)
    assert result["update_error"] < 1e-3
