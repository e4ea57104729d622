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
                  "bit_keras/saved_model/float32", "bit_keras/tflite/float32",
                  "bit_keras/onnx/float32", "bit_keras/openvino/float32"):
        assert ("inference", route) in names
    assert ("fine-tune", "bit_keras/step_split2/float32") in names
    # Every route computes what the reference computes before its speed is reported.
    assert all(err < 1e-4 for name, err in payload["parity"]["routes_vs_reference_float32"].items()
               if name.endswith("float32"))
    assert {(m["batch"], m["batch_split"]) for m in payload["memory"]} == {(4, 2)}
    assert all(m["peak_rss_mb"] > m["baseline_rss_mb"] > 100 for m in payload["memory"])
    # Nine speed targets (four of them against timm: None without it) and the memory one.
    assert len(payload["targets"]) == 10
    assert payload["machine"]["onednn"] in (True, None)  # the benchmark runs as bit_keras users do
    assert "x reference" in done.stdout and "target:" in done.stdout
    # The ceiling is a measured matmul peak, and "% peak" is read against it.
    peak = payload["peak"]["measured"]["float32"]
    assert peak["n"] == 4096 and peak["gflops"] == pytest.approx(
        2 * 4096 ** 3 / min(peak["wall"]) / 1e9, rel=0.5)  # the better of two measurements
    keras = next(r for r in payload["rows"] if r["name"] == "bit_keras/keras/float32")
    assert keras["peak_pct"] == pytest.approx(
        100 * keras["images_per_s"] * keras["flops_per_image"] / (peak["gflops"] * 1e9))
    assert payload["group_norm_kernel"] == "on"  # the compiled GroupNorm is what was timed


def test_tiny_benchmark_times_timm_side_by_side(tmp_path):
    import importlib.util
    if importlib.util.find_spec("timm") is None:  # not imported here: after TF it crashes
        pytest.skip("timm is not installed (it is outside the test extras; issue 15)")
    output = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--tiny", "--peers=yes",
                           "--sections=inference,fine_tuning", f"--output={output}"],
                          cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(output.read_text())
    rows = {(r["section"].split()[0], r["name"]): r for r in payload["rows"]}
    for layout in ("nchw", "channels_last"):
        for dtype in ("float32", "bfloat16"):
            # The same weights: timm computes our function before it is timed.
            assert payload["parity"]["routes_vs_reference_float32"][
                f"timm/{layout}/{dtype}"] < (1e-4 if dtype == "float32" else 0.08)
        assert ("fine-tune", f"timm/step_{layout}/float32") in rows
    ours = rows[("inference", "bit_keras/keras/float32")]
    peer = rows[("inference", ours["vs_timm_peer"])]
    assert ours["vs_timm"] == pytest.approx(peer["seconds"] / ours["seconds"])
    assert peer["seconds"] == min(rows[("inference", f"timm/{layout}/float32")]["seconds"]
                                  for layout in ("nchw", "channels_last"))
    assert all(t["value"] is not None for t in payload["targets"] if "timm" in t["target"])


def test_theoretical_peak_reads_the_cpu_flags():
    intel = timing.theoretical_peak({"avx512f", "avx512_bf16", "amx_bf16"}, "GenuineIntel",
                                    2000.0, cores_=2)
    assert intel["float32"] == 2 * 2.0 * 16 * 2 * 2  # 2 cores, 2 GHz, 16 lanes, 2 FMA units
    assert intel["bfloat16"] == 2 * 2.0 * 1024 * 2   # AMX: 1024 multiply-adds per cycle
    zen4 = timing.theoretical_peak({"avx512f", "avx512_bf16", "avx2", "fma"}, "AuthenticAMD",
                                   2000.0, cores_=2)
    assert zen4["float32"] == intel["float32"] / 2 and zen4["bfloat16"] == zen4["float32"] * 2
    avx2 = timing.theoretical_peak({"avx2", "fma"}, "AuthenticAMD", 2000.0, cores_=1)
    assert avx2["float32"] == avx2["bfloat16"] == 1 * 2.0 * 8 * 2 * 2
    assert "emulated" in avx2["basis"]
    assert timing.theoretical_peak({"avx2"}, "", None) is None


def test_command_line_rejects_bad_sections():
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--tiny", "--sections=speed"],
                          cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 1
    assert "sections must be among" in done.stderr and "Traceback" not in done.stderr



@pytest.mark.slow  # three processes, a minute: parity per backend is tests/test_backends.py's
def test_backends_benchmark_runs_on_every_backend(tmp_path):
    # The same weights on TensorFlow, JAX and PyTorch (each in its own process): every route
    # is timed and computes TensorFlow's logits first.
    output = tmp_path / "backends.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.backends", "--tiny",
                           f"--output={output}"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(output.read_text())
    timed = {(r["route"], r["what"]) for r in payload["rows"]}
    for backend in ("tensorflow", "jax", "torch"):
        assert {(backend, "infer"), (backend, "step")} <= timed
        assert payload["parity"][backend] < 1e-5
    assert "| jax |" in done.stdout


@pytest.mark.slow  # a minute (two fresh processes for the memory); tests/test_accelerator.py
def test_accelerator_benchmark_compares_each_setting_with_the_plain_step():  # checks each
    from benchmarks import accelerator
    payload = accelerator.run(tiny=True)
    names = {(r["section"], r["name"]) for r in payload["rows"]}
    assert names == {("xla", "step/plain"), ("xla", "step/xla"), ("xla", "eval/plain"),
                     ("xla", "eval/xla"), ("steps_per_execution", "one_per_call"),
                     ("steps_per_execution", "4_per_call")}
    # The XLA step started from the plain step's weights and made its loss (checked in run).
    assert payload["xla_losses"]["xla"] == pytest.approx(payload["xla_losses"]["plain"],
                                                         rel=1e-4)
    assert [m["remat"] for m in payload["remat"]] == [False, True]
    assert all(m["peak_rss_mb"] > m["baseline_rss_mb"] > 0 for m in payload["remat"])
    assert "| remat |" in accelerator.table(payload)
