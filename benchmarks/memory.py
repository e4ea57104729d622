"""Peak resident memory of fine-tuning, each configuration in a fresh process.

A process's peak RSS (``VmHWM``) only grows, so every configuration runs in its own
interpreter: ``python -m benchmarks.memory --batch 64 --batch_split 8`` prints one JSON line.
The baseline (RSS after building the model, before the first step) is reported too, so the
training activations can be told apart from TensorFlow's own footprint.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags


def _status_mb(field):
    # /proc/self/status, not ru_maxrss: on Linux ru_maxrss survives fork+exec, so a child
    # of a big benchmark process would report its parent's peak.
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(arch, resolution, batch, batch_split=1, steps=2, dtype="float32", remat=False):
    """Runs ``steps`` fine-tuning updates here and returns peak and baseline RSS in MiB and
    the seconds of the last update (the first traces the step)."""
    from benchmarks import models, training
    model, _ = models.pair(arch, dtype, include_reference=False)
    images, labels = training.batch(arch, resolution, batch)
    step = training.train_step(model, images, labels, batch_split, remat=remat)
    baseline = _status_mb("VmRSS")
    seconds = None
    for _ in range(steps):
        start = time.perf_counter()
        float(step())
        seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    return {"batch": batch, "batch_split": batch_split, "resolution": resolution,
            "dtype": dtype, "remat": remat, "peak_rss_mb": peak, "baseline_rss_mb": baseline,
            "training_mb": peak - baseline, "step_seconds": seconds}


def in_subprocess(arch, resolution, batch, batch_split=1, steps=2, dtype="float32", remat=False):
    """``measure`` in a fresh Python process (so that peaks do not mix); returns its dict."""
    command = [sys.executable, "-m", "benchmarks.memory", f"--arch={json.dumps(arch)}",
               f"--resolution={resolution}", f"--batch={batch}", f"--batch_split={batch_split}",
               f"--steps={steps}", f"--dtype={dtype}", f"--remat={remat}"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, check=False)
    if done.returncode:
        raise RuntimeError(f"memory benchmark failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


FLAGS = flags.FLAGS
flags.DEFINE_string("arch", None, "architecture as JSON (see benchmarks.models.pair)")
flags.DEFINE_integer("resolution", 128, "image side")
flags.DEFINE_integer("batch", 64, "global batch of one update")
flags.DEFINE_integer("batch_split", 1, "micro-batches per update")
flags.DEFINE_integer("steps", 2, "updates to run")
flags.DEFINE_string("dtype", "float32", "float32 or bfloat16")
flags.DEFINE_bool("remat", False, "recompute each residual unit in the backward pass")


def main(argv):
    del argv
    arch = json.loads(FLAGS.arch)
    arch["units"] = tuple(arch["units"])
    print(json.dumps(measure(arch, FLAGS.resolution, FLAGS.batch, FLAGS.batch_split,
                             FLAGS.steps, FLAGS.dtype, FLAGS.remat)))


if __name__ == "__main__":
    flags.mark_flag_as_required("arch")
    app.run(main)
