"""Upstream pre-training: the recipe's schedule, a short real run, both losses, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY
from fine_tune_support import python

import bit_keras
from bit_keras.training import pretraining


@pytest.mark.parametrize("recipe,examples,epochs,decays", [
    ("bit-s", 1_281_167, 90, (30, 60, 80)),      # ILSVRC-2012
    ("bit-m", 14_197_122, 90, (30, 60, 80)),     # ImageNet-21k
    ("bit-l", 300_000_000, 40, (10, 23, 30, 37)),  # JFT-300M
])
def test_full_scale_plans(recipe, examples, epochs, decays):
    plan = pretraining.upstream_plan(examples, 4096, recipe=recipe)
    per_epoch = examples / 4096
    assert plan.learning_rate == pytest.approx(0.03 * 4096 / 256)
    assert plan.steps == int(np.ceil(epochs * per_epoch))
    assert plan.supports[1:-1] == tuple(round(plan.steps * e / epochs) for e in decays)
    assert plan.supports[0] == 5000  # full-scale runs warm up over 5000 steps


def test_bit_s_plan_is_the_papers():
    plan = pretraining.upstream_plan(1_281_167, 4096, recipe="bit-s")
    assert plan.learning_rate == pytest.approx(0.48)
    assert plan.supports == (5000, 9384, 18767, 25023, 28151)  # 1,281,167 x 90 / 4096 = 28,150.6


def test_short_runs_warm_up_proportionally():
    plan = pretraining.upstream_plan(10_000, 100, steps=2815)
    assert plan.supports[0] == round(5000 * 2815 / 28_151) == 500
    assert plan.learning_rate == pytest.approx(0.03 * 100 / 256)
    assert plan.supports[1:-1] == (938, 1877, 2502)
    assert pretraining.upstream_plan(10_000, 100, steps=50, warmup_steps=0).supports[0] == 0


def test_schedule_follows_the_plan():
    plan = pretraining.upstream_plan(10_000, 256, steps=100, warmup_steps=10)
    sched = plan.schedule()
    assert plan.supports == (10, 33, 67, 89, 100)
    lr = [float(sched(s)) for s in (0, 5, 10, 34, 68, 90)]
    assert lr == pytest.approx([0.0, 0.015, 0.03, 0.003, 0.0003, 0.00003], rel=1e-5)


def test_plan_errors():
    with pytest.raises(ValueError, match=r"recipe must be one of \['bit-l', 'bit-m', 'bit-s'\]. Received: recipe='bit-x'"):
        pretraining.upstream_plan(100, 10, recipe="bit-x")
    with pytest.raises(ValueError, match="batch must be a positive int. Received: batch=0"):
        pretraining.upstream_plan(100, 0)
    with pytest.raises(ValueError, match="epochs must be a finite number > 0. Received: epochs=0"):
        pretraining.upstream_plan(100, 10, epochs=0)


def separable_task(n_per_class=24, classes=4, size=32, seed=0):
    """Each class is a colour; noise on top: learnable in a few dozen steps."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    images = rng.uniform(0, 0.5, (len(labels), size, size, 3))
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])[:classes]
    images += 0.5 * colours[labels][:, None, None, :]
    return (images * 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def softmax_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("pretrain") / "run")
    images, labels = separable_task()
    model = bit_keras.resnet_v2(num_classes=4, **TINY)
    result = bit_keras.pretrain(model, (images, labels), (images, labels), run_dir=run_dir,
                                batch=16, steps=30, base_lr=0.4, crop=32, eval_every=15,
                                checkpoint_every=10, progress=False)
    return result


def test_pretraining_learns_and_saves_official_npz(softmax_run, images):
    first, last = softmax_run.history[0], softmax_run.history[-1]
    assert softmax_run.step == 30
    assert last["loss"] < first["loss"]
    assert last["accuracy"] > 0.5  # chance is 0.25
    again = bit_keras.load_weights(bit_keras.resnet_v2(num_classes=4, **TINY), softmax_run.weights_path)
    np.testing.assert_array_equal(np.asarray(again(images)), np.asarray(softmax_run.model(images)))
    with np.load(softmax_run.weights_path, allow_pickle=False) as f:
        assert "resnet/block4/unit01/c/standardized_conv2d/kernel" in f.files


def test_multi_label_data_trains_with_sigmoid(tmp_path):
    images, labels = separable_task(n_per_class=12)
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    multi_hot = colours[labels]  # which of red, green, blue are present
    model = bit_keras.resnet_v2(num_classes=3, **TINY)
    result = bit_keras.pretrain(model, (images, multi_hot), batch=16, steps=8, base_lr=0.4,
                                crop=32, eval_every=1, progress=False, run_dir=str(tmp_path / "r"))
    losses = [r["loss"] for r in result.history]
    # The head starts at zero, so step 1 sees logits 0: the sigmoid loss summed over 3 labels
    # is 3 ln 2 (a softmax loss would be mean(#labels) * ln 3 = 1.37).
    assert losses[0] == pytest.approx(3 * np.log(2), rel=1e-5)
    assert losses[-1] < losses[0]


def test_single_label_data_trains_with_softmax(softmax_run):
    images, labels = separable_task()
    result = bit_keras.pretrain(bit_keras.resnet_v2(num_classes=4, **TINY), (images, labels),
                                batch=16, steps=1, crop=32, progress=False)
    assert result.history[0]["loss"] == pytest.approx(np.log(4), rel=1e-5)


SCRIPT = """
import sys, numpy as np, bit_keras
sys.path.insert(0, "tests")
from test_pretrain import run_resumable
run_resumable({run!r})
"""


def run_resumable(run_dir):
    import keras
    keras.utils.set_random_seed(0)
    images, labels = separable_task()
    model = bit_keras.resnet_v2(num_classes=4, **TINY)
    return bit_keras.pretrain(model, (images, labels), run_dir=run_dir, batch=16, steps=16,
                              base_lr=0.4, crop=32, checkpoint_every=4, progress=False)


def test_killed_pretraining_resumes_to_the_same_weights(tmp_path):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    run_resumable(straight)
    proc = python(SCRIPT.format(run=killed))
    deadline = time.time() + 300
    ckpt = os.path.join(killed, "checkpoints")
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(ckpt) and any(f.endswith(".index") for f in os.listdir(ckpt)):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before its first checkpoint"
    assert not os.path.exists(os.path.join(killed, "weights.npz"))
    assert python(SCRIPT.format(run=killed)).wait(timeout=300) == 0
    with np.load(os.path.join(straight, "weights.npz"), allow_pickle=False) as a, \
            np.load(os.path.join(killed, "weights.npz"), allow_pickle=False) as b:
        for k in a.files:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
    steps = [json.loads(line)["step"] for line in open(os.path.join(killed, "metrics.jsonl"))]
    assert steps[-1] == 16


def test_command_line_pretrains_and_reports(tmp_path):
    from fine_tune_support import write_task
    write_task(str(tmp_path / "data"), train_per_class=4, test_per_class=2)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    base = [sys.executable, "-m", "bit_keras", "pretrain", f"--logdir={tmp_path}", "--name=up",
            f"--dataset={tmp_path / 'data' / 'train'}", "--model=R14x1", "--batch=4",
            "--steps=2", "--crop=32"]
    ok = subprocess.run(base, capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["weights"].endswith("up/weights.npz")
    bad = subprocess.run(base + ["--recipe=bit-x"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode != 0 and "bit-x" in bad.stderr
    missing = subprocess.run(base[:4] + ["--dataset=/nowhere/at/all"], capture_output=True,
                             text=True, env=env, timeout=300)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].startswith("pretrain: error:")
