"""The command lines: ``bit-keras COMMAND`` (or ``python -m bit_keras COMMAND``).

Each command is a module here with ``define_flags(fv)`` and ``main(argv, fv) -> status``: a
few lines of flags over a library function that takes the same options from Python.

Example:

    bit-keras demo
    bit-keras fine_tune --model=BiT-M-R50x1 --dataset=flowers/ --logdir=runs --name=flowers
    python -m bit_keras export --help
"""

import importlib
import sys

from bit_keras.cli import common

# command: (module, what it does)
COMMANDS = {
    "demo": ("run_demo", "the whole BiT chain offline, in minutes"),
    "fine_tune": ("run_fine_tune", "fine-tune with the BiT-HyperRule (bit_keras.fine_tune)"),
    "pretrain": ("run_pretrain", "upstream pre-training (bit_keras.pretrain)"),
    "fewshot": ("run_fewshot", "few-shot linear-probe evaluation (bit_keras.few_shot)"),
    "export": ("run_export", "SavedModel, TFLite and Hub archive (bit_keras.export)"),
    "scan": ("run_scan", "decode every image of a folder up front (bit_keras.data.scan)"),
    "data_service": ("run_data_service", "a tf.data service dispatcher or worker"),
    "distill": ("run_distill", "function-matching distillation (bit_keras.distill)"),
    "vtab": ("run_vtab", "the VTAB-1k protocol with the BiT-HyperRule (bit_keras.vtab)"),
    "preset": ("run_preset", "a keras-hub preset folder (bit_keras.save_preset)"),
}
PROG = "bit-keras"


def usage():
    lines = [f"usage: {PROG} COMMAND [--flags]   ({PROG} COMMAND --help for its flags)", "",
             "commands:"]
    lines += [f"  {name:<12} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    """Entry point of ``bit-keras`` and ``python -m bit_keras``."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        return 0 if len(argv) >= 2 else 1
    name = argv[1].replace("-", "_")
    if name not in COMMANDS:
        return common.fail(PROG, f"unknown command {argv[1]!r}. Commands: {', '.join(COMMANDS)}")
    module = importlib.import_module(f"bit_keras.cli.{COMMANDS[name][0]}")
    common.run(name, module.define_flags, module.main, [name, *argv[2:]])
