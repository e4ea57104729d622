"""The benchmark's outputs: a JSON file of every measurement and a plain-text table."""

import os
import platform

COLUMNS = ("section", "name", "batch", "images/s", "cpu images/s", "% peak", "x reference",
           "x timm")


def machine():
    """What the figures were measured on: CPU model, cores, TensorFlow and Keras versions."""
    import keras
    import tensorflow as tf

    from benchmarks import timing
    from bit_keras import runtime
    info = _cpuinfo()
    flags = runtime.cpu_flags() or set()
    return {"cpu": info.get("model name", platform.processor()),
            "vendor": info.get("vendor_id", ""), "mhz": _float(info.get("cpu MHz")),
            "cores": timing.cores(), "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "amx_bf16": "amx_bf16" in flags,
            "onednn": runtime.onednn_enabled(),
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset)")}


def _cpuinfo():
    """The first processor's ``/proc/cpuinfo`` fields (empty where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def peaks(dtypes, machine_info, tries=5):
    """The measured matmul peak per dtype (``timing.peak``) and the theoretical one.

    ``machine_info`` is ``machine()``'s dict (its vendor and clock).
    """
    from benchmarks import timing
    from bit_keras import runtime
    return {"measured": {d: timing.peak(d, tries=tries) for d in dtypes},
            "theoretical": timing.theoretical_peak(runtime.cpu_flags(), machine_info["vendor"],
                                                   machine_info["mhz"])}


def merge_peaks(first, second):
    """The higher measured peak of two measurements, per dtype (load only ever lowers it)."""
    return {**first, "measured": {d: max(first["measured"][d], second["measured"][d],
                                         key=lambda p: p["gflops"]) for d in first["measured"]}}


def set_peak(rows, peak):
    """Fills every row's ``peak_pct``: its FLOP rate over the measured peak of its dtype."""
    measured = peak["measured"]
    for r in rows:
        dtype = r.get("dtype")
        if "flops_per_image" in r and dtype in measured:
            r["peak_pct"] = 100 * r["images_per_s"] * r["flops_per_image"] / (
                measured[dtype]["gflops"] * 1e9)
    return rows


def _cell(value, fmt):
    return "" if value is None else fmt.format(value)


def table(rows):
    """A fixed-width text table of result rows (dicts with the keys of ``COLUMNS``)."""
    cells = [COLUMNS] + [(
        r["section"], r["name"], str(r.get("batch", "")),
        _cell(r.get("images_per_s"), "{:.2f}"), _cell(r.get("cpu_images_per_s"), "{:.2f}"),
        _cell(r.get("peak_pct"), "{:.0f}%"), _cell(r.get("vs_reference"), "{:.2f}x"),
        _timm_cell(r))
        for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c[i].ljust(widths[i]) if i < 2 else c[i].rjust(widths[i])
                       for i in range(len(COLUMNS))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _timm_cell(r):
    """``x timm`` of the same dtype, and for bfloat16 also x timm float32 in brackets."""
    cell = _cell(r.get("vs_timm"), "{:.2f}x")
    if r.get("dtype") == "bfloat16" and r.get("vs_timm_float32") is not None:
        cell += f" ({r['vs_timm_float32']:.2f}x f32)"
    return cell


def write_json(path, payload):
    """Writes ``payload`` as JSON to ``path`` atomically (``bit_keras.utils.atomic``)."""
    from bit_keras.utils import atomic
    path = os.path.abspath(path)
    return atomic.write_json(path, payload, indent=1)


def summary(payload):
    """The table, memory, parity and targets of a payload, as printable text."""
    lines = [table(payload["rows"]), ""]
    peak = payload.get("peak")
    if peak:
        theory = peak.get("theoretical") or {}
        for d, p in peak["measured"].items():
            t = theory.get(d)
            lines.append(f"peak {d}: {p['gflops']:.0f} GFLOP/s measured ({p['n']}x{p['n']} "
                         f"matmul, best of {p['tries']}, start and end of the run)"
                         + (f"; theoretical {t:.0f}" if t else ""))
        if theory:
            lines.append(f"theoretical peak: {theory['basis']}")
    lines.append(f"timm: {payload.get('timm') or 'not timed'}")
    lines.append(f"GroupNorm kernel: {payload.get('group_norm_kernel')}")
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
