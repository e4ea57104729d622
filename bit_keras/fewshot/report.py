"""Few-shot results: accuracy per K and seed, a table of them, and their JSON file."""

import dataclasses

import numpy as np

from bit_keras.utils import atomic


@dataclasses.dataclass
class FewShotResult:
    """Accuracies of one few-shot protocol on one dataset.

    Attributes:
        method: ``"linear_probe"`` or the name of the ``fit_fn`` used.
        accuracies: ``{K: [accuracy of seed 0, seed 1, ...]}``, accuracies in [0, 1].
        seeds: the seeds, in the order of the accuracy lists.
        num_classes: the number of classes (so chance is ``1 / num_classes``).
        num_test: the number of test images.
        settings: what else fixed the numbers (``l2_reg``, ``image_size``).
    """

    method: str
    accuracies: dict
    seeds: list
    num_classes: int
    num_test: int
    settings: dict = dataclasses.field(default_factory=dict)

    def mean(self, shots):
        """Mean accuracy over seeds at ``shots`` examples per class."""
        return float(np.mean(self.accuracies[shots]))

    def std(self, shots):
        """Standard deviation (population, ddof 0) of the accuracy over seeds."""
        return float(np.std(self.accuracies[shots]))

    def to_dict(self):
        """A JSON-ready dict: settings, and per K the mean, std and per-seed accuracies."""
        return {
            "method": self.method, "num_classes": self.num_classes, "num_test": self.num_test,
            "seeds": list(self.seeds), "settings": dict(self.settings),
            "shots": {str(k): {"mean": self.mean(k), "std": self.std(k),
                               "per_seed": [float(a) for a in v]}
                      for k, v in sorted(self.accuracies.items())},
        }


def _named(results):
    if isinstance(results, FewShotResult):
        return {results.method: results}
    if isinstance(results, dict) and results and all(
            isinstance(r, FewShotResult) for r in results.values()):
        return dict(results)
    raise TypeError("results must be a FewShotResult or a non-empty dict of name -> "
                    f"FewShotResult. Received: {type(results).__name__}")


def _cell(result, shots):
    """"mean ± std" in percent; the mean alone for one seed (there is no spread to show)."""
    if shots not in result.accuracies:
        return "-"
    if len(result.accuracies[shots]) == 1:
        return f"{100 * result.mean(shots):.1f}"
    return f"{100 * result.mean(shots):.1f} ± {100 * result.std(shots):.1f}"


def format_table(results):
    """A Markdown table: one row per K, one column per result, cells "mean ± std" in percent.

    Args:
        results: a ``FewShotResult`` or a dict ``{column name: FewShotResult}``.

    Returns:
        The table as a string (readable in a terminal, and as Markdown).

    Example:

    >>> print(bit_keras.fewshot.format_table({"pre-trained": a, "scratch": b}))
    | shots | pre-trained | scratch |
    |---:|---:|---:|
    | 1 | 61.2 ± 2.0 | 12.5 ± 1.1 |
    """
    named = _named(results)
    all_shots = sorted({k for r in named.values() for k in r.accuracies})
    rows = ["| shots | " + " | ".join(named) + " |",
            "|---:|" + "---:|" * len(named)]
    for k in all_shots:
        cells = [_cell(r, k) for r in named.values()]
        rows.append(f"| {k} | " + " | ".join(cells) + " |")
    first = next(iter(named.values()))
    seeds = len(first.seeds)
    rows.append(f"\naccuracy % over {seeds} seed{'s' * (seeds != 1)} (mean ± std), "
                f"{first.num_classes} classes, {first.num_test} test images")
    return "\n".join(rows)


def write_json(results, path):
    """Writes ``{column name: result.to_dict()}`` as JSON, atomically (write beside, rename).

    Args:
        results: a ``FewShotResult`` or a dict ``{name: FewShotResult}``.
        path: the JSON file to write; its folder is created.

    Returns:
        ``path``.

    Example:

    >>> bit_keras.fewshot.write_json({"pre-trained": result}, "fewshot.json")
    """
    payload = {name: r.to_dict() for name, r in _named(results).items()}
    return atomic.write_json(path, payload, indent=2)
