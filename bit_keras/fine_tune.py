"""``python -m bit_keras.fine_tune``: the fine-tuning command line (``bit_keras.finetuning``)."""
from absl import app, flags

from bit_keras import finetuning

if __name__ == "__main__":
    finetuning.define_flags()
    flags.adopt_module_key_flags(finetuning)  # so --helpshort lists them
    app.run(finetuning.main)
