"""BiT on a GPU through Keras' JAX backend, beside timm on the same GPU; no TensorFlow needed.

    python -m benchmarks.gpu [--tiny] [--output=gpu.json] [--require_gpu] [--peers=auto]

R50x1 (random weights, the same in every route) on Keras' JAX backend, in this one process:

* inference at 224 px, batch 64: ``predict_on_batch`` (one jitted XLA program);
* a fine-tuning step at 128 px, batch 64, and 480 px, batch 16 (BiT-HyperRule's two
  resolutions): ``train_on_batch`` after ``compile`` (SGD with momentum 0.9, softmax
  cross-entropy; XLA-compiled, the JAX default);
* each in float32 and bfloat16 (Keras' ``mixed_bfloat16`` policy: bfloat16 activations and
  convolutions, float32 variables; timm under ``torch.autocast(bfloat16)``). float32 is IEEE
  float32 on both sides: JAX at ``default_matmul_precision("highest")``, PyTorch with TF32
  off. Their defaults differ (JAX's uses TF32 on NVIDIA GPUs, PyTorch's in cuDNN
  convolutions only), and TF32's 10-bit mantissa would hide a float32 error of 1e-4;
* timm's ``resnetv2_50x1_bit`` with the same weights, NCHW and ``channels_last``, on torch's
  CUDA device (its CPU without one); "x timm" is to the faster layout (``peers.py``).

Parity first: every route's first call is compared with a reference, the float32 model on
JAX's CPU backend at full precision (logits for inference, the loss before the update for a
step); a route outside the tolerance (``TOLERANCE``) is reported and not timed, and the
command then exits with status 1. Inputs are on the device before timing; every timed call
ends by copying its logits or loss to the host, which waits for the device. Calls alternate
between routes (``timing.interleaved``), 20 timed calls each after 2 warm-up ones.

Needs keras and bit_keras beside JAX (CUDA), and optionally PyTorch and timm; never
TensorFlow. Carry these wheels to a machine with only those: keras, absl-py, optree, rich
and packaging (``import keras`` fails without any of them); namex, h5py, markdown-it-py,
mdurl and pygments complete keras' and rich's declared requirements but are not imported
by this run. numpy, ml-dtypes, scipy and opt-einsum come with JAX, typing-extensions (for
optree) with PyTorch. bit_keras imports nothing more on JAX (no Pillow, no h5py).
``benchmarks/gpu_device.sh`` installs carried wheels and runs this.

Expected runtime on one H100 (an estimate, not yet measured): 3 to 5 minutes, most of it
compilation (6 XLA programs on the GPU, 3 on the CPU for the reference); ``--tiny``: under
a minute on 2 cores.
"""

import os
import sys
import time

import numpy as np
from absl import app, flags

DTYPES = ("float32", "bfloat16")
R50X1 = dict(units=(3, 4, 6, 3), width=1, base_filters=64, groups=32, num_classes=1000)
CONFIGS = {
    # (resolution, batch). 64 images at 224 px fill an H100 for inference; the steps are
    # BiT-HyperRule's two training resolutions, at batches that fit beside timm in the half
    # of GPU memory each library gets (480 px: 14 times the pixels of 128 px, so 16 images).
    "full": dict(arch=R50X1, inference=(224, 64), steps=((128, 64), (480, 16)),
                 reps=20, warmup=2),
    "tiny": dict(arch=dict(units=(1, 1, 1, 1), width=1, base_filters=16, groups=8,
                           num_classes=5),
                 inference=(32, 4), steps=((32, 4),), reps=1, warmup=1),
}
# Parity: the relative L2 error of a route's logits (or first loss) against the reference.
# It tells a route that computes the same function from a broken one (other weights, another
# layout: errors near 1). float32: the same IEEE arithmetic in another order, 1e-8 to 3e-5
# measured on CPU (R50x1 at 96 px and the tiny BiT); 1e-4 leaves room for cuDNN's choice of
# algorithms. bfloat16: rounding to 8 bits of mantissa through ~50 layers, with random
# weights; R50x1 at 96 px on CPU measured 0.10 for Keras on JAX, 0.077 for timm, losses
# 0.004 to 0.014 (benchmarks.parity documents 0.049 for TensorFlow at 224 px).
TOLERANCE = {"float32": 1e-4, "bfloat16": 0.25}
OURS = "bit_keras/jax"


def use_jax():
    """Sets ``KERAS_BACKEND=jax`` before Keras is imported; refuses any other backend."""
    backend = os.environ.get("KERAS_BACKEND", "jax")
    if backend != "jax":
        raise ValueError("benchmarks.gpu runs on Keras' JAX backend. Received: "
                         f"KERAS_BACKEND={backend!r}; unset it or set it to 'jax'.")
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != "jax":
        raise ValueError("benchmarks.gpu runs on Keras' JAX backend, but Keras was imported "
                         f"on {sys.modules['keras'].backend.backend()!r} in this process.")
    os.environ["KERAS_BACKEND"] = "jax"
    # JAX takes 75% of GPU memory when it starts; half leaves timm room in this process.
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.5")


def parity_check(got, want, dtype):
    """A route's first output against the reference: its error, the tolerance, the verdict.

    ``got`` and ``want`` are logits ``(N, classes)`` (then the top-1 agreement too) or a loss.
    """
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    out = {"rel_error": err, "tolerance": TOLERANCE[dtype], "within": err <= TOLERANCE[dtype]}
    if got.ndim == 2:
        out["top1_agreement"] = float(np.mean(got.argmax(1) == want.argmax(1)))
    return out


def workloads(config):
    """[(what, resolution, batch)]: the inference and the steps of a config."""
    return [("infer", *config["inference"])] + [("step", *s) for s in config["steps"]]


def inputs(what, side, batch, num_classes, seed):
    """Random images in [0, 1] and, for a step, one-hot labels (numpy, on the host)."""
    rng = np.random.default_rng(seed)
    images = rng.random((batch, side, side, 3), np.float32)
    labels = np.eye(num_classes, dtype=np.float32)[np.arange(batch) % num_classes]
    return images, (labels if what == "step" else None)


def references(model, data):
    """``{workload: logits or loss}`` of the float32 ``model`` on JAX's CPU at full precision.

    ``data`` maps each workload to its (images, labels or None); a step's reference is the
    softmax cross-entropy averaged over the batch, computed here in float64.
    """
    import jax
    try:
        cpu = jax.devices("cpu")[0]
    except RuntimeError as e:
        raise RuntimeError("the parity reference runs on JAX's CPU backend: let "
                           f"JAX_PLATFORMS include cpu (it is {os.environ.get('JAX_PLATFORMS')!r})"
                           ) from e
    state = jax.device_put(([v.value for v in model.trainable_variables],
                            [v.value for v in model.non_trainable_variables]), cpu)
    forward = jax.jit(lambda t, n, x: model.stateless_call(t, n, x)[0])
    out = {}
    for w, (images, labels) in data.items():
        with jax.default_device(cpu), jax.default_matmul_precision("highest"):
            logits = np.asarray(forward(*state, jax.device_put(images, cpu)), np.float64)
        if labels is None:
            out[w] = logits
            continue
        top = logits.max(1, keepdims=True)
        log_p = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
        out[w] = float(-(labels * log_p).sum(1).mean())
    return out


def our_route(arch, what, data, dtype, seed=0):
    """A zero-argument callable: one jitted predict or train step of bit_keras on JAX."""
    import jax
    import keras

    from benchmarks import models
    model, _ = models.pair(arch, dtype, seed=seed, include_reference=False)
    images, labels = (None if a is None else jax.device_put(a) for a in data)
    if what == "infer":
        call = lambda: model.predict_on_batch(images)
    else:
        model.compile(keras.optimizers.SGD(0.003, momentum=0.9),  # as peers.train_steps
                      keras.losses.CategoricalCrossentropy(from_logits=True))
        call = lambda: model.train_on_batch(images, labels)
    precision = "highest" if dtype == "float32" else None  # IEEE float32, no TF32

    def run():
        with jax.default_matmul_precision(precision):
            return call()

    return run


def timm_routes(model, arch, what, data, device):
    """``{(layout, dtype): callable}``: timm's inference or step (``peers``) on ``device``."""
    from benchmarks import peers
    images, labels = data
    if what == "infer":  # names "timm/<layout>/<dtype>"
        made = {n: make(images) for n, make in peers.inference_routes(
            model, arch, bfloat16=True, device=device).items()}
    else:  # names "timm/step_<layout>/<dtype>"
        made = peers.train_steps(model, arch, images, labels, dtypes=DTYPES, device=device)
    return {(n.split("/")[1].removeprefix("step_"), n.split("/")[2]): fn
            for n, fn in made.items()}


def run(tiny=False, output=None, require_gpu=False, timm=None):
    """Checks every route against the reference, times those that agree, returns the payload.

    Args:
        tiny: the tiny BiT at 32 px, one repetition (a smoke test) instead of R50x1.
        output: a JSON file to write the payload to (none if None).
        require_gpu: refuse to run unless JAX (and torch, for timm) see a GPU.
        timm: time timm too: None when installed, True (refuse without it) or False.

    Returns:
        dict with ``rows`` (one per timed route and workload: images/s), ``parity`` (every
        route's error and tolerance), ``refused`` (routes outside it), ``devices`` and more.
    """
    use_jax()
    import jax

    from benchmarks import flops, models, peers, report, timing
    start, name = time.time(), "tiny" if tiny else "full"
    config = CONFIGS[name]
    arch = config["arch"]
    if require_gpu and jax.default_backend() != "gpu":
        raise RuntimeError(f"--require_gpu: JAX runs on {jax.devices()}, not a GPU")
    base, _ = models.pair(arch, "float32", include_reference=False)
    loads = workloads(config)
    data = {w: inputs(*w, arch["num_classes"], seed=i + 1) for i, w in enumerate(loads)}
    want = references(base, data)
    _say(f"model built, reference computed on JAX's CPU: {time.time() - start:.0f} s")
    candidates, parity, meta = {}, {}, {}

    def admit(route, w, dtype, fn):  # parity first: the first call is checked, not timed
        key = f"{route}/{w[0]}{w[1]}/{dtype}"
        parity[key] = check = parity_check(fn(), want[w], dtype)
        meta[key] = (route, w, dtype)
        if check["within"]:
            candidates[key] = fn
        _say(f"parity {key}: {check['rel_error']:.1e} (tolerance {check['tolerance']:g})")

    for w in loads:
        for dtype in DTYPES:
            admit(OURS, w, dtype, our_route(arch, w[0], data[w], dtype))
    # timm after JAX has compiled on the GPU: JAX then loads the CUDA libraries it was built
    # with before torch brings its own.
    device, use_timm = None, timm is not False and peers.preload()
    if timm and not use_timm:
        raise RuntimeError(f"timm cannot be timed: {peers.why_not()}")
    if use_timm:
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if require_gpu and device != "cuda":
            raise RuntimeError("--require_gpu: torch sees no CUDA device for timm")
        for w in loads:
            for (layout, dtype), fn in timm_routes(base, arch, w[0], data[w], device).items():
                admit(f"timm/{layout}", w, dtype, fn)
    times = timing.interleaved(candidates, reps=config["reps"], warmup=config["warmup"])
    rows = []
    for key, m in times.items():
        route, (what, side, batch), dtype = meta[key]
        # A training step: the forward pass and a backward pass of about twice its work.
        work = flops.bit_flops(arch["units"], arch["width"], side, arch["num_classes"],
                               arch["base_filters"]) * (1 if what == "infer" else 3)
        rows.append({"route": route, "what": what, "resolution": side, "batch": batch,
                     "dtype": dtype, "images_per_s": batch / m["seconds"],
                     "tflops": batch * work / m["seconds"] / 1e12, "seconds": m["seconds"],
                     "wall": m["wall"], "parity": parity[key]["rel_error"]})
    payload = {"config": name, "arch": arch, "workloads": loads, "rows": rows,
               "parity": parity, "refused": [k for k, p in parity.items() if not p["within"]],
               "devices": devices(device), "timm": peers.versions() if use_timm
               else (peers.why_not() if timm is None else "not asked for"),
               "tensorflow_imported": "tensorflow" in sys.modules,
               "reps": config["reps"], "warmup": config["warmup"],
               "seconds": time.time() - start}
    if output:
        report.write_json(output, payload)
    return payload


def devices(torch_device):
    """What ran: JAX's devices, torch's (for timm), the library versions."""
    import platform

    import jax
    import keras

    import bit_keras
    info = {"jax": [f"{d.platform}: {d.device_kind}" for d in jax.devices()],
            "jax_backend": jax.default_backend(), "jax_version": jax.__version__,
            "keras": keras.__version__, "bit_keras": bit_keras.__version__,
            "python": platform.python_version(), "torch": None}
    if torch_device:
        import torch
        info["torch"] = (torch.cuda.get_device_name(0) if torch_device == "cuda"
                         else f"cpu ({torch.get_num_threads()} threads)")
    return info


def _say(text):
    print(text, flush=True)


def table(payload):
    """A markdown table: bit_keras and the faster timm layout per workload and dtype."""
    lines = ["| workload | dtype | bit_keras img/s | TFLOP/s | timm img/s | x timm "
             "| parity bit_keras | parity timm |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for what, side, batch in payload["workloads"]:
        for dtype in DTYPES:
            mine = [r for r in payload["rows"] if (r["what"], r["resolution"], r["dtype"])
                    == (what, side, dtype)]
            ours = next((r for r in mine if r["route"] == OURS), None)
            peer = min((r for r in mine if r["route"] != OURS), default=None,
                       key=lambda r: r["seconds"])
            cells = [f"{'inference' if what == 'infer' else 'train step'} {side} px b{batch}",
                     dtype, _cell(ours, "{images_per_s:.1f}"), _cell(ours, "{tflops:.3g}"),
                     _cell(peer, "{images_per_s:.1f} ({route})").replace("timm/", ""),
                     f"{peer['seconds'] / ours['seconds']:.2f}x" if ours and peer else "",
                     _cell(ours, "{parity:.1e}"), _cell(peer, "{parity:.1e}")]
            lines.append("| " + " | ".join(cells) + " |")
    d = payload["devices"]
    lines += ["", f"JAX: {', '.join(d['jax'])}; timm: {d['torch'] or payload['timm']}",
              f"refused (parity): {', '.join(payload['refused']) or 'none'}; "
              f"{payload['reps']} timed calls per route after {payload['warmup']} warm-up, "
              f"median; {payload['seconds']:.0f} s in all"]
    return "\n".join(lines)


def _cell(row, fmt):
    return fmt.format(**row) if row else ""


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        fv = flags.FLAGS
        payload = run(fv.tiny, fv.output, fv.require_gpu,
                      timm={"auto": None, "yes": True, "no": False}[fv.peers])
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(table(payload))
    return 1 if payload["refused"] else 0


def define_flags():
    """The command line's flags, defined when it runs, not on import (tests import this)."""
    flags.DEFINE_bool("tiny", False, "a tiny BiT at 32 px, one repetition: a smoke test")
    flags.DEFINE_string("output", "gpu.json", "the JSON file to write")
    flags.DEFINE_bool("require_gpu", False, "refuse to run unless JAX and torch see a GPU")
    flags.DEFINE_enum("peers", "auto", ["auto", "yes", "no"],
                      "time timm's BiT on the same device: auto (when installed), yes, no")


if __name__ == "__main__":
    define_flags()
    app.run(main)
