"""Few-shot transfer evaluation: K images per class, several seeds, a table of accuracies.

Two protocols share the sampling, the seeds and the report:

- the linear probe of big_vision's few-shot evaluator (``bit_keras.fewshot.linear_probe``) on
  frozen pre-logits features, the default;
- any training procedure passed as ``fit_fn``, for example the paper's (arXiv 1912.11370,
  section 4.2): BiT-HyperRule fine-tuning of the whole network on the K-shot set.

Shots are drawn as big_vision draws them: for each seed, one random permutation of every
class's examples; the first K of it are the K-shot set, so the 5 shots of a seed contain
its 1 shot. Command line: ``bit-keras fewshot --help`` (``bit_keras/cli/run_fewshot.py``).
"""

import numpy as np
from absl import logging

from bit_keras.fewshot import linear_probe
from bit_keras.fewshot.report import FewShotResult
from bit_keras.utils import checks

DEFAULT_SHOTS = (1, 5, 10, 25)
DEFAULT_SEEDS = 3  # big_vision's num_seeds


def sample_shots(labels, shots, seed):
    """Indices of ``shots`` examples of every class in ``labels``, drawn by ``seed``.

    Args:
        labels: ``[N]`` integer labels; every distinct value is a class.
        shots: K, a positive int.
        seed: a non-negative int; the K-shot sets of one seed are nested across K.

    Returns:
        int64 indices, K per class, classes in sorted order.

    Example:

    >>> bit_keras.fewshot.sample_shots(np.array([0, 0, 1, 1, 1]), 2, seed=0)
    """
    return _shot_indices(np.asarray(labels), [_positive_int(shots, "shots")], seed)[shots]


def _shot_indices(labels, shots, seed):
    rng = np.random.default_rng(_seed(seed))
    orders = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    short = [f"class {labels[o[0]]} has {len(o)}" for o in orders if len(o) < max(shots)]
    if short:
        raise ValueError(f"shots={max(shots)} needs {max(shots)} training examples of every "
                         f"class, but " + ", ".join(short) + ". Use fewer shots.")
    return {k: np.concatenate([o[:k] for o in orders]).astype(np.int64) for k in shots}


def evaluate_features(train_features, train_labels, test_features, test_labels,
                      shots=DEFAULT_SHOTS, seeds=DEFAULT_SEEDS, l2_reg=linear_probe.L2_REG):
    """Few-shot linear-probe accuracy on precomputed features.

    Args:
        train_features, train_labels: ``[N, D]`` features and ``[N]`` integer labels to
            draw the shots from.
        test_features, test_labels: ``[M, D]`` and ``[M]``; every test label must occur in
            the training labels.
        shots: the K values, e.g. ``(1, 5, 10, 25)``.
        seeds: a number of seeds (``3`` means seeds 0, 1, 2) or a list of seeds.
        l2_reg: the probe's L2 regularization (big_vision: ``2**10``).

    Returns:
        A ``FewShotResult``: accuracy per K and seed, with mean and standard deviation.

    Example:

    >>> result = bit_keras.fewshot.evaluate_features(f_train, y_train, f_test, y_test)
    >>> print(bit_keras.fewshot.format_table(result))
    """
    check = linear_probe.check_features
    train_features, train_labels = check(train_features, train_labels, "train_features",
                                         "train_labels")
    test_features, test_labels = check(test_features, test_labels, "test_features", "test_labels")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError("train_features and test_features must have as many columns. Received: "
                         f"{train_features.shape[1]} and {test_features.shape[1]}")
    classes = _check_test_labels(train_labels, test_labels)
    shots, seeds = _shots(shots), _seeds(seeds)
    accuracies = {k: [] for k in shots}
    for seed in seeds:
        for k, idx in _shot_indices(train_labels, shots, seed).items():
            probe = linear_probe.fit_linear_probe(train_features[idx], train_labels[idx], l2_reg)
            accuracies[k].append(float(np.mean(probe.predict(test_features) == test_labels)))
    return FewShotResult(method="linear_probe", accuracies=accuracies, seeds=seeds,
                         num_classes=len(classes), num_test=len(test_labels),
                         settings={"l2_reg": float(l2_reg)})


def evaluate(feature_fn, train_data, test_data, shots=DEFAULT_SHOTS, seeds=DEFAULT_SEEDS,
             l2_reg=linear_probe.L2_REG, batch_size=64, image_size=None, train_split="train",
             test_split="test", data_dir=None, fit_fn=None):
    """Few-shot transfer accuracy of a model on a dataset: K images per class, several seeds.

    With ``fit_fn=None`` this is the linear probe on ``feature_fn``'s frozen features;
    features are computed once, for the training images some seed draws and the test set.
    With ``fit_fn``, the K-shot images of every seed go to ``fit_fn`` instead, which trains
    whatever it likes (the paper's HyperRule fine-tuning with ``bit_keras.fine_tune``) and
    returns a function from images to class scores.

    Args:
        feature_fn: what maps float32 ``[B, H, W, 3]`` images in [0, 1] to ``[B, D]``
            features: a BiT Keras model (with a head, its ``pre_logits`` are used), a
            SavedModel loaded with ``tf.saved_model.load`` (its ``__call__``, else its
            ``serving_default`` signature), a ``hub.KerasLayer``, or any Python function.
            Unused (may be None) with ``fit_fn``.
        train_data, test_data: anything ``bit_keras.data.load_source`` takes: a TFDS name
            (``"bit_synthetic/downstream"``, ``"cifar10"``), a folder, an ``(images,
            labels)`` pair, a ``tf.data.Dataset`` or a ``bit_keras.data.Source``.
        shots, seeds, l2_reg: as for ``evaluate_features``.
        batch_size: images per call of ``feature_fn``.
        image_size: images are resized to ``image_size`` squared; None keeps the size when
            all images are square and of one size (an error otherwise).
        train_split, test_split, data_dir: the TFDS splits and data directory.
        fit_fn: the hook for training protocols, called once per seed and K as
            ``fit_fn(images, labels, num_classes, seed)`` with float32 ``[K * C, H, W, 3]``
            images in [0, 1] and int64 labels in ``0..C-1`` (the training classes in
            sorted order); it returns ``predict(images) -> [B, C]`` scores, called on
            float32 NumPy batches of the test images.

    Returns:
        A ``FewShotResult``.

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1", weights="BiT-M-R50x1.npz", include_top=False)
    >>> result = bit_keras.fewshot.evaluate(model, "cifar10", "cifar10", image_size=128)
    >>> print(bit_keras.fewshot.format_table({"BiT-M-R50x1": result}))
    """
    from bit_keras.fewshot.images import ImageSet, as_feature_fn
    # Every number is checked before a dataset is read (or downloaded).
    shots, seeds = _shots(shots), _seeds(seeds)
    checks.finite_number(l2_reg, "l2_reg", strictly_positive=True)
    checks.positive_int(batch_size, "batch_size")
    checks.positive_int(image_size, "image_size", allow_none=True)
    train = ImageSet(train_data, train_split, data_dir, image_size, batch_size)
    test = ImageSet(test_data, test_split, data_dir, train.image_size, batch_size)
    classes = _check_test_labels(train.labels, test.labels)
    shots, seeds = _shots(shots), _seeds(seeds)
    draws = {seed: _shot_indices(train.labels, shots, seed) for seed in seeds}
    test_labels = np.searchsorted(classes, test.labels)
    accuracies = {k: [] for k in shots}
    if fit_fn is None:
        feature_fn = as_feature_fn(feature_fn)
        needed = np.unique(np.concatenate([idx for d in draws.values() for idx in d.values()]))
        logging.info("few-shot: features of %d training and %d test images at %dx%d",
                     len(needed), len(test.labels), train.image_size, train.image_size)
        features = dict(zip(needed, train.features(feature_fn, needed)))
        test_features = test.features(feature_fn)
        for seed in seeds:
            for k, idx in draws[seed].items():
                probe = linear_probe.fit_linear_probe(
                    np.stack([features[i] for i in idx]), train.labels[idx], l2_reg)
                predicted = np.searchsorted(classes, probe.predict(test_features))
                accuracies[k].append(float(np.mean(predicted == test_labels)))
        method, settings = "linear_probe", {"l2_reg": float(l2_reg)}
    else:
        for seed in seeds:
            for k, idx in draws[seed].items():
                predict = fit_fn(train.images(idx), np.searchsorted(classes, train.labels[idx]),
                                 len(classes), seed)
                predicted = np.argmax(test.scores(predict), axis=1)
                accuracies[k].append(float(np.mean(predicted == test_labels)))
                logging.info("few-shot: seed %d, %d-shot: %.1f%%", seed, k, 100 * accuracies[k][-1])
        method, settings = getattr(fit_fn, "__name__", "fit_fn"), {}
    settings["image_size"] = train.image_size
    return FewShotResult(method=method, accuracies=accuracies, seeds=seeds,
                         num_classes=len(classes), num_test=len(test_labels), settings=settings)


def _check_test_labels(train_labels, test_labels):
    classes = np.unique(train_labels)
    unknown = np.setdiff1d(np.unique(test_labels), classes)
    if unknown.size:
        raise ValueError("every test label must occur in the training data. Received: test "
                         f"labels {unknown[:10].tolist()} that the training data lacks")
    return classes


def _shots(shots):
    shots = [shots] if isinstance(shots, (int, np.integer)) else list(shots)
    if not shots:
        raise ValueError("shots must name at least one K. Received: shots=[]")
    return sorted({_positive_int(k, "shots") for k in shots})


def _seeds(seeds):
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        return list(range(_positive_int(seeds, "seeds")))
    seeds = [_seed(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a positive int or distinct ints. Received: seeds={seeds}")
    return seeds


def _positive_int(value, name):
    return checks.positive_int(value, name, accepted="positive ints")


def _seed(seed):
    try:
        return checks.non_negative_int(seed, "seed")
    except ValueError:
        raise ValueError(f"seeds must be non-negative ints. Received: seed={seed!r}") from None
