"""The fastest route to serve: one BiT, every runtime, side by side in one run.

    python -m benchmarks.serving_routes [--arch=R50x1] [--batches=1,8] [--reps=3]

R50x1 (random weights, float32) at 224 px through the Keras model (``predict_on_batch``,
the compiled kernels), ``bit_keras.export``'s SavedModel (plain and folded), LiteRT on
``export_tflite``'s file, ONNX Runtime on ``export_onnx``'s file, OpenVINO on the SavedModel
(float32 asked for), and timm's BiT where timm is installed; each checked against the
float32 reference before it is timed, then timed interleaved (``benchmarks.timing``).
Prints the table of docs/performance.md, "Fastest route to serve", and writes its JSON.
About 3 minutes on 2 cores; run it on a quiet machine.
"""

import tempfile

from absl import app, flags

from benchmarks import peers

peers.preload()  # before TensorFlow: timm imported after it crashes

import bit_keras  # noqa: E402,F401  before TensorFlow: oneDNN on, as for users
from benchmarks import inference, report  # noqa: E402

ARCHS = {"R50x1": dict(units=(3, 4, 6, 3), width=1, base_filters=64, groups=32,
                       num_classes=1000)}
ARCHS["tiny"] = dict(units=(1, 1, 1, 1), width=1, base_filters=16, groups=8, num_classes=5)

flags.DEFINE_enum("arch", "R50x1", sorted(ARCHS), "the architecture (tiny: a smoke test)")
flags.DEFINE_integer("resolution", 224, "the square image side")
flags.DEFINE_list("batches", ["1", "8"], "batch sizes")
flags.DEFINE_integer("reps", 3, "timed repetitions per route")
flags.DEFINE_string("output", "serving_routes.json", "the JSON file to write")


def run(arch="R50x1", resolution=224, batches=(1, 8), reps=3, output=None):
    """Times every serving route; returns ``{"rows": [...], "parity": {...}}``."""
    timm = peers.available()
    with tempfile.TemporaryDirectory(prefix="bit_keras_serving_") as workdir:
        rows, parity = inference.inference(ARCHS[arch], resolution, list(batches), workdir,
                                           reps=reps, dtypes=("float32",),
                                           routes=inference.ROUTES, timm=timm)
    payload = {"arch": arch, "resolution": resolution, "rows": rows, "parity": parity,
               "machine": report.machine(), "timm": peers.versions() if timm else None}
    if output:
        report.write_json(output, payload)
    return payload


def main(argv):
    del argv
    fv = flags.FLAGS
    payload = run(fv.arch, fv.resolution, [int(b) for b in fv.batches], fv.reps, fv.output)
    print(report.table(payload["rows"]))
    print("parity (max rel. error vs the float32 reference):")
    for name, err in payload["parity"].items():
        print(f"  {name}: {err:.1e}")


if __name__ == "__main__":
    app.run(main)
