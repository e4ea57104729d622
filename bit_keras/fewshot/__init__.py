"""Few-shot transfer evaluation: K images per class, several seeds, a table of accuracies.

``evaluation`` draws the shots and runs a protocol (the linear probe of ``linear_probe``, or
any ``fit_fn``), ``images`` reads a split and turns models into feature functions,
``report`` holds the results, their table and JSON. Command line: ``bit-keras fewshot``.

Example:

>>> result = bit_keras.fewshot.evaluate(model, "cifar10", "cifar10", image_size=128)
>>> print(bit_keras.fewshot.format_table({"BiT-M-R50x1": result}))
"""

from bit_keras.fewshot.evaluation import (
                                          DEFAULT_SEEDS,
                                          DEFAULT_SHOTS,
                                          evaluate,
                                          evaluate_features,
                                          sample_shots,
)
from bit_keras.fewshot.linear_probe import LinearProbe, fit_linear_probe
from bit_keras.fewshot.report import FewShotResult, format_table, write_json

__all__ = ["DEFAULT_SEEDS", "DEFAULT_SHOTS", "FewShotResult", "LinearProbe", "evaluate",
           "evaluate_features", "fit_linear_probe", "format_table", "sample_shots",
           "write_json"]
