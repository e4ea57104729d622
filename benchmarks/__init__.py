"""The BiT speed benchmark: ``python -m benchmarks.run`` (see ``benchmarks/run.py``).

Everything is measured side by side with a plain reference BiT built in ``reference.py``;
docs/performance.md explains the figures.
"""
