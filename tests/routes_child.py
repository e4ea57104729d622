"""The child process of ``test_export_routes.py``: runs every artefact where bit_keras is absent.

Run as ``python tests/routes_child.py JOB.json`` (pytest collects nothing here). It imports
TensorFlow, LiteRT, ONNX Runtime and OpenVINO only, blocks bit_keras first, and writes each
route's outputs on each input to ``JOB["out"]`` (an .npz) for the parent to compare.
"""

import sys

if __name__ == "__main__":  # bit_keras is installed everywhere: block it before anything.
    sys.modules["bit_keras"] = None

import json  # noqa: E402

import numpy as np  # noqa: E402


def saved_model(path, endpoint):
    import tensorflow as tf
    obj = tf.saved_model.load(path)
    if endpoint in getattr(obj, "signatures", {}):
        fn = obj.signatures[endpoint]
        return lambda x: next(iter(v for k, v in sorted(fn(tf.constant(x)).items())
                                   if k in ("output_0", "logits", "feature_vector")))
    return lambda x: getattr(obj, endpoint)(tf.constant(x))


def litert(path):
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path)

    def run(x):
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return run


def onnx_runtime(path, output):
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if output is not None:
        assert outputs == [output], outputs
    return lambda x: session.run(None, {name: x})[0]


def openvino(path, output):
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path) if path.endswith(".xml") else ov.convert_model(path)
    # The CPU plugin may pick bfloat16 on its own on CPUs with AMX/AVX512-BF16.
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    port = compiled.output(output) if output else compiled.output(0)
    return lambda x: compiled(x)[port]


def main(job_path):
    with open(job_path) as f:
        job = json.load(f)
    with np.load(job["inputs"], allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files}
    runners = {
        "bit_keras.export": lambda r: saved_model(r["path"], "serving_default"),
        "saved_model": lambda r: saved_model(r["path"], r["endpoint"]),
        "litert": lambda r: litert(r["path"]),
        "onnx": lambda r: onnx_runtime(r["path"], r.get("output")),
        "openvino": lambda r: openvino(r["path"], r.get("output")),
    }
    arrays = {}
    for name, route in job["routes"].items():
        run = runners[route["runtime"]](route)
        for key, x in inputs.items():
            arrays[f"{name}/{key}"] = np.asarray(run(x), np.float32)
    arrays["bit_keras_blocked"] = np.asarray("bit_keras" in sys.modules
                                             and sys.modules["bit_keras"] is None)
    np.savez(job["out"], **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
