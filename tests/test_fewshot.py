"""Few-shot evaluation: the linear probe against NumPy least squares, sampling, the
``fit_fn`` hook, models and SavedModels as feature functions, the table, JSON and CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY

import bit_keras
from bit_keras import fewshot
from bit_keras.fewshot import linear_probe

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _clusters(num_classes, per_class, dim, spread, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (num_classes, dim))
    labels = np.repeat(np.arange(num_classes), per_class)
    return centres[labels] + spread * rng.normal(0, 1, (len(labels), dim)), labels


def _numpy_least_squares(features, labels, l2_reg):
    """The probe written out directly: whiten, bias column, solve the normal equations."""
    x = (features - features.mean(0)) / (features.std(0) + 1e-5)
    x = np.concatenate([x, np.full((len(x), 1), 100.0)], axis=1)
    classes = np.unique(labels)
    y = np.where(labels[:, None] == classes[None, :], 1.0, -1.0)
    return np.linalg.solve(x.T @ x + l2_reg * np.eye(x.shape[1]), x.T @ y)


@pytest.mark.parametrize("per_class,dim", [(20, 8), (3, 50)])  # N >= D and N < D branches
@pytest.mark.parametrize("l2_reg", [2.0 ** 10, 0.5])
def test_probe_equals_numpy_least_squares(per_class, dim, l2_reg):
    features, labels = _clusters(4, per_class, dim, spread=3.0, seed=dim)
    labels = labels * 3 + 7  # label values need not be 0..C-1
    probe = linear_probe.fit_linear_probe(features, labels, l2_reg)
    expected = _numpy_least_squares(features, labels, l2_reg)
    np.testing.assert_allclose(probe.weights, expected, rtol=1e-7, atol=1e-9)
    test, _ = _clusters(4, 5, dim, spread=3.0, seed=99)
    x = (test - features.mean(0)) / (features.std(0) + 1e-5)
    scores = np.concatenate([x, np.full((len(x), 1), 100.0)], axis=1) @ expected
    np.testing.assert_allclose(probe.scores(test), scores, rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(probe.predict(test), np.unique(labels)[scores.argmax(1)])


def test_probe_is_perfect_on_separable_features():
    train_f, train_y = _clusters(10, 30, 64, spread=0.05, seed=0)
    test_f, test_y = _clusters(10, 30, 64, spread=0.05, seed=0)
    test_f = test_f + np.random.default_rng(1).normal(0, 0.05, test_f.shape)
    result = fewshot.evaluate_features(train_f, train_y, test_f, test_y, shots=(1, 5, 25),
                                       seeds=3)
    assert result.accuracies == {1: [1.0] * 3, 5: [1.0] * 3, 25: [1.0] * 3}
    # Random labels on the same features: no better than chance (10%) by a wide margin.
    shuffled = np.random.default_rng(2).permutation(test_y)
    noise = fewshot.evaluate_features(train_f, train_y, test_f, shuffled, shots=(5,), seeds=3)
    assert noise.mean(5) < 0.3


def test_sample_shots_is_seeded_nested_and_balanced():
    labels = np.repeat([4, 1, 9], [7, 5, 6])
    a = fewshot.sample_shots(labels, 3, seed=5)
    assert np.array_equal(a, fewshot.sample_shots(labels, 3, seed=5))
    assert not np.array_equal(a, fewshot.sample_shots(labels, 3, seed=6))
    assert sorted(np.bincount(labels[a]).tolist()) == [0] * 7 + [3, 3, 3]
    one = fewshot.sample_shots(labels, 1, seed=5)
    assert set(one) <= set(a)  # the 1-shot set of a seed lies inside its 3-shot set
    with pytest.raises(ValueError, match="class 1 has 5"):
        fewshot.sample_shots(labels, 6, seed=0)


def test_evaluate_features_repeats_the_probe_per_seed():
    train_f, train_y = _clusters(5, 12, 16, spread=2.0, seed=3)
    test_f, test_y = _clusters(5, 12, 16, spread=2.0, seed=4)
    result = fewshot.evaluate_features(train_f, train_y, test_f, test_y, shots=[2, 4],
                                       seeds=[3, 8], l2_reg=4.0)
    for s, seed in enumerate([3, 8]):
        idx = fewshot.sample_shots(train_y, 4, seed)
        probe = linear_probe.fit_linear_probe(train_f[idx], train_y[idx], 4.0)
        assert result.accuracies[4][s] == np.mean(probe.predict(test_f) == test_y)
    assert result.mean(2) == pytest.approx(np.mean(result.accuracies[2]))
    assert result.std(2) == pytest.approx(np.std(result.accuracies[2]))


@pytest.mark.parametrize("call,message", [
    (lambda f, y: linear_probe.fit_linear_probe(f, y, l2_reg=0), "l2_reg must be a finite number > 0"),
    (lambda f, y: linear_probe.fit_linear_probe(f, y[:-1]), "labels must be 20 integers"),
    (lambda f, y: linear_probe.fit_linear_probe(f[0], y), "features must be a non-empty"),
    (lambda f, y: linear_probe.fit_linear_probe(f * np.nan, y), "features must be finite"),
    (lambda f, y: fewshot.evaluate_features(f, y, f, y + 1), r"test labels \[2\]"),
    (lambda f, y: fewshot.evaluate_features(f, y, f[:, :3], y), "as many columns"),
    (lambda f, y: fewshot.evaluate_features(f, y, f, y, shots=[0]), "shots must be positive"),
    (lambda f, y: fewshot.evaluate_features(f, y, f, y, seeds=[1, 1]), "distinct ints"),
    (lambda f, y: fewshot.evaluate_features(f, y, f, y, seeds=[-1]), "non-negative"),
    (lambda f, y: fewshot.evaluate_features(f, y, f, y, shots=[11]), "class 0 has 10"),
])
def test_errors_name_the_argument(call, message):
    features, labels = _clusters(2, 10, 4, spread=1.0, seed=0)
    with pytest.raises(ValueError, match=message):
        call(features, labels)


def _tiny_data(seed):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (24, 32, 32, 3)).astype(np.float32)
    return images, np.repeat(np.arange(3), 8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny BiT with a head and its feature-vector SavedModel (one export per module)."""
    model = bit_keras.resnet_v2(num_classes=3, **TINY)
    path = bit_keras.export(model, str(tmp_path_factory.mktemp("export") / "fv"),
                            kind="feature_vector")
    return model, path


def test_keras_model_and_saved_model_give_the_probe_on_pre_logits(exported):
    import tensorflow as tf
    model, path = exported
    train, test = _tiny_data(0), _tiny_data(1)
    pre_logits = bit_keras.feature_extractor(model, ["pre_logits"])
    expected = fewshot.evaluate_features(
        pre_logits(train[0])["pre_logits"].numpy(), train[1],
        pre_logits(test[0])["pre_logits"].numpy(), test[1], shots=(1, 4), seeds=2)
    result = fewshot.evaluate(model, train, test, shots=(1, 4), seeds=2, batch_size=10)
    assert result.accuracies == expected.accuracies
    assert (result.num_classes, result.num_test, result.settings["image_size"]) == (3, 24, 32)
    reloaded = fewshot.evaluate(tf.saved_model.load(path), train, test, shots=(1, 4), seeds=2)
    assert reloaded.accuracies == expected.accuracies


def test_fit_fn_hook_gets_the_shots_and_is_scored_on_the_test_set():
    train, test = _tiny_data(0), _tiny_data(1)
    train = (train[0], train[1] + 5)  # labels 5, 6, 7: the hook sees 0, 1, 2
    test = (test[0], test[1] + 5)
    truth = {img.tobytes(): label - 5 for img, label in zip(test[0], test[1])}
    calls = []

    def oracle(images, labels, num_classes, seed):
        calls.append((len(images), images.shape[1:], sorted(labels.tolist()), num_classes, seed))
        return lambda batch: np.eye(3)[[truth[img.tobytes()] for img in batch]]

    result = fewshot.evaluate(None, train, test, shots=(1, 2), seeds=2, fit_fn=oracle)
    assert result.accuracies == {1: [1.0, 1.0], 2: [1.0, 1.0]}
    assert result.method == "oracle"
    assert calls == [(3, (32, 32, 3), [0, 1, 2], 3, 0), (6, (32, 32, 3), [0, 0, 1, 1, 2, 2], 3, 0),
                     (3, (32, 32, 3), [0, 1, 2], 3, 1), (6, (32, 32, 3), [0, 0, 1, 1, 2, 2], 3, 1)]
    always_two = fewshot.evaluate(None, train, test, shots=1, seeds=1,
                                  fit_fn=lambda *a: (lambda b: np.tile([0, 0, 1], (len(b), 1))))
    assert always_two.accuracies == {1: [pytest.approx(1 / 3)]}


def test_table_and_json(tmp_path):
    a = fewshot.FewShotResult("linear_probe", {1: [0.5, 0.7], 5: [0.9, 0.9]}, [0, 1], 4, 100)
    b = fewshot.FewShotResult("hyperrule", {1: [0.25, 0.25]}, [0, 1], 4, 100)
    table = fewshot.format_table({"pre-trained": a, "scratch": b})
    assert table.splitlines()[:4] == ["| shots | pre-trained | scratch |", "|---:|---:|---:|",
                                      "| 1 | 60.0 ± 10.0 | 25.0 ± 0.0 |", "| 5 | 90.0 ± 0.0 | - |"]
    path = fewshot.write_json({"pre-trained": a}, tmp_path / "sub" / "r.json")
    saved = json.loads(open(path).read())
    assert saved["pre-trained"]["shots"]["1"] == {"mean": 0.6, "std": pytest.approx(0.1),
                                                   "per_seed": [0.5, 0.7]}
    assert os.listdir(tmp_path / "sub") == ["r.json"]  # no temporary file left behind
    with pytest.raises(TypeError, match="results must be a FewShotResult"):
        fewshot.format_table([a])


def test_command_line_on_a_saved_model_and_the_synthetic_dataset(exported, tmp_path):
    _, path = exported
    out = tmp_path / "fewshot.json"
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "bit_keras", "fewshot", "--saved_model", path,
         "--dataset", "bit_synthetic/tiny_downstream", "--data_dir", str(tmp_path / "tfds"),
         "--shots", "1,2", "--seeds", "2", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| 1 |" in done.stdout and "24 classes, 48 test images" in done.stdout
    saved = json.loads(out.read_text())[path]
    assert saved["num_classes"] == 24 and len(saved["shots"]["2"]["per_seed"]) == 2


@pytest.mark.parametrize("argv,message", [
    (["--saved_model", "x", "--model", "R50x1"], "fewshot: error: give exactly one of model="),
    (["--saved_model", "x", "--shots", "1,a"], "fewshot: error: --shots must be comma-separated ints"),
    (["--saved_model", "/nonexistent/fv"], "fewshot: error: "),
])
def test_command_line_errors_are_one_line(argv, message, capsys):
    from absl import flags

    from bit_keras.cli import run_fewshot as fewshot_cli
    fv = flags.FlagValues()
    fewshot_cli.define_flags(fv)
    fv(["fewshot", *argv])
    assert fewshot_cli.main(["fewshot"], fv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
