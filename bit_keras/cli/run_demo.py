"""``bit-keras demo``: BiT's whole chain on one laptop, offline, in minutes."""

from absl import flags, logging

from bit_keras.cli import common
from bit_keras.demo import DemoConfig, run

PROG = "demo"


def define_flags(fv=flags.FLAGS):
    d = DemoConfig()
    flags.DEFINE_string("out", d.out, "Output folder.", flag_values=fv)
    flags.DEFINE_bool("tiny", False, "A reduced run in seconds (what CI runs).", flag_values=fv)
    flags.DEFINE_integer("pretrain_steps", None, "Upstream steps (default 1000).", flag_values=fv)
    flags.DEFINE_integer("finetune_steps", None, "Steps per few-shot fine-tuning (default 100).", flag_values=fv)
    flags.DEFINE_bool("verbose", False, "Show the library's INFO logs.", flag_values=fv)
    flags.DEFINE_integer("seed", d.seed, "Seed of the data and the runs.", flag_values=fv)
    flags.DEFINE_string("weights", None, "Skip pre-training: a BiT checkpoint (with --model, --dataset).", flag_values=fv)
    flags.DEFINE_string("model", None, "The checkpoint's architecture, e.g. BiT-M-R50x1.", flag_values=fv)
    flags.DEFINE_string("dataset", None, "Downstream data for --weights: TFDS name or folder.", flag_values=fv)


def main(argv, fv=flags.FLAGS):
    """``bit-keras demo``: the table, or one error line and status 1."""
    if not fv.verbose:  # the numbered steps are the demo's progress; library logs are noise here
        logging.set_verbosity(logging.ERROR)
    overrides = {k: fv[k].value for k in ("out", "seed", "weights", "model", "dataset",
                                           "pretrain_steps", "finetune_steps")
                 if fv[k].value is not None}
    config = DemoConfig.tiny(**overrides) if fv.tiny else DemoConfig(**overrides)
    status, report = common.guarded(PROG, argv, lambda: run(config))
    if status == 0 and not report["pretrained_wins_everywhere"] and not fv.tiny:
        return common.fail(PROG, "the pre-trained model did not beat scratch at every shot")
    return status

