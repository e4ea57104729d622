"""bit_keras turns on TensorFlow's oneDNN CPU kernels when imported first, and says so."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = ("import {first}, {second}; from bit_keras import runtime; "
         "print('onednn', runtime.onednn_enabled())")


def _probe(first, second, **env):
    environment = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    environment.update(env, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", PROBE.format(first=first, second=second)],
                          capture_output=True, text=True, env=environment, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("env,want", [({}, "True"), ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "False")])
def test_import_turns_onednn_on_unless_the_user_said_no(env, want):
    assert _probe("bit_keras", "tensorflow", **env) == f"onednn {want}"


def test_hint_when_tensorflow_came_first(caplog):
    # TensorFlow imported before bit_keras keeps its own choice; on a CPU where that choice
    # is "off", training logs how to turn it on. (On AVX-512 machines TF turns it on itself.)
    state = _probe("tensorflow", "bit_keras")
    from bit_keras import runtime
    if state == "onednn False":
        import unittest.mock
        with unittest.mock.patch.object(runtime, "onednn_enabled", return_value=False):
            with caplog.at_level("WARNING"):
                runtime.log_cpu_speed_hint()
        assert "TF_ENABLE_ONEDNN_OPTS=1" in caplog.text
    else:
        assert state == "onednn True"


@pytest.mark.parametrize("precision,has_bf16,warned", [
    ("bfloat16", False, True), ("bfloat16", True, False), ("float32", False, False)])
def test_bfloat16_training_on_a_cpu_without_it_is_flagged(caplog, precision, has_bf16, warned):
    import unittest.mock

    from bit_keras import runtime
    with unittest.mock.patch.object(runtime, "onednn_enabled", return_value=True), \
            unittest.mock.patch.object(runtime, "cpu_has_bfloat16", return_value=has_bf16), \
            caplog.at_level("WARNING"):
        runtime.log_cpu_speed_hint(precision)
    assert ("10x slower" in caplog.text) == warned


def test_numerics_hold_with_onednn_on():
    # The rest of the suite runs on TensorFlow's own kernels (conftest); users get oneDNN.
    # Layer and network parity with the float64 NumPy reference, and the GroupNorm gradients,
    # must hold with it too.
    environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    tests = [os.path.join(ROOT, "tests", "test_numerics.py"),
             os.path.join(ROOT, "tests", "test_runtime.py") + "::test_onednn_is_on_here"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                           *tests],
                          capture_output=True, text=True, env=environment, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_onednn_is_on_here():
    # Run by test_numerics_hold_with_onednn_on with TF_ENABLE_ONEDNN_OPTS=1; in the main
    # suite it checks the conftest setting took effect.
    from bit_keras import runtime
    want = os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"
    assert runtime.onednn_enabled() in (want, None)
