"""Every example script runs, offline, in its --tiny mode, so none of them rots."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
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


@pytest.mark.parametrize("script", ["fine_tune_folder.py", "export_and_serve.py",
                                    "fewshot_checkpoint.py", "pretrain_own_data.py"])
def test_every_example_has_a_usage_docstring(script):
    text = open(os.path.join(ROOT, "examples", script)).read()
    assert text.startswith('"""') and "--tiny" in text.split('"""')[1]
