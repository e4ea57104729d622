"""The benchmark's outputs: a JSON file of every measurement and a plain-text table."""

import os
import platform

COLUMNS = ("section", "name", "batch", "images/s", "cpu images/s", "% roofline", "x reference")


def machine():
    """What the figures were measured on: CPU model, cores, TensorFlow and Keras versions."""
    import keras
    import tensorflow as tf

    from benchmarks import timing
    from bit_keras import runtime
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(line for line in f if line.startswith("model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    flags = runtime.cpu_flags() or set()
    return {"cpu": model, "cores": timing.cores(), "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "amx_bf16": "amx_bf16" in flags,
            "onednn": runtime.onednn_enabled(),
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset)")}


def _cell(value, fmt):
    return "" if value is None else fmt.format(value)


def table(rows):
    """A fixed-width text table of result rows (dicts with the keys of ``COLUMNS``)."""
    cells = [COLUMNS] + [(
        r["section"], r["name"], str(r.get("batch", "")),
        _cell(r.get("images_per_s"), "{:.2f}"), _cell(r.get("cpu_images_per_s"), "{:.2f}"),
        _cell(r.get("roofline_pct"), "{:.0f}%"), _cell(r.get("vs_reference"), "{:.2f}x"))
        for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c[i].ljust(widths[i]) if i < 2 else c[i].rjust(widths[i])
                       for i in range(len(COLUMNS))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path, payload):
    """Writes ``payload`` as JSON to ``path`` atomically (``bit_keras.utils.atomic``)."""
    from bit_keras.utils import atomic
    path = os.path.abspath(path)
    return atomic.write_json(path, payload, indent=1)


def summary(payload):
    """The table, memory, parity and targets of a payload, as printable text."""
    lines = [table(payload["rows"]), ""]
    for m in payload["memory"]:
        lines.append(f"memory: batch {m['batch']}, batch_split {m['batch_split']}: peak RSS "
                     f"{m['peak_rss_mb']:.0f} MiB (after build {m['baseline_rss_mb']:.0f} MiB)")
    bf16 = payload["parity"].get("bfloat16")
    if bf16:
        lines.append(f"bfloat16 vs float32 on {bf16['images']} random images: top-1 agreement "
                     f"{bf16['top1_agreement']:.3f} (tolerance >= {bf16['tolerance_top1_agreement']}), "
                     f"relative L2 error {bf16['rel_l2_error']:.4f} "
                     f"(tolerance <= {bf16['tolerance_rel_l2_error']})")
    for name, err in payload["parity"].get("routes_vs_reference_float32", {}).items():
        lines.append(f"parity: {name} vs reference float32: max relative error {err:.2e}")
    for t in payload.get("targets", []):
        value = "not measured" if t["value"] is None else f"{t['value']:.2f}"
        verdict = {True: "met", False: "NOT met", None: "-"}[t["met"]]
        goal = f"<= {t['goal']}" if t["unit"] == "max" else f">= {t['goal']}"
        lines.append(f"target: {t['target']}: {value} ({goal}) {verdict}")
    lines.append(f"machine: {payload['machine']}")
    lines.append(f"{payload['config']['reps']} timed repetitions per figure after "
                 f"{payload['warmup']} warm-up, median reported; total {payload.get('seconds', 0):.0f} s")
    return "\n".join(lines)
