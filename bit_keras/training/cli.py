"""What the training command lines share: one line per error, a JSON summary on success."""

import json
import sys


def last_accuracy(history):
    """The last validation accuracy of a run's evaluation history, or None."""
    scored = [r["accuracy"] for r in history if r.get("accuracy") is not None]
    return scored[-1] if scored else None


def run_main(prog, argv, run_from_flags):
    """Runs ``run_from_flags()``; prints its summary, or one ``prog: error:`` line and exits 1."""
    if len(argv) > 1:
        sys.exit(f"{prog}: error: unexpected arguments {argv[1:]}; all options are --flags")
    try:
        result = run_from_flags()
    except (ValueError, TypeError, FileNotFoundError, OSError) as e:
        sys.exit(f"{prog}: error: {e}")
    print(json.dumps({"step": result.step, "accuracy": result.accuracy,
                      "weights": result.weights_path}))
    return result
