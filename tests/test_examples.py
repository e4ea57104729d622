"""Every example script runs, offline, in its --tiny mode, so none of them rots."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, timeout=600, env=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args],
                          cwd=os.path.join(ROOT, "examples"), env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_fine_tune_folder():
    out = run("fine_tune_folder.py", "--tiny")
    assert "final step 6" in out and "weights.npz" in out


def test_export_and_serve():
    out = run("export_and_serve.py", "--tiny")
    assert "hub.KerasLayer: (2, 2048)" in out
    assert "keras.layers.TFSMLayer: (2, 2048)" in out
    diff = float(out.rsplit("max |diff| vs Keras:", 1)[1])
    assert diff < 1e-4


def test_fewshot_checkpoint():
    out = run("fewshot_checkpoint.py", "--tiny")
    assert "| 1 |" in out and "| 5 |" in out


def test_pretrain_own_data():
    out = run("pretrain_own_data.py", "--tiny")
    assert "same logits: True" in out


def test_segment_shapes_keras_hub():
    # keras-hub's DeepLabV3 on a BiT preset's pyramid: the loss falls on generated shapes.
    pytest.importorskip("keras_hub")
    out = run("segment_shapes_keras_hub.py", "--tiny")
    first, last = map(float, out.split("loss first epoch ", 1)[1].split()[::3][:2])
    assert last < 0.5 * first, out[-2000:]


@pytest.mark.parametrize("script", ["fine_tune_folder.py", "export_and_serve.py",
                                    "fewshot_checkpoint.py", "pretrain_own_data.py",
                                    "segment_shapes_keras_hub.py"])
def test_every_example_has_a_usage_docstring(script):
    text = open(os.path.join(ROOT, "examples", script)).read()
    assert text.startswith('"""') and "--tiny" in text.split('"""')[1]


def test_fine_tune_keras_fit_on_jax_and_torch():
    # The same HyperRule stream, head and schedule through Keras' fit on PyTorch and on JAX
    # (sharding each batch over two host devices): the same mean loss to float rounding.
    losses = {}
    for backend, args, extra in (("torch", (), {}),
                                 ("jax", ("--data_parallel",),
                                  {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})):
        out = run("fine_tune_keras_fit.py", "--tiny", *args,
                  env={"KERAS_BACKEND": backend, **extra})
        assert f"backend {backend}:" in out
        losses[backend] = float(out.split("mean loss ", 1)[1].split()[0])
    assert abs(losses["jax"] - losses["torch"]) < 1e-3, losses
