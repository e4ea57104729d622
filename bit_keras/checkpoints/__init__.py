"""BiT checkpoints: every file layout read strictly, the official layout written back.

``formats`` reads files into the official key layout, ``keys`` maps layer names to keys,
``transfer`` moves tensors into a model all-or-nothing, ``cache`` keeps downloaded weights.
"""

from bit_keras.checkpoints.formats import CheckpointError, read_checkpoint
from bit_keras.checkpoints.transfer import load_weights, official_weights, save_npz

__all__ = ["CheckpointError", "load_weights", "official_weights", "read_checkpoint", "save_npz"]
