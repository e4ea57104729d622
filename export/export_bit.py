"""The exporter's command line as a script: the same as ``bit-keras export``.

    python export/export_bit.py --model BiT-M-R50x1 --weights BiT-M-R50x1.npz \
        --kind feature_vector --out exports/bit_m-r50x1_fv --version 1

Prints the SavedModel path (and the other files written); on an error prints one line and
exits with status 1. The flags are those of ``bit_keras/cli/run_export.py``.
"""

import functools
import sys

from bit_keras.cli import common, run_export

PROG = "export_bit.py"

if __name__ == "__main__":
    common.run(PROG, run_export.define_flags, functools.partial(run_export.main, prog=PROG),
               [PROG, *sys.argv[1:]])
