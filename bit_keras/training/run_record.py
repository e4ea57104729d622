"""``run.json``: what a run folder's first run pinned, checked again by every resume.

A resumed run must train what the first one trained: the recipe's plan (schedule, batch,
augmentation, ...) and the data (its classes, their names, the number of examples, the
seed). Any difference is an error that lists each changed setting, before anything else is
written; a corrected command is never refused, because every setting is checked first.
"""

import json
import os

from bit_keras.utils import atomic

RUN_FILE = "run.json"


def record(run_dir, pinned):
    """Writes ``<run_dir>/run.json`` or, when it exists, raises a ValueError naming every
    setting in both that differs."""
    pinned = json.loads(json.dumps(pinned))  # as it reads back: tuples become lists
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        atomic.write_json(path, pinned)
        return
    before = read(run_dir)
    changed = sorted(k for k in pinned if k in before and before[k] != pinned[k])
    if changed:
        raise ValueError(
            f"run_dir {run_dir!r} holds a run with other settings; use a new run_dir or the "
            "same settings. Changed: " + "; ".join(
                f"{k}: {before[k]!r} -> {pinned[k]!r}" for k in changed))


def read(run_dir):
    """The settings ``run.json`` holds; a ValueError naming the line when it does not parse."""
    path = os.path.join(run_dir, RUN_FILE)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError as error:
        line = getattr(error, "lineno", None)
        raise ValueError(f"{path}{'' if line is None else f', line {line}'} does not parse "
                         f"({error}); repair or remove it, or use a new run_dir") from None
