"""``python -m bit_keras COMMAND``: the same commands as ``bit-keras COMMAND``."""

import sys

from bit_keras.cli import main

if __name__ == "__main__":
    sys.exit(main())
