"""What every command shares: its flags parsed apart from the library, one line per error.

The convention (``docs/design.md``, "Command lines"): an error prints one line,
``COMMAND: error: MESSAGE``, on standard error and the command exits with status 1; a bad
flag is such an error too. Flags are defined when a command runs, never when a library
module is imported.
"""

import json
import re
import sys

from absl import app, flags

# What a user can cause: bad values, missing files, a diverging run. CheckpointError is a
# ValueError; FileNotFoundError is an OSError. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError)


def user_error(error):
    """True for what a user can cause: ``USER_ERRORS``, and TensorFlow's
    ResourceExhaustedError (a full disk while a checkpoint or an export is written, or a
    batch over the memory)."""
    tf = sys.modules.get("tensorflow")
    return isinstance(error, USER_ERRORS) or (
        tf is not None and isinstance(error, tf.errors.ResourceExhaustedError))


def error_line(prog, error):
    """``PROG: error: MESSAGE`` with the message on one line (TensorFlow's
    ``{{function_node ...}}`` prefix left out)."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(error))
    return f"{prog}: error: " + " ".join(text.split())


def fail(prog, error):
    """Prints ``error`` as one line on standard error; returns the exit status 1."""
    print(error_line(prog, error), file=sys.stderr)
    return 1


def check_no_arguments(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; all options are --flags")


def guarded(prog, argv, run):
    """Runs ``run()`` (after refusing positional arguments); returns (status, its result)."""
    try:
        check_no_arguments(argv)
        return 0, run()
    except Exception as error:  # noqa: BLE001 - a user's error is one line, a bug a traceback
        if not user_error(error):
            raise
        return fail(prog, error), None


def training_main(prog, argv, run):
    """A training command: ``run()`` gives a result; print its JSON summary, or one error."""
    status, result = guarded(prog, argv, run)
    if status == 0:
        print(json.dumps({"step": result.step, "accuracy": result.accuracy,
                          "weights": result.weights_path,
                          "resumed_from": result.resumed_from}))
    return status


def data_specs(fv, data, default_eval=True):
    """``(train, eval)`` data for a training command: the ``--dataset`` and
    ``--eval_dataset`` specs as they are, or, with ``--datadir``/``--tfds_manual_dir``
    (TFDS only), the sources they name (the eval one from ``--dataset``'s test split when
    ``--eval_dataset`` is not given and ``default_eval``)."""
    options = {k: v for k, v in (("data_dir", fv.datadir), ("manual_dir", fv.tfds_manual_dir))
               if v}
    if not options:
        return fv.dataset, fv.eval_dataset
    eval_spec = fv.eval_dataset or (fv.dataset if default_eval else None)
    return (data.load_source(fv.dataset, "train", **options),
            eval_spec and data.load_source(eval_spec, "test", **options))


def require(fv, *names):
    """Raises a ValueError naming the first of ``names`` that has no value."""
    for name in names:
        if not fv[name].value:
            raise ValueError(f"--{name} is required. Received: --{name}={fv[name].value!r}")


def command_help(prog, define_flags, names, fv=None):
    """``bit-keras PROG --help``: the command's summary and the flags it defined, ``names``
    (absl's own help lists the flags of the ``__main__`` module, which defines none)."""
    fv = flags.FLAGS if fv is None else fv
    summary = (sys.modules[define_flags.__module__].__doc__ or "").strip()
    lines = []
    for name in sorted(names):
        flag = fv[name]
        default = "" if flag.default is None else f" (default: {flag.default_as_str})"
        lines.append(f"  --{name}: " + " ".join(str(flag.help).split()) + default)
    return (f"usage: bit-keras {prog} [--flag=value ...]\n\n{summary}\n\nflags:\n"
            + "\n".join(lines) + "\n\nTry --helpfull for every flag, absl's included.")


def run(prog, define_flags, main, argv):
    """Defines a command's flags, parses ``argv`` under absl and runs ``main(argv)``.

    ``--help`` (``-h``, ``--helpshort``) lists the command's own flags; ``--helpfull`` works
    as in any absl program; a bad flag is one error line and status 1.
    """
    before = set(flags.FLAGS)
    define_flags(flags.FLAGS)
    own = set(flags.FLAGS) - before

    def parse(argv):
        if any(a in ("-h", "-help", "--help", "--helpshort") for a in argv[1:]):
            print(command_help(prog, define_flags, own))
            sys.exit(0)
        # The official PyTorch train.py spells absl's --nosave as --no-save.
        argv = [f"--no{a[len('--no-'):]}" if a.startswith("--no-") and "=" not in a else a
                for a in argv]
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:
            sys.exit(fail(prog, error))

    app.run(main, argv=[prog, *argv[1:]], flags_parser=parse)
