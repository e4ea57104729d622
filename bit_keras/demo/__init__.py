"""The offline end-to-end demo: ``bit-keras demo`` (``python -m bit_keras demo``).

Example:

>>> report = bit_keras.demo.run(bit_keras.demo.DemoConfig.tiny(out="demo_out"))
"""

from bit_keras.demo.chain import DemoConfig, run

__all__ = ["DemoConfig", "run"]
