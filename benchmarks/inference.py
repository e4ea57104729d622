"""Inference images/second: the Keras model and every serving route, vs the reference.

The routes: the Keras model, ``bit_keras.export``'s SavedModel (plain and folded), LiteRT on
``export_tflite``'s file, ONNX Runtime on ``export_onnx``'s file and OpenVINO on the
SavedModel (float32 precision asked for), all reloaded as a server would.

Every model and artefact is built once; for each batch size the routes (and timm's, when it
is timed) run side by side (``timing.interleaved``). Before timing, each route's logits are
compared with the float32 reference's, so that no fast-but-wrong route counts.
"""

import os

import numpy as np

from benchmarks import flops, models, timing

ROUTES = ("keras", "saved_model", "saved_model_folded", "tflite", "onnx", "openvino")


def keras_route(model):
    """``model.predict_on_batch``: the Keras route a user takes (a ``tf.function`` inside)."""
    return lambda images: (lambda: model.predict_on_batch(images))


def saved_model_route(model, export_dir, fold_standardization=False):
    """The ``serving_default`` signature of ``bit_keras.export``'s SavedModel, reloaded."""
    import tensorflow as tf

    import bit_keras
    bit_keras.export(model, export_dir, kind="classifier", overwrite=True,
                     fold_standardization=fold_standardization)
    serving = tf.saved_model.load(export_dir).signatures["serving_default"]

    def make(images):
        tensor = tf.constant(images)
        return lambda: serving(images=tensor)["logits"]

    return make


def tflite_route(model, path):
    """LiteRT's ``Interpreter`` (``ai_edge_litert``, the maintained TFLite runtime) over
    ``bit_keras.export_tflite``'s file, one thread per core."""
    from ai_edge_litert.interpreter import Interpreter

    import bit_keras
    bit_keras.export_tflite(model, path, kind="classifier", overwrite=True)

    def make(images):
        interpreter = Interpreter(model_path=path, num_threads=timing.cores())
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, images.shape)
        interpreter.allocate_tensors()
        out = interpreter.get_output_details()[0]["index"]

        def run():
            interpreter.set_tensor(index, images)
            interpreter.invoke()
            return interpreter.get_tensor(out)

        return run

    return make


def onnx_route(model, path):
    """ONNX Runtime (CPU) over ``bit_keras.export_onnx``'s file, one thread per core."""
    import onnxruntime

    import bit_keras
    bit_keras.export_onnx(model, path, kind="classifier", overwrite=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = timing.cores()
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda images: (lambda: session.run(None, {"images": images})[0])


def openvino_route(model, export_dir):
    """OpenVINO's CPU plugin on ``bit_keras.export``'s SavedModel, at float32 precision."""
    import openvino

    import bit_keras
    bit_keras.export(model, export_dir, kind="classifier", overwrite=True, labels=False)
    core = openvino.Core()
    compiled = core.compile_model(openvino.convert_model(export_dir), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda images: (lambda: compiled(images)[compiled.output(0)])


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1e-30))


def build_routes(arch, workdir, dtypes=("float32", "bfloat16"), routes=ROUTES, timm=False):
    """dict ``"impl/route/dtype"`` -> factory(images) -> zero-argument callable.

    With ``timm``, also timm's BiT carrying the float32 model's weights (``peers``).
    """
    os.makedirs(workdir, exist_ok=True)
    factories = {}
    for dtype in dtypes:
        # One reference, float32: every ratio is to the plain float32 model.
        ours, ref = models.pair(arch, dtype, seed=0, include_reference=dtype == "float32")
        if ref is not None:
            factories[f"reference/keras/{dtype}"] = keras_route(ref)
        if "keras" in routes:
            factories[f"bit_keras/keras/{dtype}"] = keras_route(ours)
        if "saved_model" in routes and dtype == "float32":  # bfloat16 serving: same graph
            factories[f"bit_keras/saved_model/{dtype}"] = saved_model_route(
                ours, os.path.join(workdir, f"saved_model_{dtype}"))
        if "saved_model_folded" in routes and dtype == "float32":
            factories[f"bit_keras/saved_model_folded/{dtype}"] = saved_model_route(
                ours, os.path.join(workdir, f"saved_model_folded_{dtype}"), True)
        if "tflite" in routes and dtype == "float32":  # TFLite computes in float32 on CPU
            factories[f"bit_keras/tflite/{dtype}"] = tflite_route(
                ours, os.path.join(workdir, f"bit_{dtype}.tflite"))
        if "onnx" in routes and dtype == "float32":
            factories[f"bit_keras/onnx/{dtype}"] = onnx_route(
                ours, os.path.join(workdir, f"bit_{dtype}.onnx"))
        if "openvino" in routes and dtype == "float32":
            factories[f"bit_keras/openvino/{dtype}"] = openvino_route(
                ours, os.path.join(workdir, f"openvino_{dtype}"))
        if timm and dtype == "float32":
            from benchmarks import peers
            factories.update(peers.inference_routes(ours, arch, bfloat16="bfloat16" in dtypes))
    return factories


def inference(arch, resolution, batches, workdir, reps=3, warmup=1,
              dtypes=("float32", "bfloat16"), routes=ROUTES, timm=False):
    """Images/second of every route and dtype at each batch size, timed side by side.

    Args:
        arch: the architecture dict (see ``benchmarks.models.pair``).
        resolution: the square image side.
        batches: batch sizes to time.
        workdir: where the SavedModels and TFLite files are written.
        reps, warmup: timed and untimed repetitions per candidate.
        dtypes: ``"float32"`` (always measured: it is the reference) and maybe
            ``"bfloat16"`` (Keras routes only: the exported graph is the Keras one).
        routes: any of ``ROUTES``; the reference Keras model is always timed.
        timm: also time timm's BiT with the same weights (``benchmarks.peers``; it must have
            been preloaded), in both memory layouts and, with ``"bfloat16"``, under autocast.

    Returns:
        (rows, parity): table rows (``peak_pct`` is filled in by ``report.set_peak``), and
        each candidate's relative error against the float32 reference on the first batch.
    """
    factories = build_routes(arch, workdir, dtypes, routes, timm)
    probe = np.random.default_rng(1).uniform(
        0, 1, (max(batches), resolution, resolution, 3)).astype(np.float32)
    rows, parity = [], {}
    for batch in batches:
        candidates = {name: make(probe[:batch]) for name, make in factories.items()}
        if not parity:
            # The first call is also the warm-up (and the tracing) at this shape.
            outputs = {name: np.asarray(fn()) for name, fn in candidates.items()}
            parity = {name: rel_err(out, outputs["reference/keras/float32"])
                      for name, out in outputs.items()}
        measured = timing.interleaved(candidates, reps=reps, warmup=warmup)
        rows.extend(_rows(measured, batch, arch, resolution))
    return rows, parity


def _rows(measured, batch, arch, resolution):
    from benchmarks import peers
    per_image = flops.bit_flops(arch["units"], arch["width"], resolution, arch["num_classes"],
                                arch["base_filters"])
    ref = measured["reference/keras/float32"]
    timm = {d: peers.best(measured, "timm/", d) for d in ("float32", "bfloat16")}
    rows = []
    for name, m in measured.items():
        dtype = name.rsplit("/", 1)[1]
        row = {"section": f"inference {resolution}px", "name": name, "batch": batch,
               "images_per_s": batch / m["seconds"], "cpu_images_per_s": batch / m["cpu_seconds"],
               "flops_per_image": per_image, "dtype": dtype,
               "vs_reference": ref["seconds"] / m["seconds"],
               "seconds": m["seconds"], "wall": m["wall"], "reps": m["reps"]}
        for key, peer in (("vs_timm", timm.get(dtype)), ("vs_timm_float32", timm["float32"])):
            if peer:
                row[key] = measured[peer]["seconds"] / m["seconds"]
                row[key + "_peer"] = peer
        rows.append(row)
    return rows
