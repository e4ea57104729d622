"""``python -m bit_keras.fine_tune``: the fine-tuning command line (``bit_keras.finetuning``)."""
from absl import app

from bit_keras import finetuning

if __name__ == "__main__":
    finetuning.define_flags()
    app.run(finetuning.main)
