"""``bit_keras.vtab``: the VTAB-1k protocol (Zhai et al., arXiv 1910.04867) with the
BiT-HyperRule, as BiT reports it.

Example:

>>> model = bit_keras.load("BiT-M-R50x1", include_top=False)
>>> results, summary = bit_keras.vtab.run(model, "runs/vtab", tasks=["dtd", "eurosat"])
>>> summary["mean"]
"""

from bit_keras.vtab.protocol import run, summarise, table
from bit_keras.vtab.tasks import CATEGORIES, TASKS, Task, splits

__all__ = ["CATEGORIES", "TASKS", "Task", "run", "splits", "summarise", "table"]
