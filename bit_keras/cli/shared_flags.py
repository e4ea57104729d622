"""The flags the commands share, declared once: the run folder, the data, the model, the run
settings (``bit_keras.training.RunSettings``) and the options several recipes take.

A command names the shared flags it takes (with its own defaults, and its own help where
its meaning is narrower) and declares only what is its own:

>>> shared_flags.define(fv, "name", "logdir", "dataset", batch=512, checkpoint_every=500)
"""

import dataclasses
import os

from absl import flags

# name: (kind, help). The run settings carry RunSettings' field names.
FLAGS = {
    "name": ("string", "Run name: the run folder is <logdir>/<name>."),
    "logdir": ("string", "Where run folders go."),
    "dataset": ("string", "Folder of class subfolders (or train/ and test/), or a TFDS name."),
    "eval_dataset": ("string", "Held-out data for accuracy (a folder: its test/ subfolder if "
                               "it has one, else its class subfolders)."),
    "datadir": ("string", "TFDS data_dir (default ~/tensorflow_datasets)."),
    "tfds_manual_dir": ("string", "Where a manually downloaded TFDS dataset's files are "
                                  "(ImageNet's tars), to prepare it."),
    "model": ("string", "A bit_keras.VARIANTS name, an R50x1-style architecture (with "
                        "--weights), a checkpoint file, a .keras file or a SavedModel folder."),
    "weights": ("string", "Checkpoint (.npz/.h5/.safetensors) of a variant or architecture; "
                          "default <bit_pretrained_dir>/<model>.npz if it exists, else the "
                          "cache or a download."),
    "bit_pretrained_dir": ("string", "Folder of official BiT checkpoints."),
    "batch": ("integer", "Global batch size."),
    "batch_split": ("integer", "Micro-batches per batch (saves memory)."),
    "precision": ("precision", "Compute precision."),
    "strategy": ("strategy", "tf.distribute strategy."),
    "seed": ("integer", "Augmentation seed."),
    "eval_every": ("integer", "Steps between evaluations."),
    "checkpoint_every": ("integer", "Steps between checkpoints."),
    "jit_compile": ("xla", "XLA-compile the training and evaluation steps: auto (where a GPU "
                           "or TPU is visible), true or false."),
    "steps_per_execution": ("integer", "Optimizer updates per call from the host."),
    "remat": ("boolean", "Recompute each residual unit in the backward pass: less memory, "
                         "about one more forward pass of time."),
    "data_service": ("string", "host:port of a tf.data service dispatcher whose workers make "
                               "the training batches (bit-keras data_service)."),
    "steps": ("integer", "Total steps (default: the recipe's)."),
    "epochs": ("float", "Epochs (default: the recipe's)."),
    "base_lr": ("float", "Learning rate."),
    "weight_decay": ("float", "Weight decay on kernels."),
    "warmup_steps": ("integer", "Warmup steps (default: the recipe's)."),
    "hyperrule": ("hyperrule", "BiT-HyperRule flavour."),
    "crop": ("integer", "Training crop side."),
    "resize": ("integer", "Resize side for --augment=hyperrule (default crop * 9 / 8)."),
    "augment": ("augment", "Training crops: inception-style, or resize and crop."),
    "mixup_alpha": ("float", "MixUp alpha (0: none)."),
}


# --jit_compile's words for RunSettings.jit_compile.
XLA = {"auto": None, "true": True, "false": False}
# Shared flags added to every command that takes --batch_split (the training commands).
SPEED = ("jit_compile", "steps_per_execution", "remat")

# Defaults where neither the command nor RunSettings gives one.
DEFAULTS = {"strategy": "default", "hyperrule": "code", "bit_pretrained_dir": ".",
            "augment": "inception"}


def _enums():
    from bit_keras import training
    from bit_keras.data import augment
    from bit_keras.training import hyperrule
    return {"precision": tuple(training.PRECISIONS), "strategy": training.STRATEGIES,
            "hyperrule": hyperrule.FLAVOURS, "augment": augment.AUGMENTATIONS,
            "xla": tuple(XLA)}


def define(fv, *names, helps=None, **defaults):
    """Declares the shared flags ``names`` and ``defaults``' keys (their defaults) on ``fv``;
    ``helps`` overrides a help text where a command narrows a flag's meaning."""
    from bit_keras import training

    known = {**{f.name: f.default for f in dataclasses.fields(training.RunSettings)},
             **DEFAULTS, "jit_compile": "auto", **defaults}
    enums = _enums()
    speed = SPEED if "batch_split" in (*names, *defaults) else ()
    for name in (*names, *defaults, *speed):
        kind, text = FLAGS[name]
        text = (helps or {}).get(name, text)
        default = known.get(name)
        if kind in enums:
            flags.DEFINE_enum(name, default, enums[kind], text, flag_values=fv)
        else:
            getattr(flags, f"DEFINE_{kind}")(name, default, text, flag_values=fv)


def run_settings(fv, save=True):
    """The ``RunSettings`` options of the parsed flags that the command declared, as keyword
    arguments, with the strategy made first (before any other TensorFlow work) and
    ``run_dir`` from ``--logdir``/``--name`` (None when not ``save``)."""
    from bit_keras import training

    options = {f.name: fv[f.name].value for f in dataclasses.fields(training.RunSettings)
               if f.name in fv}
    if "jit_compile" in options:
        options["jit_compile"] = XLA[options["jit_compile"]]
    options["strategy"] = training.make_strategy(fv.strategy)
    if "logdir" in fv:
        options["run_dir"] = os.path.join(fv.logdir, fv.name) if save else None
    return options


def model(fv, name="model", weights="weights"):
    """The model to train that ``--<name>`` names (``bit_keras.models.resolver.resolve``;
    a SavedModel: its features, trainable), without its head: the data decides the head."""
    from bit_keras.models import resolver
    return resolver.resolve(fv[name].value, fv[weights].value, fv.bit_pretrained_dir,
                            include_top=False, trainable=True, name=f"--{name}")
