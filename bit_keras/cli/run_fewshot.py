"""``bit-keras fewshot``: few-shot linear-probe evaluation of a BiT model.

Examples:

    bit-keras fewshot --model BiT-M-R50x1 --weights BiT-M-R50x1.npz \\
        --dataset cifar10 --image_size 128 --shots 1,5,10,25 --seeds 3 --out fewshot.json
    bit-keras fewshot --saved_model export/bit_m-r50x1_fv \\
        --dataset bit_synthetic/downstream --datadir /tmp/tfds
"""

from absl import flags

from bit_keras.cli import common, shared_flags

PROG = "fewshot"


def define_flags(fv=flags.FLAGS):
    """The command line's flags, defined on ``fv`` (the global flags by default)."""
    shared_flags.define(fv, "weights", model=None, dataset="bit_synthetic/downstream",
                        helps={"model": "A BiT name (BiT-M-R50x1), architecture (R50x1) or "
                                        "checkpoint file; its features: pre-logits.",
                               "dataset": "A TFDS name or a folder with train/ and test/ "
                                          "class subfolders."})
    flags.DEFINE_string("saved_model", None, "A feature-vector SavedModel directory, instead "
                        "of --model.", flag_values=fv)
    shared_flags.define(fv, "datadir")
    flags.DEFINE_alias("data_dir", "datadir", flag_values=fv)  # this command's first spelling
    flags.DEFINE_string("train_split", "train", "Split to draw the shots from.", flag_values=fv)
    flags.DEFINE_string("test_split", "test", "Split to measure accuracy on.", flag_values=fv)
    flags.DEFINE_list("shots", ["1", "5", "10", "25"], "Examples per class, comma-separated.",
                      flag_values=fv)
    flags.DEFINE_integer("seeds", 3, "Number of seeds (0, 1, ...).", flag_values=fv)
    flags.DEFINE_float("l2_reg", 2.0 ** 10, "L2 regularization of the linear probe.",
                       flag_values=fv)
    flags.DEFINE_integer("batch_size", 64, "Images per feature batch.", flag_values=fv)
    flags.DEFINE_integer("image_size", None, "Resize images to this square size (default: "
                         "their own size when they all share one).", flag_values=fv)
    flags.DEFINE_string("out", None, "Write the results as JSON here.", flag_values=fv)


def run(model=None, weights=None, saved_model=None, dataset="bit_synthetic/downstream",
        data_dir=None, train_split="train", test_split="test", shots=(1, 5, 10, 25), seeds=3,
        l2_reg=2.0 ** 10, batch_size=64, image_size=None, out=None):
    """What the command line does: load a model, run the linear probe, print, write JSON.

    Args:
        model, weights: a BiT name and checkpoint for ``bit_keras.load`` (features:
            pre-logits), or
        saved_model: a feature-vector SavedModel directory (``bit_keras.export``).
        The others: as for ``bit_keras.fewshot.evaluate``; ``out`` is a JSON path.

    Returns:
        The ``FewShotResult`` (its table is printed).

    Example:

    >>> bit_keras.cli.run_fewshot.run(saved_model="export/fv", dataset="bit_synthetic/downstream")
    """
    from bit_keras import fewshot
    if (model is None) == (saved_model is None):
        raise ValueError("give exactly one of model= (with weights=) and saved_model=. "
                         f"Received: model={model!r}, saved_model={saved_model!r}")
    from bit_keras.models import resolver
    name = model if saved_model is None else saved_model
    feature_fn = resolver.resolve(name, weights=weights, include_top=False,
                                  name="model" if saved_model is None else "saved_model")
    result = fewshot.evaluate(feature_fn, dataset, dataset, shots=shots, seeds=seeds,
                              l2_reg=l2_reg, batch_size=batch_size, image_size=image_size,
                              train_split=train_split, test_split=test_split, data_dir=data_dir)
    print(fewshot.format_table({f"{name} (linear probe)": result}))
    if out:
        fewshot.write_json({name: result}, out)
        print(f"wrote {out}")
    return result


def main(argv, fv=flags.FLAGS):
    """Runs ``run`` with parsed flags; prints one line per error. Returns the exit status."""

    def run_flags():
        try:
            shots = [int(k) for k in fv.shots]
        except ValueError:
            raise ValueError(f"--shots must be comma-separated ints. Received: "
                             f"{','.join(fv.shots)}") from None
        return run(model=fv.model, weights=fv.weights, saved_model=fv.saved_model,
                   dataset=fv.dataset, data_dir=fv.datadir, train_split=fv.train_split,
                   test_split=fv.test_split, shots=shots, seeds=fv.seeds, l2_reg=fv.l2_reg,
                   batch_size=fv.batch_size, image_size=fv.image_size, out=fv.out)

    return common.guarded(PROG, argv, run_flags)[0]
