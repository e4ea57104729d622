"""``python -m bit_keras.pretrain``: the upstream pre-training command line (``bit_keras.pretraining``)."""
from absl import app

from bit_keras import pretraining

if __name__ == "__main__":
    pretraining.define_flags()
    app.run(pretraining.main)
