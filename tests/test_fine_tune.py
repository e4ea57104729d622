"""bit_keras.fine_tune end to end on a synthetic image-folder task: Python API and CLI."""

import json
import signal
import time

import fine_tune_support as support
import numpy as np
import pytest
import tensorflow as tf

import bit_keras
from bit_keras import training
from bit_keras.cli import run_fine_tune
from bit_keras.training import finetuning


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fine_tune")
    support.write_task(str(root / "task"))
    support.write_tiny_model(str(root / "tiny.keras"))
    return root


@pytest.fixture(scope="module")
def api_run(workdir):
    import keras
    model = keras.saving.load_model(str(workdir / "tiny.keras"))
    return bit_keras.fine_tune(model, str(workdir / "task"), run_dir=str(workdir / "api"),
                               **support.RUN)


def _load_tiny(path):
    model = bit_keras.resnet_v2(num_classes=len(support.CLASSES), **support.TINY)
    return bit_keras.load_weights(model, str(path))


def test_api_loss_falls_and_accuracy_rises(api_run):
    history = api_run.history
    assert [r["step"] for r in history] == [8, 16, 24] and api_run.step == 24
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert api_run.accuracy >= 0.9  # chance is 1/3
    assert api_run.hyperparams.supports == (5, 10, 14, 19, 24)
    assert api_run.hyperparams.learning_rate == pytest.approx(0.5 * 12 / 512)


def test_run_folder_holds_metrics_summaries_and_weights(api_run, workdir):
    run_dir = workdir / "api"
    assert training.read_metrics(str(run_dir)) == api_run.history
    assert all(r["images_per_second"] > 0 and r["lr"] > 0 for r in api_run.history)
    events = [str(p) for p in (run_dir / "tensorboard").iterdir()]
    tags = set()
    for record in tf.data.TFRecordDataset(events):
        event = tf.compat.v1.Event.FromString(record.numpy())
        tags.update(v.tag for v in event.summary.value)
    assert {"accuracy", "loss", "val_loss", "lr", "images_per_second"} <= tags
    record = json.loads((run_dir / "run.json").read_text())
    assert record["supports"] == [5, 10, 14, 19, 24]
    assert record["class_names"] == sorted(support.CLASSES)  # the class subfolders, in order
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.index"))[-1] == "ckpt-24.index"
    reloaded = _load_tiny(api_run.weights_path)
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(reloaded(images), api_run.model(images), rtol=1e-5, atol=1e-6)


def test_freeze_keeps_stem_and_block1(api_run, workdir):
    initial = _load_tiny_keras(workdir / "tiny.keras")
    trained = api_run.model
    assert "root_conv" in api_run.frozen and "block1_unit01_c_conv" in api_run.frozen
    assert not any(n.startswith(("block2", "final", "head")) for n in api_run.frozen)
    for name in ("root_conv", "block1_unit01_b_conv", "block1_unit01_a_gn"):
        for a, b in zip(initial.get_layer(name).get_weights(), trained.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    for name in ("block2_unit01_a_gn", "block4_unit01_c_conv", "head"):
        assert not np.allclose(initial.get_layer(name).get_weights()[0],
                               trained.get_layer(name).get_weights()[0])


def _load_tiny_keras(path):
    import keras
    return keras.saving.load_model(str(path))


def test_cli_killed_after_checkpoint_resumes_to_the_same_weights(api_run, workdir):
    # --batch_scaling: the API's (and the official colab's) batch-scaled lr and schedule.
    args = support.cli_args(name="cli", logdir=workdir / "logs", model=workdir / "tiny.keras",
                            dataset=workdir / "task", batch_scaling=True, **support.RUN)
    run_dir = workdir / "logs" / "cli"
    first = support.cli(args)
    deadline = time.time() + 300  # generous: another pytest-xdist worker shares the cores
    while not (run_dir / "checkpoints" / "checkpoint").exists():
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert time.time() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL
    killed_at = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert int(killed_at.rsplit("-", 1)[1]) < support.RUN["steps"]
    assert not (run_dir / "weights.npz").exists()

    second = support.cli(args + ["--export"])
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    assert "Resumed from" in err and killed_at in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["step"] == support.RUN["steps"] and summary["accuracy"] >= 0.9
    resumed = _load_tiny(run_dir / "weights.npz")
    for a, b in zip(resumed.get_weights(), api_run.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert [r["step"] for r in training.read_metrics(str(run_dir))] == [8, 16, 24]
    # --export wrote both SavedModel kinds; the classifier gives the model's logits.
    images = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    loaded = tf.saved_model.load(str(run_dir / "export" / "classifier"))
    np.testing.assert_allclose(loaded(images), resumed(images), rtol=1e-4, atol=1e-5)
    assert (run_dir / "export" / "feature_vector" / "saved_model.pb").exists()
    # ... and the classifier carries the training class names run.json recorded.
    labels = [n.decode() for n in loaded.signatures["labels"]()["labels"].numpy()]
    assert labels == json.loads((run_dir / "run.json").read_text())["class_names"]
    assert labels == sorted(support.CLASSES)


def test_cli_flags_keep_the_official_train_py_meaning(workdir):
    """Without --batch_scaling, --batch leaves --base_lr and the schedule as the official
    train.py has them; --no-save (the official spelling) writes no run folder."""
    common = dict(logdir=workdir / "logs", model=workdir / "tiny.keras", dataset=workdir / "task",
                  batch=6, base_lr=0.01, resize=support.RESIZE, crop=support.CROP, eval_every=2,
                  batch_eval=5)
    official = support.cli(support.cli_args(name="official", steps=2, **common))
    out, err = official.communicate(timeout=300)
    assert official.returncode == 0, err[-3000:]
    record = json.loads((workdir / "logs" / "official" / "run.json").read_text())
    assert record["learning_rate"] == 0.01  # not 0.01 * 6 / 512
    # The official schedule (100..500 steps for a small task) stretched to --steps=2.
    assert record["supports"][-1] == 2 and record["batch"] == 6
    unsaved = support.cli(support.cli_args(name="unsaved", steps=2, **common) + ["--no-save"])
    out, err = unsaved.communicate(timeout=300)
    assert unsaved.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["step"] == 2
    assert not (workdir / "logs" / "unsaved").exists()
    refused = support.cli(support.cli_args(name="x", steps=2, **common) + ["--no-save", "--export"])
    out, err = refused.communicate(timeout=300)
    assert refused.returncode == 1
    assert "fine_tune: error: --export needs the run saved" in err


def test_batch_split_4_equals_unsplit_after_one_step():
    import keras
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (8, 32, 32, 3)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    keras.utils.set_random_seed(1)
    start = bit_keras.resnet_v2(num_classes=3, **support.TINY)
    # A non-zero head, so that the whole backbone gets gradients in the first step.
    start.get_layer("head").kernel.assign(rng.normal(0, 0.5, (start.get_layer("head").kernel.shape)))
    strategy = tf.distribute.get_strategy()
    trained = []
    for split in (1, 4):
        model = keras.models.clone_model(start)
        model.set_weights(start.get_weights())
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        step = training.make_train_step(model, optimizer, strategy, 8, batch_split=split,
                                        weight_decay=1e-3)
        loss = step(iter(tf.data.Dataset.from_tensors((images, labels)).repeat()))
        trained.append((float(loss), model.get_weights()))
    assert trained[0][0] == pytest.approx(trained[1][0], rel=1e-5)
    for before, unsplit, split in zip(start.get_weights(), trained[0][1], trained[1][1]):
        update = unsplit - before
        assert np.abs(update).max() > 0
        # Float32 sums in another order: equal to 1e-4 of the largest change of each tensor.
        np.testing.assert_allclose(split - before, update, rtol=1e-3, atol=1e-4 * np.abs(update).max())


def test_batch_split_standardizes_the_kernels_once_per_step(monkeypatch):
    # Weight standardization depends on the weights only: with micro-batches it runs once,
    # before the tf.while_loop over them, not in the loop body (once per micro-batch).
    import keras

    from bit_keras import layers
    graphs = []
    original = layers.StandardizedConv2D.standardized_kernel

    def recorded(self):
        graphs.append(tf.compat.v1.get_default_graph().name)
        return original(self)

    monkeypatch.setattr(layers.StandardizedConv2D, "standardized_kernel", recorded)
    model = bit_keras.resnet_v2(num_classes=3, **support.TINY)
    images = np.zeros((4, 32, 32, 3), np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    step = training.make_train_step(model, keras.optimizers.SGD(0.1), tf.distribute.get_strategy(),
                                    4, batch_split=2)
    step(iter(tf.data.Dataset.from_tensors((images, labels)).repeat()))
    convs = training.step.standardized_convs(model)
    assert len(convs) == sum(isinstance(l, layers.StandardizedConv2D) for l in model.layers) > 5
    assert len(graphs) == len(convs)
    assert not [g for g in graphs if "while" in g], graphs


def test_float16_loss_scaling_unscales_the_update():
    import keras
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 1, (4, 32, 32, 3)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    keras.utils.set_random_seed(2)
    start = bit_keras.resnet_v2(num_classes=3, **support.TINY)
    start.get_layer("head").kernel.assign(rng.normal(0, 0.5, start.get_layer("head").kernel.shape))
    strategy = tf.distribute.get_strategy()
    updates = {}
    # The default initial scale (2**15) overflows float16 here: that step would be skipped.
    for precision, scale in (("float32", None), ("float16", None), ("float16", 2.0 ** 8)):
        model = training.replica(start, strategy, precision)
        optimizer = keras.optimizers.SGD(0.1)
        if scale:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=scale)
        step = training.make_train_step(model, optimizer, strategy, 4)
        step(iter(tf.data.Dataset.from_tensors((images, labels)).repeat()))
        updates[precision, scale] = model.get_layer("block4_unit01_c_conv").kernel.numpy() - \
            start.get_layer("block4_unit01_c_conv").kernel.numpy()
    assert model.get_layer("block4_unit01_c_conv").compute_dtype == "float16"
    assert model.get_layer("head").compute_dtype == "float32"

    def error(a, b):
        return np.linalg.norm(updates[a] - updates[b]) / np.linalg.norm(updates[b])

    # Scaled and unscaled float16 make the same update (a skipped step would be 100% off, a
    # step left scaled 256 times too large); float16 itself is ~10% off float32 here.
    assert error(("float16", 2.0 ** 8), ("float16", None)) < 1e-2
    assert error(("float16", None), ("float32", None)) < 0.25


def test_fine_tune_is_the_top_level_function():
    assert bit_keras.fine_tune is finetuning.fine_tune
    assert bit_keras.hyperrule.hyperrule(100, 64).steps == 500
    assert bit_keras.training.train is training.train


@pytest.mark.parametrize("options, message", [
    (dict(hyperrule="fast"), "flavour must be one of ('code', 'paper'). Received: flavour='fast'"),
    (dict(precision="float8"), "precision must be one of ('float32', 'bfloat16', 'float16')"),
    (dict(strategy="gpus"), "strategy must be one of ('default', 'mirrored', 'multi_worker', 'tpu')"),
    (dict(batch=12, batch_split=5), "batch must be divisible by replicas (1) x batch_split (5)"),
    (dict(freeze=5), "freeze must be None or an int from 0 (the stem) to 4"),
    (dict(steps=0), "steps must be a positive int or None. Received: steps=0"),
])
def test_errors_name_the_argument(workdir, options, message):
    model = bit_keras.resnet_v2(num_classes=3, **support.TINY)
    with pytest.raises(ValueError) as err:
        bit_keras.fine_tune(model, str(workdir / "task"), **options)
    assert message in str(err.value)


def test_resuming_with_other_settings_is_an_error(api_run, workdir):
    with pytest.raises(ValueError, match=r"Changed: batch: 12 -> 6"):
        bit_keras.fine_tune(api_run.model, str(workdir / "task"), run_dir=str(workdir / "api"),
                            **{**support.RUN, "batch": 6})


def _flags(*argv):
    from absl import flags
    fv = flags.FlagValues()
    run_fine_tune.define_flags(fv)
    fv(["fine_tune", *argv])
    return fv


def test_cli_flag_errors_name_the_flag():
    from absl import flags
    with pytest.raises(ValueError, match=r"--dataset is required. Received: --dataset=None"):
        run_fine_tune.run_from_flags(_flags("--name=x", "--logdir=/tmp"))
    with pytest.raises(flags.IllegalFlagValueError,
                       match=r"flag --precision=float8: value should be one of <float32|bfloat16|float16>"):
        _flags("--precision=float8")
    with pytest.raises(flags.UnrecognizedFlagError, match=r"Unknown command line flag 'bach'"):
        _flags("--bach=64")


def test_cli_error_is_one_line_and_exit_status_1(workdir):
    missing = support.cli(["--name=x", f"--logdir={workdir}", f"--dataset={workdir}/nowhere",
                           f"--model={workdir}/tiny.keras"])
    _, err = missing.communicate(timeout=120)
    assert missing.returncode == 1
    errors = [line for line in err.splitlines() if line.startswith("fine_tune: error:")]
    assert len(errors) == 1 and "nowhere" in errors[0], err[-2000:]


def test_a_feature_vector_saved_model_fine_tunes_and_a_classifier_is_refused(workdir, tmp_path):
    """The resolver makes a SavedModel a model to train (issue 25): its features under a new
    head, its variables trained, the weights written as Keras weights (no official layout)."""
    from bit_keras.models import resolver
    model = _load_tiny_keras(workdir / "tiny.keras")
    features = bit_keras.export(model, tmp_path / "fv", kind="feature_vector")
    classifier = bit_keras.export(model, tmp_path / "cl", kind="classifier", labels=False)
    with pytest.raises(ValueError, match="is a classifier; a model to train needs its features"):
        bit_keras.fine_tune(classifier, str(workdir / "task"), steps=2, batch=6)
    result = bit_keras.fine_tune(features, str(workdir / "task"), run_dir=str(tmp_path / "run"),
                                 steps=2, batch=6, resize=support.RESIZE, crop=support.CROP,
                                 progress=False)
    assert result.step == 2 and result.weights_path.endswith("weights.weights.h5")
    again = training.with_head(resolver.resolve(features, trainable=True), len(support.CLASSES))
    again.load_weights(result.weights_path)
    images = np.random.default_rng(2).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(again(images), result.model(images))
    assert not np.allclose(result.model.get_layer("head").get_weights()[0], 0)
