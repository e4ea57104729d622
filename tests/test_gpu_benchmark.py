"""benchmarks.gpu, the GPU benchmark, in its tiny mode where TensorFlow cannot be imported.

The GPU machine has JAX, PyTorch and timm but no TensorFlow, so the benchmark runs here with
a ``tensorflow`` package first on the path that raises on import: whatever it needs that
reaches for TensorFlow fails, as it would there.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import gpu  # noqa: E402  (numpy and absl only: Keras loads in run())


def without_tensorflow(tmp_path, backend="jax"):
    """An environment in which ``import tensorflow`` raises, with ``KERAS_BACKEND``."""
    package = tmp_path / "no_tensorflow" / "tensorflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'raise ImportError("TensorFlow is blocked here, as on the GPU machine")\n')
    # XLA's CPU compiler without its costlier LLVM passes: the smoke test compiles a dozen
    # small programs and runs each three times, so this halves it (65 to 35 s, 2 busy cores).
    fast = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    return {**os.environ, "KERAS_BACKEND": backend,
            "PYTHONPATH": os.pathsep.join([str(package.parent), ROOT]),
            "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {fast}".strip()}


@pytest.mark.slow  # 30-60 s: the benchmark smoke tests are slow (as benchmarks.backends')
def test_tiny_gpu_benchmark_runs_without_tensorflow(tmp_path):
    env = without_tensorflow(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env,
                             capture_output=True, text=True, check=False)
    assert blocked.returncode == 1 and "TensorFlow is blocked" in blocked.stderr
    output = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--tiny",
                           f"--output={output}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(output.read_text())
    assert not payload["tensorflow_imported"]
    assert payload["devices"]["jax_backend"] == "cpu" and payload["devices"]["jax"]
    timed = {(r["route"], r["what"], r["dtype"]) for r in payload["rows"]}
    for what in ("infer", "step"):
        for dtype in ("float32", "bfloat16"):
            assert ("bit_keras/jax", what, dtype) in timed
    # Parity came first: every route agrees with the reference within its dtype's tolerance.
    assert payload["refused"] == []
    assert payload["parity"]["bit_keras/jax/step32/float32"]["rel_error"] < 1e-4
    assert payload["parity"]["bit_keras/jax/infer32/bfloat16"]["rel_error"] > 0  # it rounds
    assert payload["parity"]["bit_keras/jax/infer32/float32"]["top1_agreement"] == 1.0
    assert all(p["rel_error"] <= p["tolerance"] for p in payload["parity"].values())
    assert all(r["images_per_s"] > 0 for r in payload["rows"])
    if any(r["route"].startswith("timm/") for r in payload["rows"]):
        assert ("timm/channels_last", "step", "bfloat16") in timed
    else:
        assert "not installed" in payload["timm"]
    assert "| inference 32 px b4 | float32 |" in done.stdout


def test_gpu_benchmark_refuses_another_keras_backend(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--tiny",
                           f"--output={tmp_path / 'gpu.json'}"], cwd=ROOT,
                          env=without_tensorflow(tmp_path, backend="torch"),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "runs on Keras' JAX backend" in done.stderr and "KERAS_BACKEND='torch'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "gpu.json").exists()


def test_parity_check_refuses_a_route_that_computes_another_function():
    rng = np.random.default_rng(0)
    want = rng.normal(size=(8, 10))
    rounded = want * (1 + rng.normal(scale=0.004, size=want.shape))  # bfloat16-like
    assert gpu.parity_check(rounded, want, "bfloat16")["within"]
    assert not gpu.parity_check(rounded, want, "float32")["within"]  # 4e-3 > 1e-4
    other = gpu.parity_check(rng.normal(size=(8, 10)), want, "bfloat16")  # other weights
    assert not other["within"] and other["rel_error"] > 1 and other["top1_agreement"] < 0.5
    loss = gpu.parity_check(2.3026, 2.3025851, "float32")
    assert loss["within"] and "top1_agreement" not in loss
