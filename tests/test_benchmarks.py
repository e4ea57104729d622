"""The benchmark suite in its tiny mode (so that it cannot rot), and its independent pieces."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY

import bit_keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import flops, parity, reference, timing  # noqa: E402


def conv_flops_from_keras(model):
    """FLOPs read off a built Keras model's convolution and dense layers (independent count)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, bit_keras.layers.StandardizedConv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += 2 * h * w * kh * kw * cin * cout
        elif layer.name == "head":
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


@pytest.mark.parametrize("units,width,size", [((1, 1, 1, 1), 1, 64), ((3, 4, 6, 3), 1, 224),
                                              ((1, 2, 1, 1), 2, 97)])
def test_flop_count_matches_the_built_model(units, width, size):
    model = bit_keras.resnet_v2(units, width, num_classes=7, base_filters=16, groups=8,
                                input_shape=(size, size, 3))
    assert flops.bit_flops(units, width, size, 7, base_filters=16) == conv_flops_from_keras(model)


def test_r50x1_is_about_8_gflop_at_224():
    # 4.09 G multiply-adds, as ResNet-50 v1.5/v2 are usually quoted (4.1 GMACs).
    assert flops.bit_flops() == 8_178_368_512


def test_reference_computes_the_same_function(tiny_model, images):
    from benchmarks import models
    models.random_weights(tiny_model, seed=3)
    ref = reference.reference_bit(TINY["units"], TINY["width"], 5, TINY["base_filters"],
                                  TINY["groups"])
    assert reference.copy_weights(tiny_model, ref) > 10
    got, want = np.asarray(tiny_model(images)), np.asarray(ref(images))
    assert np.abs(want).max() > 0.1  # a random head: logits are not all zero
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_interleaved_timing_reports_medians():
    calls = []
    out = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             reps=3, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert out["a"]["reps"] == 3 and len(out["a"]["wall"]) == 3
    assert out["a"]["seconds"] == pytest.approx(float(np.median(out["a"]["wall"])), abs=1e-4)
    with pytest.raises(ValueError, match="reps must be >= 1"):
        timing.interleaved({"a": lambda: 1}, reps=0)


def test_bfloat16_parity_is_within_the_documented_tolerance():
    arch = dict(TINY, num_classes=5)
    result = parity.bfloat16_parity(arch, 32, images=8, batch=8)
    assert result["within_tolerance"], result
    assert 0 < result["rel_l2_error"] <= parity.BF16_MAX_REL_ERROR  # bfloat16 does differ


def test_tiny_benchmark_runs_end_to_end(tmp_path):
    output = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--tiny", f"--output={output}"],
                          cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**{k: v for k, v in os.environ.items()
                                  if k != "TF_ENABLE_ONEDNN_OPTS"},  # as users run it
                               "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(output.read_text())
    names = {(r["section"].split()[0], r["name"]) for r in payload["rows"]}
    for route in ("reference/keras/float32", "bit_keras/keras/float32", "bit_keras/keras/bfloat16",
                  "bit_keras/saved_model/float32", "bit_keras/tflite/float32"):
        assert ("inference", route) in names
    assert ("fine-tune", "bit_keras/step_split2/float32") in names
    # Every route computes what the reference computes before its speed is reported.
    assert all(err < 1e-4 for name, err in payload["parity"]["routes_vs_reference_float32"].items()
               if name.endswith("float32"))
    assert {(m["batch"], m["batch_split"]) for m in payload["memory"]} == {(4, 2)}
    assert all(m["peak_rss_mb"] > m["baseline_rss_mb"] > 100 for m in payload["memory"])
    assert len(payload["targets"]) == 5  # four speed targets and the memory one
    assert payload["machine"]["onednn"] in (True, None)  # the benchmark runs as bit_keras users do
    assert "x reference" in done.stdout and "target:" in done.stdout


def test_command_line_rejects_bad_sections():
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--tiny", "--sections=speed"],
                          cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 1
    assert "sections must be among" in done.stderr and "Traceback" not in done.stderr

