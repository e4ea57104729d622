"""``bit-keras fine_tune``: BiT-HyperRule fine-tuning from the command line.

The flags of the official ``train.py`` (``--model``, ``--dataset``, ``--logdir``, ``--name``,
``--batch``, ``--batch_split``, ``--base_lr``, ``--bit_pretrained_dir``, ...) over
``bit_keras.fine_tune``. Example:

    bit-keras fine_tune --model=BiT-M-R50x1 --weights=BiT-M-R50x1.npz \\
        --dataset=flowers/ --logdir=runs --name=flowers --batch=64 --examples_per_class=10
"""

import os

from absl import flags

from bit_keras import training
from bit_keras.cli import common
from bit_keras.training import finetuning, hyperrule

PROG = "fine_tune"


def define_flags(fv=flags.FLAGS):
    """The command's flags: the official BiT ones plus bit_keras' additions."""
    flags.DEFINE_string("name", None, "Run name: the run folder is <logdir>/<name>.", flag_values=fv)
    flags.DEFINE_string("logdir", None, "Where run folders go.", flag_values=fv)
    flags.DEFINE_string("model", "BiT-M-R50x1", "A bit_keras.VARIANTS name, an R50x1-style "
                        "architecture (with --weights), or a saved .keras model file.", flag_values=fv)
    flags.DEFINE_string("weights", None, "Checkpoint (.npz/.h5/.safetensors); default "
                        "<bit_pretrained_dir>/<model>.npz if it exists, else the cache or a "
                        "download.", flag_values=fv)
    flags.DEFINE_string("bit_pretrained_dir", ".", "Folder of official BiT checkpoints.", flag_values=fv)
    flags.DEFINE_string("dataset", None, "Folder of class subfolders (or train/ and test/), or a "
                        "TFDS name.", flag_values=fv)
    flags.DEFINE_string("datadir", None, "TFDS data_dir (default ~/tensorflow_datasets).",
                        flag_values=fv)
    flags.DEFINE_string("tfds_manual_dir", None, "Where a manually downloaded TFDS dataset's "
                        "files are (ImageNet's tars), to prepare it.", flag_values=fv)
    flags.DEFINE_string("data_service", None, "host:port of a tf.data service dispatcher whose "
                        "workers make the training batches (bit-keras data_service).",
                        flag_values=fv)
    flags.DEFINE_string("eval_dataset", None, "Evaluation data (default: the test split).", flag_values=fv)
    flags.DEFINE_integer("examples_per_class", None, "Few-shot: images per class.", flag_values=fv)
    flags.DEFINE_integer("examples_per_class_seed", 0, "Seed of the few-shot draw.", flag_values=fv)
    flags.DEFINE_integer("batch", 512, "Global batch size.", flag_values=fv)
    flags.DEFINE_integer("batch_split", 1, "Micro-batches per batch (saves memory).", flag_values=fv)
    flags.DEFINE_float("base_lr", hyperrule.BASE_LR, "Learning rate (at batch 512 with "
                       "--batch_scaling).", flag_values=fv)
    flags.DEFINE_bool("batch_scaling", False, "Scale lr by batch/512 and steps by 512/batch, as "
                      "the official colab and bit_keras.fine_tune do. Default off: --batch, "
                      "--base_lr and the schedule mean what they mean in the official train.py.",
                      flag_values=fv)
    flags.DEFINE_integer("batch_eval", 32, "Evaluation batch size (official train.py).",
                         flag_values=fv)
    flags.DEFINE_bool("save", True, "Write checkpoints and weights; --nosave (or the official "
                      "--no-save) writes no run folder at all: nothing to resume.", flag_values=fv)
    flags.DEFINE_integer("eval_every", None, "Steps between evaluations.", flag_values=fv)
    flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.", flag_values=fv)
    flags.DEFINE_enum("hyperrule", "code", hyperrule.FLAVOURS, "BiT-HyperRule flavour.", flag_values=fv)
    flags.DEFINE_enum("precision", "float32", tuple(training.PRECISIONS), "Compute precision.", flag_values=fv)
    flags.DEFINE_enum("strategy", "default", training.STRATEGIES, "tf.distribute strategy.", flag_values=fv)
    flags.DEFINE_integer("steps", None, "Total steps (default: the HyperRule's).", flag_values=fv)
    flags.DEFINE_integer("resize", None, "Override the HyperRule resize side.", flag_values=fv)
    flags.DEFINE_integer("crop", None, "Override the HyperRule crop side.", flag_values=fv)
    flags.DEFINE_float("mixup_alpha", None, "Override the HyperRule MixUp alpha.", flag_values=fv)
    flags.DEFINE_integer("freeze", None, "Freeze the stem (0) and blocks 1..k.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Augmentation seed.", flag_values=fv)
    flags.DEFINE_bool("export", False, "Also export feature_vector and classifier SavedModels "
                      "into <run>/export/.", flag_values=fv)


def run_from_flags(fv=flags.FLAGS):
    """Runs ``fine_tune`` with the options of parsed flags; returns its result."""
    common.require(fv, "name", "logdir", "dataset")
    strategy = training.make_strategy(fv.strategy)  # before any other TensorFlow work
    model = load_model(fv.model, fv.weights, fv.bit_pretrained_dir)
    if not fv.save and fv.export:
        raise ValueError("--export needs the run saved; drop --no-save (or --nosave)")
    run_dir = os.path.join(fv.logdir, fv.name) if fv.save else None
    from bit_keras import data
    train_data, eval_data = common.data_specs(fv, data)
    result = finetuning.fine_tune(
        model, train_data, eval_data, run_dir=run_dir, hyperrule=fv.hyperrule,
        batch=fv.batch, batch_split=fv.batch_split, base_lr=fv.base_lr, steps=fv.steps,
        resize=fv.resize, crop=fv.crop, mixup_alpha=fv.mixup_alpha,
        examples_per_class=fv.examples_per_class,
        examples_per_class_seed=fv.examples_per_class_seed, seed=fv.seed,
        precision=fv.precision, strategy=strategy, freeze=fv.freeze, eval_every=fv.eval_every,
        checkpoint_every=fv.checkpoint_every, data_service=fv.data_service,
        batch_scaling=fv.batch_scaling, eval_batch=fv.batch_eval)
    if fv.export and result.weights_path is not None:
        finetuning.export_run(result.model, run_dir)
    return result


def load_model(name, weights, pretrained_dir):
    """``--model``: a ``.keras`` file, or a variant name or architecture whose weights come
    from ``weights``, ``<pretrained_dir>/<name>.npz`` (or ``.h5``), the cache or a download;
    without its head (the data decides the head)."""
    import keras

    import bit_keras

    if name.endswith(".keras"):
        if not os.path.isfile(name):
            raise FileNotFoundError(f"--model file does not exist. Received: --model={name!r}")
        return keras.saving.load_model(name, compile=False)
    if weights is None:
        for ext in (".npz", ".h5"):
            candidate = os.path.join(pretrained_dir, name + ext)
            weights = candidate if os.path.isfile(candidate) else weights
    # The head is replaced to fit the data: keep it out of the load.
    return bit_keras.load(name, weights=weights, include_top=False)


def main(argv, fv=flags.FLAGS):
    """``bit-keras fine_tune``: a JSON summary, or one error line and status 1."""
    return common.training_main(PROG, argv, lambda: run_from_flags(fv))
