"""The training step's speed settings on this machine: XLA, steps per call, rematerialization.

    python -m benchmarks.accelerator [--tiny] [--output=accelerator.json]

Three sections, each the library's own step (``bit_keras.training.make_train_step``) with
one setting changed, timed round-robin (``benchmarks.timing.interleaved``):

- ``xla``: R50x1, 128 px, batch 16: the plain step (the compiled CPU kernels) against
  ``jit_compile=True``, and the evaluation step (224 px, batch 16) likewise; the losses are
  compared first (``jit_compile=None`` picks XLA only where a GPU or TPU is visible).
- ``steps_per_execution``: the tiny BiT at 32 px, batch 8 (a step short enough that the
  host round trip shows): eight updates as eight calls from the host, each waiting for its
  loss, against one call running eight (``bit_keras.training.loop.several_steps``, what
  ``steps_per_execution=8`` runs).
- ``remat``: peak resident memory and step time of R50x1 at 224 px, batch 32, with and
  without ``remat=True`` (each in a fresh process, ``benchmarks.memory``).

About 2 minutes on 2 cores (``--tiny``: the tiny BiT everywhere, seconds); run it on a
quiet machine.
"""

import time

from absl import app, flags

import bit_keras
from benchmarks import memory, models, report, timing, training

R50X1 = dict(units=(3, 4, 6, 3), width=1, base_filters=64, groups=32, num_classes=1000)
TINY = dict(bit_keras.VARIANTS[bit_keras.models.variants.TINY].architecture_kwargs(),
            num_classes=5)
CONFIGS = {
    "full": dict(arch=R50X1, xla_resolution=128, xla_batch=16, eval_resolution=224,
                 eval_batch=16, reps=3, chunk=8, remat_resolution=224, remat_batch=32),
    "tiny": dict(arch=TINY, xla_resolution=32, xla_batch=4, eval_resolution=32,
                 eval_batch=4, reps=1, chunk=4, remat_resolution=32, remat_batch=4),
}
SECTIONS = ("xla", "steps_per_execution", "remat")

flags.DEFINE_bool("tiny", False, "the tiny BiT at 32 px, one repetition: a smoke test")
flags.DEFINE_string("output", "accelerator.json", "the JSON file to write")
flags.DEFINE_list("sections", list(SECTIONS), f"any of {list(SECTIONS)}")


def xla(arch, resolution, batch, eval_resolution, eval_batch, reps):
    """Rows: the plain and the XLA training step and evaluation step; their losses."""
    import numpy as np

    from bit_keras import training as bit_training
    images, labels = training.batch(arch, resolution, batch)
    # A model each (the same weights): each step updates its own.
    steps = {name: training.train_step(models.pair(arch, include_reference=False)[0], images,
                                       labels, jit_compile=on)
             for name, on in (("plain", False), ("xla", True))}
    model, _ = models.pair(arch, include_reference=False)
    losses = {name: float(step()) for name, step in steps.items()}  # also the warm-up
    if not np.isclose(losses["xla"], losses["plain"], rtol=1e-4):
        raise RuntimeError(f"the XLA step's loss differs from the plain one's: {losses}")
    measured = timing.interleaved({f"step/{n}": s for n, s in steps.items()}, reps=reps,
                                  warmup=0)
    eval_images, eval_labels = training.batch(arch, eval_resolution, eval_batch)
    evaluations = {}
    for name, on in (("plain", False), ("xla", True)):
        step = bit_training.make_eval_step(model, jit_compile=on)
        evaluations[f"eval/{name}"] = (lambda s: lambda: s(eval_images, eval_labels))(step)
    outputs = {n: [float(v) for v in e()] for n, e in evaluations.items()}
    if not np.allclose(outputs["eval/xla"], outputs["eval/plain"], rtol=1e-4):
        raise RuntimeError(f"the XLA evaluation differs from the plain one: {outputs}")
    measured.update(timing.interleaved(evaluations, reps=reps, warmup=0))
    return [_row("xla", name, batch if name.startswith("step") else eval_batch, m)
            for name, m in measured.items()], losses


def steps_per_execution(arch, chunk, reps):
    """Rows: ``chunk`` updates as ``chunk`` host calls against one call."""
    import tensorflow as tf

    from bit_keras.training import loop
    model, _ = models.pair(arch, include_reference=False)
    step, data = training.step_and_data(model, *training.batch(arch, 32, 8), jit_compile=False)
    run = loop.several_steps(step, tf.Variable(0, dtype=tf.int64))
    one, many = tf.constant(1), tf.constant(chunk)
    candidates = {"one_per_call": lambda: [run(data, one).numpy() for _ in range(chunk)],
                  f"{chunk}_per_call": lambda: run(data, many).numpy()}
    measured = timing.interleaved(candidates, reps=reps, warmup=1)
    return [_row("steps_per_execution", name, 8 * chunk, m) for name, m in measured.items()]


def remat(arch, resolution, batch):
    """Peak memory and step time with and without rematerialization, in fresh processes."""
    return [memory.in_subprocess(arch, resolution, batch, remat=on) for on in (False, True)]


def _row(section, name, images, m):
    return {"section": section, "name": name, "images": images, "seconds": m["seconds"],
            "images_per_s": images / m["seconds"], "wall": m["wall"], "reps": m["reps"]}


def run(tiny=False, output=None, sections=SECTIONS):
    """Runs the sections and returns (and writes) the payload."""
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"sections must be among {list(SECTIONS)}. Received: {list(sections)}")
    config = CONFIGS["tiny" if tiny else "full"]
    start = time.time()
    payload = {"machine": report.machine(), "config": "tiny" if tiny else "full", "rows": [],
               "remat": []}
    if "xla" in sections:
        rows, payload["xla_losses"] = xla(
            config["arch"], config["xla_resolution"], config["xla_batch"],
            config["eval_resolution"], config["eval_batch"], config["reps"])
        payload["rows"] += rows
    if "steps_per_execution" in sections:
        payload["rows"] += steps_per_execution(TINY, config["chunk"], config["reps"])
    if "remat" in sections:
        payload["remat"] = remat(config["arch"], config["remat_resolution"],
                                 config["remat_batch"])
    payload["seconds"] = time.time() - start
    if output:
        report.write_json(output, payload)
    return payload


def table(payload):
    """Markdown: images/s per row, then the memory of each remat setting."""
    lines = ["| section | candidate | images/s | median s |", "|---|---|---:|---:|"]
    lines += [f"| {r['section']} | {r['name']} | {r['images_per_s']:.2f} | {r['seconds']:.3f} |"
              for r in payload["rows"]]
    if payload["remat"]:
        lines += ["", "| remat | batch | px | peak RSS MiB | training MiB | step s |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {m['remat']} | {m['batch']} | {m['resolution']} | {m['peak_rss_mb']:.0f} "
                  f"| {m['training_mb']:.0f} | {m['step_seconds']:.2f} |"
                  for m in payload["remat"]]
    return "\n".join(lines)


def main(argv):
    del argv
    fv = flags.FLAGS
    print(table(run(fv.tiny, fv.output, fv.sections)))


if __name__ == "__main__":
    app.run(main)
