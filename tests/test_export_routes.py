"""Every route that writes a BiT model to disk writes a portable one (issue 23).

A model whose compiled kernels have run (eager calls, ``fit``) is written by each route that
Keras, TensorFlow and bit_keras document; a child process that cannot import bit_keras
(tests/routes_child.py) runs each artefact with its own runtime at two input sizes, and
the outputs must match the Keras model's.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import bit_keras
from bit_keras.layers import fused

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["cat", "dog", "emu", "fox", "gnu"]


def _tiny_model(rng):
    model = bit_keras.resnet_v2((1, 1, 1, 1), 1, num_classes=5, base_filters=16, groups=8)
    kernel, bias = model.get_layer("head").get_weights()
    model.get_layer("head").set_weights([rng.normal(0, 0.5, kernel.shape).astype(np.float32),
                                         rng.normal(0, 0.5, bias.shape).astype(np.float32)])
    return model


def _write_routes(model, folder):
    """Writes the model by every route; returns {name: how the child runs it}."""
    from ai_edge_litert import interpreter  # noqa: F401  (the runtime the docs recommend)
    f = str(folder)
    routes = {}
    bit_keras.export(model, f"{f}/bk_clf", kind="classifier", labels=NAMES)
    routes["bit_keras.export classifier"] = {"runtime": "bit_keras.export",
                                            "path": f"{f}/bk_clf"}
    bit_keras.export(model, f"{f}/bk_fv", kind="feature_vector")
    routes["bit_keras.export feature_vector"] = {"runtime": "bit_keras.export",
                                                "path": f"{f}/bk_fv", "features": True}
    model.export(f"{f}/keras_sm", format="tf_saved_model", verbose=False)
    routes["Model.export tf_saved_model"] = {"runtime": "saved_model", "path": f"{f}/keras_sm",
                                             "endpoint": "serve"}
    tf.saved_model.save(model, f"{f}/tf_save")
    routes["tf.saved_model.save"] = {"runtime": "saved_model", "path": f"{f}/tf_save",
                                     "endpoint": "serving_default"}
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda images: model(images, training=False),
                         input_signature=[keras.InputSpec(shape=(None, None, None, 3),
                                                         dtype="float32")])
    archive.write_out(f"{f}/archive", verbose=False)
    routes["ExportArchive"] = {"runtime": "saved_model", "path": f"{f}/archive",
                               "endpoint": "serve"}
    converter = tf.lite.TFLiteConverter.from_saved_model(f"{f}/keras_sm",
                                                         signature_keys=["serve"])
    with open(f"{f}/converter.tflite", "wb") as out:
        out.write(converter.convert())
    routes["TFLiteConverter"] = {"runtime": "litert", "path": f"{f}/converter.tflite"}
    bit_keras.export_tflite(model, f"{f}/bk.tflite", kind="classifier")
    routes["bit_keras.export_tflite"] = {"runtime": "litert", "path": f"{f}/bk.tflite"}
    bit_keras.export_onnx(model, f"{f}/bk_clf.onnx", kind="classifier")
    routes["bit_keras.export_onnx classifier"] = {"runtime": "onnx", "path": f"{f}/bk_clf.onnx",
                                                  "output": "logits"}
    bit_keras.export_onnx(model, f"{f}/bk_fv.onnx", kind="feature_vector")
    routes["bit_keras.export_onnx feature_vector"] = {
        "runtime": "onnx", "path": f"{f}/bk_fv.onnx", "output": "feature_vector",
        "features": True}
    model.export(f"{f}/keras.onnx", format="onnx", verbose=False)
    routes["Model.export onnx"] = {"runtime": "onnx", "path": f"{f}/keras.onnx"}
    model.export(f"{f}/keras_ov.xml", format="openvino", verbose=False)
    routes["Model.export openvino"] = {"runtime": "openvino", "path": f"{f}/keras_ov.xml"}
    # OpenVINO converts bit_keras' SavedModels, class names (top_labels) included.
    routes["openvino.convert_model classifier"] = {"runtime": "openvino", "path": f"{f}/bk_clf",
                                                   "output": "logits"}
    routes["openvino.convert_model feature_vector"] = {
        "runtime": "openvino", "path": f"{f}/bk_fv", "output": "feature_vector",
        "features": True}
    # A .keras file, loaded later (its kernels run again) and exported then.
    model.save(f"{f}/model.keras")
    reloaded = keras.saving.load_model(f"{f}/model.keras")
    reloaded(np.zeros((1, 32, 32, 3), np.float32))
    reloaded.export(f"{f}/from_keras_file", format="tf_saved_model", verbose=False)
    routes[".keras file, then Model.export"] = {"runtime": "saved_model",
                                                "path": f"{f}/from_keras_file",
                                                "endpoint": "serve"}
    return routes


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("routes")
    rng = np.random.default_rng(0)
    model = _tiny_model(rng)
    inputs = {"b2_32x32": rng.random((2, 32, 32, 3), np.float32),
              "b3_48x40": rng.random((3, 48, 40, 3), np.float32)}
    model(inputs["b2_32x32"])  # eagerly: the compiled kernels run (when they can be built)
    model.compile(keras.optimizers.SGD(0.01), keras.losses.MeanSquaredError())
    model.fit(inputs["b2_32x32"], rng.normal(size=(2, 5)).astype(np.float32), verbose=0)
    logits = {k: np.asarray(model(x)) for k, x in inputs.items()}
    features_model = keras.Model(model.input, model.get_layer("pre_logits").output)
    features = {k: np.asarray(features_model(x)) for k, x in inputs.items()}
    routes = _write_routes(model, folder)
    np.savez(folder / "inputs.npz", **inputs)
    job = {"inputs": str(folder / "inputs.npz"), "out": str(folder / "out.npz"),
           "routes": routes}
    (folder / "job.json").write_text(json.dumps(job))
    done = subprocess.run([sys.executable, os.path.join(HERE, "routes_child.py"),
                           str(folder / "job.json")], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return routes, logits, features, dict(np.load(folder / "out.npz")), folder


def test_the_kernels_ran_before_the_models_were_written(written):
    if fused.library() is None:
        pytest.fail(f"the compiled kernels are unavailable: {fused.status()}")
    assert fused.status() == "on"


def test_no_artefact_names_a_compiled_op(written):
    *_, folder = written
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert b"BitKeras" not in f.read(), os.path.join(root, name)


@pytest.mark.parametrize("route", [
    "bit_keras.export classifier", "bit_keras.export feature_vector",
    "Model.export tf_saved_model", "tf.saved_model.save", "ExportArchive", "TFLiteConverter",
    "bit_keras.export_tflite", "bit_keras.export_onnx classifier",
    "bit_keras.export_onnx feature_vector", "Model.export onnx", "Model.export openvino",
    "openvino.convert_model classifier", "openvino.convert_model feature_vector",
    ".keras file, then Model.export"])
def test_each_route_loads_without_bit_keras_and_matches_keras(written, route):
    routes, logits, features, out, _ = written
    assert bool(out["bit_keras_blocked"])
    want = features if routes[route].get("features") else logits
    for key, expected in want.items():
        got = out[f"{route}/{key}"]
        assert got.shape == expected.shape, key
        scale = np.max(np.abs(expected))
        assert np.max(np.abs(got - expected)) <= 1e-5 * scale + 1e-6, key


def test_the_library_s_own_steps_take_the_kernels_and_plain_traces_do_not():
    if fused.library() is None:
        pytest.fail(f"the compiled kernels are unavailable: {fused.status()}")
    model = _tiny_model(np.random.default_rng(1))
    x = tf.zeros((1, 32, 32, 3))

    def op_types(fn):
        graph = tf.function(fn).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}

    assert "BitKerasGroupNorm" in op_types(model.predict_step)
    assert not {t for t in op_types(lambda x: model(x)) if t.startswith("BitKeras")}
