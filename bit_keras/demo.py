"""The whole BiT chain on one laptop, offline, in minutes: ``python -m bit_keras.demo``.

1. draws the synthetic ``bit_synthetic`` task (168 upstream classes, 24 disjoint downstream
   classes made of the same shapes, textures and colours);
2. pre-trains a small BiT upstream (``bit_keras.pretrain``) and saves the official ``.npz``;
3. exports a feature-vector SavedModel (``bit_keras.export``) and reloads it as a downstream
   user would, through ``hub.KerasLayer`` (or ``bit_keras.SavedModelLayer`` without tf-keras);
4. measures 1/5/10-shot transfer to the downstream classes by linear probe and by
   BiT-HyperRule fine-tuning, against the same architecture trained from scratch;
5. prints one table and writes it as ``results.json`` and ``fewshot.png``.

With ``--weights BiT-M-R50x1.npz --model BiT-M-R50x1 --dataset cifar10`` it skips steps 1-2
and runs the transfer part on real inputs.
"""

import dataclasses
import json
import os
import sys
import time

import numpy as np
from absl import flags
from absl import logging

# A small BiT (R14: one unit per block, 16 base channels): the demo's whole budget.
DEMO_ARCH = dict(units=(1, 1, 1, 1), width=1, base_filters=16, groups=8)


@dataclasses.dataclass
class DemoConfig:
    """Everything that fixes the demo's numbers (defaults: the README's main job)."""

    out: str = "demo_out"
    image_size: int = 32
    upstream_per_class: int = 50
    downstream_train_per_class: int = 20
    downstream_test_per_class: int = 20
    pretrain_steps: int = 1000
    pretrain_batch: int = 64
    pretrain_lr: float = 0.3  # at batch 256; short runs want more than the paper's 0.03
    shots: tuple = (1, 5, 10)
    probe_seeds: int = 3
    finetune_seeds: int = 1
    finetune_steps: int = 100
    finetune_batch: int = 32
    finetune_lr: float = 0.1  # at batch 512, HyperRule scaling; the paper's 0.003 needs 500+ steps
    seed: int = 0
    weights: str | None = None
    model: str | None = None
    dataset: str | None = None

    @classmethod
    def tiny(cls, **overrides):
        """A reduced demo for CI: the same steps, minutes shrunk to seconds."""
        return cls(**{**dict(upstream_per_class=4, downstream_train_per_class=5,
                             downstream_test_per_class=4, pretrain_steps=30, pretrain_batch=32,
                             shots=(1, 5), probe_seeds=2, finetune_steps=8, finetune_batch=16),
                      **overrides})


def say(step, total, text):
    print(f"[{step}/{total}] {text}", flush=True)


def run(config=None):
    """Runs the demo and returns its results as a dict (also written to ``results.json``).

    Example:

    >>> results = bit_keras.demo.run(bit_keras.demo.DemoConfig(out="demo_out"))
    >>> results["table"]["linear_probe"]["pretrained"]["5"]
    """
    import keras

    import bit_keras
    from bit_keras import fewshot

    config = config or DemoConfig()
    os.makedirs(config.out, exist_ok=True)
    start = time.time()
    keras.utils.set_random_seed(config.seed)
    real = config.weights is not None
    total = 5 if real else 6
    step = 1
    if real:
        if not (config.model and config.dataset):
            raise ValueError("--weights needs --model (its architecture) and --dataset")
        say(step, total, f"Loading {config.model} from {config.weights}")
        pretrained = bit_keras.load(config.model, weights=config.weights, include_top=False)
        make_scratch = lambda: bit_keras.build(config.model, include_top=False)  # noqa: E731
        train_data = test_data = config.dataset
        weights_path = config.weights
        image_size = 128
    else:
        import bit_keras.datasets as synthetic
        say(step, total, "Drawing the synthetic task (168 upstream, 24 downstream classes)")
        size = config.image_size
        up = synthetic.generate("upstream", "train", config.upstream_per_class, size, config.seed)
        up_test = synthetic.generate("upstream", "test", 5, size, config.seed)
        train_data = synthetic.generate("downstream", "train", config.downstream_train_per_class,
                                        size, config.seed)
        test_data = synthetic.generate("downstream", "test", config.downstream_test_per_class,
                                       size, config.seed)
        image_size = size
        step += 1
        say(step, total, f"Pre-training a small BiT (R14) upstream for {config.pretrain_steps} steps")
        model = bit_keras.resnet_v2(num_classes=len(synthetic.CLASSES["upstream"]), **DEMO_ARCH)
        result = bit_keras.pretrain(
            model, up, up_test, run_dir=os.path.join(config.out, "pretrain"),
            batch=config.pretrain_batch, steps=config.pretrain_steps, base_lr=config.pretrain_lr,
            crop=size, augment="hyperrule", eval_every=max(1, config.pretrain_steps // 4),
            checkpoint_every=max(1, config.pretrain_steps // 4), seed=config.seed)
        weights_path = result.weights_path
        print(f"      upstream accuracy {result.accuracy:.1%} (chance {1 / len(synthetic.CLASSES['upstream']):.1%}); "
              f"weights: {weights_path}")
        pretrained = bit_keras.resnet_v2(include_top=False, **DEMO_ARCH)
        bit_keras.load_weights(pretrained, weights_path, skip_head=True)
        make_scratch = lambda: bit_keras.resnet_v2(include_top=False, **DEMO_ARCH)  # noqa: E731
    step += 1
    export_dir = os.path.join(config.out, "export", "feature_vector")
    say(step, total, f"Exporting a feature-vector SavedModel to {export_dir}")
    bit_keras.export(pretrained, export_dir, kind="feature_vector", overwrite=True,
                     image_size=image_size)
    step += 1
    hub_features, how = _reload_as_downstream_user(export_dir)
    say(step, total, f"Reloaded it with {how}; few-shot linear probe ({config.probe_seeds} seeds)")
    probe_kw = dict(shots=config.shots, seeds=config.probe_seeds, image_size=image_size)
    keras.utils.set_random_seed(config.seed)
    scratch = make_scratch()
    probe = {"pretrained": fewshot.evaluate(hub_features, train_data, test_data, **probe_kw),
             "scratch": fewshot.evaluate(scratch, train_data, test_data, **probe_kw)}
    step += 1
    say(step, total, f"Few-shot BiT-HyperRule fine-tuning ({config.finetune_seeds} seed(s), "
                     f"{config.finetune_steps} steps each)")
    tune = {}
    for name, make in (("pretrained", lambda: _copy(pretrained, weights_path, real, config)),
                       ("scratch", make_scratch)):
        tune[name] = fewshot.evaluate(None, train_data, test_data, shots=config.shots,
                                      seeds=config.finetune_seeds, image_size=image_size,
                                      fit_fn=_fine_tune_fn(make, config, image_size))
    results = {"linear_probe": probe, "fine_tune": tune}
    report = _report(results, config, time.time() - start, how)
    print(report["text"])
    return report


def _copy(pretrained, weights_path, real, config):
    import bit_keras
    if real:
        return bit_keras.load(config.model, weights=weights_path, include_top=False)
    model = bit_keras.resnet_v2(include_top=False, **DEMO_ARCH)
    return bit_keras.load_weights(model, weights_path, skip_head=True)


def _fine_tune_fn(make_model, config, image_size):
    import bit_keras

    def hyperrule_fine_tune(images, labels, num_classes, seed):
        result = bit_keras.fine_tune(
            make_model(), (images, labels), batch=min(config.finetune_batch, len(labels)),
            steps=config.finetune_steps, base_lr=config.finetune_lr,
            resize=image_size * 9 // 8, crop=image_size, seed=seed, progress=False)
        return lambda x: np.asarray(result.model(x, training=False))

    return hyperrule_fine_tune


def _reload_as_downstream_user(path):
    """The exported model as a feature function, the way a TF Hub user loads it."""
    try:
        import tensorflow_hub as hub
        layer = hub.KerasLayer(path)
        return (lambda x: np.asarray(layer(x))), "hub.KerasLayer"
    except ImportError:
        import bit_keras
        layer = bit_keras.SavedModelLayer(path)
        return (lambda x: np.asarray(layer(x))), "bit_keras.SavedModelLayer (no tensorflow_hub)"


def _report(results, config, seconds, how):
    from bit_keras import fewshot
    table = {method: {name: {str(k): r.mean(k) for k in config.shots} for name, r in rows.items()}
             for method, rows in results.items()}
    text = ["", "Few-shot accuracy on the downstream classes (mean over seeds):", ""]
    for method, rows in results.items():
        text.append(f"{method}:")
        text.append(fewshot.format_table(rows))
        text.append("")
    wins = all(table[m]["pretrained"][k] > table[m]["scratch"][k] for m in table for k in table[m]["pretrained"])
    text.append(f"Pre-trained above scratch at every shot: {'yes' if wins else 'NO'}. "
                f"Features reloaded through {how}. {seconds / 60:.1f} minutes.")
    report = {"table": table, "pretrained_wins_everywhere": wins, "seconds": seconds,
              "config": {k: v for k, v in dataclasses.asdict(config).items()},
              "details": {m: {n: r.to_dict() for n, r in rows.items()} for m, rows in results.items()}}
    path = os.path.join(config.out, "results.json")
    with open(path + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(path + ".tmp", path)
    plot = _plot(table, config, results["linear_probe"]["pretrained"].num_classes)
    text.append(f"Wrote {path}" + (f" and {plot}" if plot else ""))
    report["text"] = "\n".join(text)
    return report


def _plot(table, config, num_classes):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = {"linear_probe": "-", "fine_tune": "--"}
    colours = {"pretrained": "tab:blue", "scratch": "tab:grey"}
    for method, rows in table.items():
        for name, accs in rows.items():
            shots = [int(k) for k in accs]
            ax.plot(shots, [100 * a for a in accs.values()], styles[method], marker="o",
                    color=colours[name], label=f"{name}, {method.replace('_', ' ')}")
    chance = 100 / num_classes
    ax.axhline(chance, color="black", linestyle=":", linewidth=1, label=f"chance ({chance:.1f}%)")
    ax.set_xlabel("examples per class")
    ax.set_ylabel("downstream accuracy (%)")
    ax.set_xticks(list(config.shots))
    ax.set_title("BiT transfer: pre-trained vs from scratch")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(config.out, "fewshot.png")
    fig.savefig(path + ".tmp.png", dpi=100)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
    return path


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


def main(argv):
    if len(argv) > 1:
        sys.exit(f"demo: error: unexpected arguments {argv[1:]}; all options are --flags")
    fv = flags.FLAGS
    if not fv.verbose:  # the numbered steps are the demo's progress; library logs are noise here
        logging.set_verbosity(logging.ERROR)
    overrides = {k: fv[k].value for k in ("out", "seed", "weights", "model", "dataset",
                                           "pretrain_steps", "finetune_steps")
                 if fv[k].value is not None}
    config = DemoConfig.tiny(**overrides) if fv.tiny else DemoConfig(**overrides)
    try:
        report = run(config)
    except (ValueError, FileNotFoundError, OSError) as e:
        sys.exit(f"demo: error: {e}")
    if not report["pretrained_wins_everywhere"] and not fv.tiny:
        sys.exit(1)


if __name__ == "__main__":
    from absl import app
    define_flags()
    app.run(main)
