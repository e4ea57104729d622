"""One BiT on TensorFlow, JAX and PyTorch, beside timm: inference and a fine-tuning step.

    python -m benchmarks.backends [--tiny] [--output=backends.json]

R50x1 (random weights, shared through one official .npz) on each Keras backend, each in a
process of its own (``KERAS_BACKEND`` is read once): ``predict_on_batch`` at 224 px, batch 1
and 8 (a jitted function on JAX, a ``tf.function`` on TensorFlow, eager PyTorch under
``no_grad``) and ``train_on_batch`` (SGD with momentum, softmax cross-entropy) at 128 px,
batch 16; timm's BiT with the same weights in the PyTorch process (its faster memory
layout). Each route's logits are compared with TensorFlow's before its speed is reported.
About 5 minutes on 2 cores; run it on a quiet machine.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from absl import app, flags

BACKENDS = ("tensorflow", "jax", "torch")
CONFIGS = {
    "full": dict(spec=dict(units=(3, 4, 6, 3), width=1, base_filters=64, groups=32,
                           num_classes=1000), resolution=224, batches=(1, 8),
                 train_resolution=128, train_batch=16, reps=3),
    "tiny": dict(spec=dict(units=(1, 1, 1, 1), width=1, base_filters=16, groups=8,
                           num_classes=5), resolution=32, batches=(2,),
                 train_resolution=32, train_batch=4, reps=1),
}

flags.DEFINE_bool("tiny", False, "a tiny BiT at 32 px, one repetition: a smoke test")
flags.DEFINE_string("output", "backends.json", "the JSON file to write")
flags.DEFINE_string("child", None, "internal: run one backend's measurements (a JSON job)")


def measure(job):
    """In a child process whose KERAS_BACKEND is set: times this backend (and timm)."""
    config = CONFIGS[job["config"]]
    backend = os.environ["KERAS_BACKEND"]
    if backend == "torch":
        from benchmarks import peers
        peers.preload()  # timm before anything imports TensorFlow
    import keras

    import bit_keras
    from benchmarks import timing
    spec, rng = config["spec"], np.random.default_rng(0)
    if backend == "tensorflow":
        keras.utils.set_random_seed(0)
        model = bit_keras.resnet_v2(**spec)
        head = model.get_layer("head")  # a random head: a zero one gives zero logits
        head.set_weights([rng.normal(0, 0.05, w.shape).astype("float32")
                          for w in head.get_weights()])
        bit_keras.save_npz(model, job["weights"])
    else:
        model = bit_keras.resnet_v2(**spec)
        bit_keras.load_weights(model, job["weights"])
    side = config["resolution"]
    probe = np.random.default_rng(1).random((max(config["batches"]), side, side, 3),
                                            np.float32)
    out = {"logits": keras.ops.convert_to_numpy(model.predict_on_batch(probe)).tolist()}
    candidates = {f"{backend}/infer_b{b}": (lambda x: lambda: model.predict_on_batch(x))(
        probe[:b]) for b in config["batches"]}
    side, batch = config["train_resolution"], config["train_batch"]
    images = rng.random((batch, side, side, 3), np.float32)
    labels = np.eye(spec["num_classes"], dtype=np.float32)[np.arange(batch) % spec["num_classes"]]
    model.compile(keras.optimizers.SGD(0.003, momentum=0.9),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    candidates[f"{backend}/step_b{batch}"] = lambda: model.train_on_batch(images, labels)
    if backend == "torch" and peers.available():
        arch = dict(spec)
        # "timm/<layout>/float32" and "timm/step_<layout>/float32" -> "timm/<layout>/..."
        for name, make in peers.inference_routes(model, arch, bfloat16=False).items():
            route = name.rsplit("/", 1)[0]
            out[f"{route}/logits"] = np.asarray(make(probe)()).tolist()
            for b in config["batches"]:
                candidates[f"{route}/infer_b{b}"] = make(probe[:b])
        for name, step in peers.train_steps(model, arch, images, labels).items():
            candidates[f"timm/{name.split('/')[1][len('step_'):]}/step_b{batch}"] = step
        out["timm"] = peers.versions()
    out["times"] = timing.interleaved(candidates, reps=config["reps"], warmup=1)
    with open(job["out"], "w") as f:
        json.dump(out, f)


def run(tiny=False, output=None):
    """Runs every backend's child and returns the rows (images/s) and parity."""
    config_name = "tiny" if tiny else "full"
    rows, parity, results = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="bit_keras_backends_") as work:
        weights = os.path.join(work, "weights.npz")
        for backend in BACKENDS:  # tensorflow first: it writes the shared weights
            job = {"config": config_name, "weights": weights,
                   "out": os.path.join(work, f"{backend}.json")}
            path = os.path.join(work, f"{backend}_job.json")
            with open(path, "w") as f:
                json.dump(job, f)
            env = {**os.environ, "KERAS_BACKEND": backend}
            done = subprocess.run([sys.executable, "-m", "benchmarks.backends",
                                   f"--child={path}"], env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"the {backend} child failed: {done.stderr[-3000:]}")
            with open(job["out"]) as f:
                results[backend] = json.load(f)
    reference = np.asarray(results["tensorflow"]["logits"], np.float64)
    for backend, result in results.items():
        for key, value in result.items():
            if key == "logits" or key.endswith("/logits"):
                name = backend if key == "logits" else key[: -len("/logits")]
                got = np.asarray(value, np.float64)
                parity[name] = float(np.max(np.abs(got - reference)) / np.max(np.abs(reference)))
        for name, m in result["times"].items():
            route, what = name.rsplit("/", 1)
            batch = int(what.rsplit("_b", 1)[1])
            rows.append({"route": route, "what": what.split("_b")[0], "batch": batch,
                         "images_per_s": batch / m["seconds"], "seconds": m["seconds"],
                         "wall": m["wall"]})
    payload = {"config": config_name, "rows": rows, "parity": parity,
               "timm": results["torch"].get("timm")}
    if output:
        from benchmarks import report
        report.write_json(output, payload)
    return payload


def table(payload):
    """A markdown table: one row per route, images/s per measurement."""
    columns = sorted({(r["what"], r["batch"]) for r in payload["rows"]})
    routes = list(dict.fromkeys(r["route"] for r in payload["rows"]))
    cell = {(r["route"], r["what"], r["batch"]): r["images_per_s"] for r in payload["rows"]}
    lines = ["| route | " + " | ".join(f"{w} b{b} img/s" for w, b in columns) + " | parity |",
             "|---|" + "---:|" * (len(columns) + 1)]
    for route in routes:
        values = [f"{cell[(route, w, b)]:.2f}" if (route, w, b) in cell else ""
                  for w, b in columns]
        err = payload["parity"].get(route)
        lines.append(f"| {route} | " + " | ".join(values)
                     + f" | {'' if err is None else f'{err:.1e}'} |")
    return "\n".join(lines)


def main(argv):
    del argv
    fv = flags.FLAGS
    if fv.child:
        with open(fv.child) as f:
            measure(json.load(f))
        return
    payload = run(fv.tiny, fv.output)
    print(table(payload))


if __name__ == "__main__":
    app.run(main)
