"""fine_tune under real tf.distribute strategies, each in fresh processes.

MirroredStrategy over 2 logical CPU devices (bfloat16, batch_split 2: mixup and batch_split
work per replica), and MultiWorkerMirroredStrategy with 2 worker processes on localhost.
"""

import json
import socket

import fine_tune_support as support
import numpy as np
import pytest

SETTINGS = {**support.RUN, "steps": 8, "eval_every": 8, "checkpoint_every": 4}

MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, bit_keras
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
model = keras.saving.load_model(sys.argv[1])
result = bit_keras.fine_tune(model, sys.argv[2], run_dir=sys.argv[3], strategy=strategy,
                             precision="bfloat16", batch_split=2, mixup_alpha=0.1,
                             examples_per_class=8, examples_per_class_seed=1,
                             **json.loads(sys.argv[4]))
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "step": result.step,
                  "accuracy": result.accuracy, "loss": result.history[-1]["loss"]}))
"""

WORKER = """
import json, sys
import bit_keras
from bit_keras import training
strategy = training.make_strategy("multi_worker")  # first: collectives start with the process
import keras
model = keras.saving.load_model(sys.argv[1])
result = bit_keras.fine_tune(model, sys.argv[2], run_dir=sys.argv[3], strategy=strategy,
                             **json.loads(sys.argv[4]))
index = json.loads(__import__("os").environ["TF_CONFIG"])["task"]["index"]
bit_keras.save_npz(result.model, f"{sys.argv[3]}/../worker{index}.npz")
# The final weights scored on this process's one device, every test image once.
from bit_keras import data
from bit_keras.training import step as steps
test = data.eval_dataset(data.load_source(sys.argv[2], "test"), 5, json.loads(sys.argv[4])["crop"])
alone = steps.evaluate(steps.make_eval_step(result.model), test)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "step": result.step,
                  "accuracy": result.accuracy, "val_loss": result.history[-1]["val_loss"],
                  "alone": alone}))
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    support.write_task(str(root / "task"))
    support.write_tiny_model(str(root / "tiny.keras"))
    return root


def _args(workdir, run):
    return ["-", str(workdir / "tiny.keras"), str(workdir / "task"), str(workdir / run),
            json.dumps(SETTINGS)]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _result(process):
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_mirrored_two_logical_cpus_bfloat16_batch_split_few_shot(workdir):
    result = _result(support.python(_with_argv(MIRRORED, _args(workdir, "mirrored"))))
    assert result["replicas"] == 2 and result["step"] == SETTINGS["steps"]
    assert np.isfinite(result["loss"]) and result["accuracy"] > 0.5  # chance is 1/3
    assert (workdir / "mirrored" / "weights.npz").exists()
    run = json.loads((workdir / "mirrored" / "run.json").read_text())
    assert (run["num_examples"], run["examples_per_class"], run["mixup_alpha"]) == (24, 8, 0.1)


def test_multi_worker_two_processes_hold_the_same_weights(workdir):
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    workers = [support.python(_with_argv(WORKER, _args(workdir, "multi")), env={
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)]
    results = [_result(w) for w in workers]
    assert [r["replicas"] for r in results] == [2, 2]
    assert [r["step"] for r in results] == [SETTINGS["steps"]] * 2
    # Every worker evaluates its share inside the strategy; the sums are over both: what one
    # device scores alone.
    assert results[0]["accuracy"] is not None and results[0]["accuracy"] == results[1]["accuracy"]
    # (A dropped or doubled example would move the mean loss.)
    assert [results[0]["val_loss"], results[0]["accuracy"]] == pytest.approx(
        results[0]["alone"], rel=1e-5)
    first, second = (np.load(workdir / f"worker{i}.npz") for i in range(2))
    initial = support_initial_weights(workdir)
    assert sorted(first) == sorted(second)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert any(not np.array_equal(first[k], initial[k]) for k in initial)
    run_dir = workdir / "multi"
    assert (run_dir / "checkpoints" / "ckpt-8.index").exists()
    assert not (run_dir / ".worker1").exists()
    np.testing.assert_array_equal(np.load(run_dir / "weights.npz")["resnet/head/conv2d/kernel"],
                                  first["resnet/head/conv2d/kernel"])


def support_initial_weights(workdir):
    import keras

    import bit_keras
    return bit_keras.official_weights(keras.saving.load_model(str(workdir / "tiny.keras")))


def _with_argv(code, argv):
    return f"import sys; sys.argv = {argv!r}\n" + code
