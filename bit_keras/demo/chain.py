"""The whole BiT chain on one laptop, offline, in minutes: ``python -m bit_keras demo``.

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
import os
import time

import numpy as np

from bit_keras.demo import report as demo_report
from bit_keras.models import variants

# A small BiT (R14: one unit per block, 16 base channels): the demo's whole budget.
DEMO_MODEL = variants.TINY


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
        model = bit_keras.build(DEMO_MODEL, num_classes=len(synthetic.CLASSES["upstream"]))
        result = bit_keras.pretrain(
            model, up, up_test, run_dir=os.path.join(config.out, "pretrain"),
            batch=config.pretrain_batch, steps=config.pretrain_steps, base_lr=config.pretrain_lr,
            crop=size, augment="hyperrule", eval_every=max(1, config.pretrain_steps // 4),
            checkpoint_every=max(1, config.pretrain_steps // 4), seed=config.seed)
        weights_path = result.weights_path
        print(f"      upstream accuracy {result.accuracy:.1%} (chance {1 / len(synthetic.CLASSES['upstream']):.1%}); "
              f"weights: {weights_path}")
        pretrained = bit_keras.build(DEMO_MODEL, include_top=False)
        bit_keras.load_weights(pretrained, weights_path, skip_head=True)
        make_scratch = lambda: bit_keras.build(DEMO_MODEL, include_top=False)  # noqa: E731
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
    for name, make in (("pretrained", lambda: _copy(weights_path, real, config)),
                       ("scratch", make_scratch)):
        tune[name] = fewshot.evaluate(None, train_data, test_data, shots=config.shots,
                                      seeds=config.finetune_seeds, image_size=image_size,
                                      fit_fn=_fine_tune_fn(make, config, image_size))
    results = {"linear_probe": probe, "fine_tune": tune}
    report = demo_report.report(results, config, time.time() - start, how)
    print(report["text"])
    return report


def _copy(weights_path, real, config):
    import bit_keras
    if real:
        return bit_keras.load(config.model, weights=weights_path, include_top=False)
    model = bit_keras.build(DEMO_MODEL, include_top=False)
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
