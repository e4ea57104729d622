"""The BiT benchmark: ``python -m benchmarks.run`` (full, 5-7 min) or ``--tiny`` (seconds).

Measures in one run, side by side with a plain reference implementation (``reference.py``)
and, when it is installed, timm's PyTorch BiT (``peers.py``; ``--peers``):
the machine's measured float32/bfloat16 matmul peaks and its theoretical ones, R50x1 inference at 224 (batch 1, 8, 32) through the
Keras model, the exported SavedModel (plain and with folded standardization) and TFLite,
fine-tuning steps at 128 (batch 16 and 32, with ``batch_split``), peak memory at batch 64
with and without ``batch_split=8``, and bfloat16-vs-float32 parity. Prints a table and
writes every number (with each repetition's time) as JSON.

TensorFlow's oneDNN CPU kernels are on, as ``import bit_keras`` sets them (the process's
setting is in the JSON's ``machine``); run with ``TF_ENABLE_ONEDNN_OPTS=0`` to measure
TensorFlow's own kernels instead.
"""

import os
import sys
import tempfile
import time

from absl import app, flags, logging

from benchmarks import peers

peers.preload()  # before TensorFlow: timm imported after it crashes

import bit_keras  # noqa: E402  before TensorFlow: it turns on oneDNN's kernels, as for users
from benchmarks import inference  # noqa: E402

R50X1 = dict(units=(3, 4, 6, 3), width=1, base_filters=64, groups=32, num_classes=1000)
# The registered tiny variant (R14, 16 base channels, 8 groups): its spec lives in bit_keras.
TINY_ARCH = dict(bit_keras.VARIANTS[bit_keras.models.variants.TINY].architecture_kwargs(),
                 num_classes=5)

CONFIGS = {
    "full": dict(arch=R50X1, inference_resolution=224, inference_batches=[1, 8, 32],
                 routes=list(inference.ROUTES),
                 train_resolution=128, train_batches=[16, 32],
                 train_dtypes=["float32", "bfloat16"], batch_split=8,
                 # bfloat16 training: batch 16 only, one timed step (10x slower without
                 # AVX512-BF16 or AMX).
                 other_dtype_batches=[16], other_dtype_reps=1,
                 memory_batch=64,
                 parity_images=32, reps=3),
    # Every code path once, as fast as possible (the export and the step traces dominate).
    "tiny": dict(arch=TINY_ARCH, inference_resolution=32, inference_batches=[2],
                 routes=["keras", "saved_model", "tflite", "onnx", "openvino"],
                 train_resolution=32,
                 train_batches=[4], train_dtypes=["float32"], batch_split=2,
                 other_dtype_batches=None, other_dtype_reps=None,
                 memory_batch=4,
                 parity_images=8, reps=1),
}
SECTIONS = ("inference", "fine_tuning", "memory", "parity")


def run(tiny=False, output="benchmark_results.json", reps=None, sections=SECTIONS,
        workdir=None, timm=None):
    """Runs the benchmark and writes its JSON; returns the payload.

    Args:
        tiny: a tiny BiT at 32x32 and one repetition: checks that everything runs, in
            well under a minute; the numbers mean nothing.
        output: the JSON file to write (written beside and renamed into place).
        reps: timed repetitions per candidate (after one warm-up); default 3 (1 when tiny).
        sections: any of ``SECTIONS``.
        workdir: where exported models go; a temporary directory by default.
        timm: time timm's BiT side by side: None (default) when it is installed, True to
            require it (an error if it cannot be timed), False never.

    Returns:
        dict with ``machine``, ``config``, ``peak``, ``timm``, ``rows`` (the table),
        ``memory``, ``parity``, ``targets`` and ``seconds``.

    Example:

    >>> payload = benchmarks.run.run(tiny=True, output="/tmp/bench.json")
    """
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"sections must be among {list(SECTIONS)}. Received: sections={list(sections)}")
    from benchmarks import memory, parity, report, targets, training
    config = dict(CONFIGS["tiny" if tiny else "full"])
    if reps is not None:
        config["reps"] = reps
    if timm and not peers.available():
        raise RuntimeError(f"timm cannot be timed: {peers.why_not()}")
    timm = peers.available() if timm is None else bool(timm)
    arch, start = config["arch"], time.time()
    dtypes, tries, machine = ("float32", "bfloat16"), 2 if tiny else 5, report.machine()
    payload = {"machine": machine, "config": config, "rows": [], "memory": [],
               "parity": {}, "warmup": 1, "peak": report.peaks(dtypes, machine, tries),
               "timm": peers.versions() if timm else peers.why_not(),
               "group_norm_kernel": None}
    with tempfile.TemporaryDirectory(prefix="bit_bench_") as tmp:
        if "inference" in sections:
            rows, route_parity = inference.inference(
                arch, config["inference_resolution"], config["inference_batches"],
                workdir or tmp, reps=config["reps"], routes=config["routes"], timm=timm)
            payload["rows"] += rows
            payload["parity"]["routes_vs_reference_float32"] = route_parity
            _progress(payload, start)
        if "fine_tuning" in sections:
            payload["rows"] += training.fine_tuning(
                arch, config["train_resolution"], config["train_batches"], reps=config["reps"],
                dtypes=config["train_dtypes"], batch_split=config["batch_split"],
                other_dtype_batches=config["other_dtype_batches"],
                other_dtype_reps=config["other_dtype_reps"], timm=timm)
            _progress(payload, start)
    if "memory" in sections:
        big, split = config["memory_batch"], config["batch_split"]
        # (batch, batch_split): the big batch whole and split, and the micro-batch alone.
        runs = [(big, split)] if tiny else [(big, 1), (big, split), (big // split, 1)]
        for batch, micro in runs:
            payload["memory"].append(memory.in_subprocess(
                arch, config["train_resolution"], batch, micro))
    if "parity" in sections:
        payload["parity"]["bfloat16"] = parity.bfloat16_parity(
            arch, config["inference_resolution"], images=config["parity_images"])
    payload["peak"] = report.merge_peaks(payload["peak"], report.peaks(dtypes, machine, tries))
    report.set_peak(payload["rows"], payload["peak"])
    payload["group_norm_kernel"] = bit_keras.layers.fused.status()
    payload["targets"] = targets.check(payload)
    payload["seconds"] = time.time() - start
    report.write_json(output, payload)
    print(report.summary(payload))
    return payload


def _progress(payload, start):
    from benchmarks import report
    rows = report.set_peak(payload["rows"], payload["peak"])
    print(report.table(rows), f"\n({time.time() - start:.0f} s so far)\n", flush=True)


FLAGS = flags.FLAGS
flags.DEFINE_bool("tiny", False, "a tiny BiT at 32x32, one repetition: a smoke test")
flags.DEFINE_string("output", "benchmark_results.json", "the JSON file to write")
flags.DEFINE_integer("reps", None, "timed repetitions per candidate (default 3; 1 with --tiny)")
flags.DEFINE_list("sections", list(SECTIONS), f"any of {list(SECTIONS)}")
flags.DEFINE_string("workdir", None, "where exported models go (default: a temporary dir)")
flags.DEFINE_enum("peers", "auto", ["auto", "yes", "no"],
                  f"time timm's BiT side by side: auto (when installed), yes, no ({peers.INSTALL})")


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's export logs would bury the table
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        run(FLAGS.tiny, FLAGS.output, FLAGS.reps, FLAGS.sections, FLAGS.workdir,
            timm={"auto": None, "yes": True, "no": False}[FLAGS.peers])
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
