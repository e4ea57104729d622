"""The issue's speed targets, read off one benchmark payload (figures from the same run)."""


def _row(rows, section_prefix, name, batch):
    for r in rows:
        if r["section"].startswith(section_prefix) and r["name"] == name and r["batch"] == batch:
            return r
    return None


def _ratio(a, b):
    return a["images_per_s"] / b["images_per_s"] if a and b else None


def _target(name, value, goal, unit=""):
    return {"target": name, "value": value, "goal": goal, "unit": unit,
            "met": None if value is None else bool(value >= goal if unit != "max" else value <= goal)}


def _field(row, key):
    return row.get(key) if row else None


def check(payload):
    """A list of {target, value, goal, met}: ``met`` is None when the figure was not measured.

    The timm targets (issue 15) are None when timm was not timed (``benchmarks.peers``).
    """
    rows, config = payload["rows"], payload["config"]
    batches = config["inference_batches"]
    ib = 8 if 8 in batches else batches[0]
    tb = max(config["train_batches"])
    keras32 = _row(rows, "inference", "bit_keras/keras/float32", ib)
    keras16 = _row(rows, "inference", "bit_keras/keras/bfloat16", ib)
    out = [
        _target(f"float32 Keras inference, batch {ib}: % of the measured float32 peak",
                _field(keras32, "peak_pct"), 75.0, "%"),
        _target(f"float32 Keras inference, batch {ib}: x timm float32",
                _field(keras32, "vs_timm"), 1.5, "x"),
        _target(f"bfloat16 / float32 Keras inference, batch {ib}", _ratio(keras16, keras32),
                1.5, "x"),
        _target(f"bfloat16 Keras inference, batch {ib}: x timm float32",
                _field(keras16, "vs_timm_float32"), 2.5, "x"),
        _target(f"bfloat16 Keras inference, batch {ib}: x timm bfloat16 autocast",
                _field(keras16, "vs_timm"), 1.5, "x"),
        _target(f"exported SavedModel / Keras inference, float32, batch {ib}",
                _ratio(_row(rows, "inference", "bit_keras/saved_model/float32", ib), keras32),
                1.0, "x"),
        _target(f"TFLite / Keras inference, float32, batch {ib}",
                _ratio(_row(rows, "inference", "bit_keras/tflite/float32", ib), keras32),
                1.0, "x"),
        _target(f"fine-tuning step / reference, float32, batch {tb}",
                _ratio(_row(rows, "fine-tune", "bit_keras/step/float32", tb),
                       _row(rows, "fine-tune", "reference/step/float32", tb)), 1.3, "x"),
    ]
    for b in config["train_batches"]:
        out.append(_target(f"fine-tuning step, float32, batch {b}: x timm float32",
                           _field(_row(rows, "fine-tune", "bit_keras/step/float32", b),
                                  "vs_timm"), 1.5, "x"))
    peaks = {(m["batch"], m["batch_split"]): m["peak_rss_mb"] for m in payload["memory"]}
    big, split = config["memory_batch"], config["batch_split"]
    small = peaks.get((big // split, 1))
    out.append(_target(f"peak RSS, batch {big} with batch_split={split} / batch {big // split}",
                       peaks[(big, split)] / small if small and (big, split) in peaks else None,
                       1.3, "max"))
    return out
