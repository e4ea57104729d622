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


def check(payload):
    """A list of {target, value, goal, met}: ``met`` is None when the figure was not measured."""
    rows, config = payload["rows"], payload["config"]
    batches = config["inference_batches"]
    ib = 8 if 8 in batches else batches[0]
    tb = max(config["train_batches"])
    out = []
    for impl in ("bit_keras",):
        keras32 = _row(rows, "inference", f"{impl}/keras/float32", ib)
        out += [
            _target(f"{impl}: float32 Keras inference, batch {ib}: % of fp32 matmul roofline",
                    keras32["roofline_pct"] if keras32 else None, 60.0, "%"),
            _target(f"{impl}: bfloat16 / float32 Keras inference, batch {ib}",
                    _ratio(_row(rows, "inference", f"{impl}/keras/bfloat16", ib), keras32),
                    1.5, "x"),
            _target(f"{impl}: exported SavedModel / Keras inference, float32, batch {ib}",
                    _ratio(_row(rows, "inference", f"{impl}/saved_model/float32", ib), keras32),
                    1.0, "x"),
            _target(f"{impl}: fine-tuning step / reference, float32, batch {tb}",
                    _ratio(_row(rows, "fine-tune", f"{impl}/step/float32", tb),
                           _row(rows, "fine-tune", "reference/step/float32", tb)), 1.3, "x"),
        ]
    peaks = {(m["batch"], m["batch_split"]): m["peak_rss_mb"] for m in payload["memory"]}
    big, split = config["memory_batch"], config["batch_split"]
    small = peaks.get((big // split, 1))
    out.append(_target(f"peak RSS, batch {big} with batch_split={split} / batch {big // split}",
                       peaks[(big, split)] / small if small and (big, split) in peaks else None,
                       1.3, "max"))
    return out
