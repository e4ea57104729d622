"""The few-shot linear probe: closed-form L2-regularized least squares on frozen features.

This is big_vision's few-shot evaluator (``evaluators/fewshot_lsr.py``): features are
standardized with the training shots' mean and standard deviation, a constant feature
stands in for the bias, targets are +-1 one-vs-rest, and the weights solve
``(X^T X + l2 I) W = X^T Y`` through an eigendecomposition of the smaller Gram matrix.
Computed in float64 with NumPy; a few thousand shots of 2048-d features take well under a
second.
"""

import dataclasses

import numpy as np

from bit_keras.utils import checks

# big_vision's default regularization of the few-shot linear probe.
L2_REG = 2.0 ** 10
# A constant feature this large gets a weight 100x smaller for the same effect, so the
# bias is all but unregularized (big_vision's BIAS_CONSTANT).
BIAS_CONSTANT = 100.0
# Added to the per-feature standard deviation so constant features do not divide by zero.
STD_EPSILON = 1e-5


@dataclasses.dataclass
class LinearProbe:
    """A fitted probe: ``scores(x) = standardize(x) @ weights[:-1] + BIAS_CONSTANT * weights[-1]``.

    Attributes:
        classes: the label values, in score-column order.
        mean, std: per-feature statistics of the training features (std includes epsilon).
        weights: float64 ``[num_features + 1, num_classes]``; the last row is the bias row.
    """

    classes: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray

    def scores(self, features):
        """float64 ``[N, num_classes]`` one-vs-rest scores of ``features`` ``[N, D]``."""
        return _design(features, self.mean, self.std) @ self.weights

    def predict(self, features):
        """The predicted label value of each row of ``features``."""
        return self.classes[np.argmax(self.scores(features), axis=1)]


def _design(features, mean, std):
    x = (np.asarray(features, np.float64) - mean) / std
    return np.concatenate([x, np.full((len(x), 1), BIAS_CONSTANT)], axis=1)


def fit_linear_probe(features, labels, l2_reg=L2_REG):
    """Fits the closed-form linear probe of big_vision's few-shot evaluation.

    Args:
        features: ``[N, D]`` frozen features (e.g. BiT pre-logits) of the training shots.
        labels: ``[N]`` integer labels; every distinct value becomes a class.
        l2_reg: the L2 regularization strength (big_vision: ``2**10``), a positive number.

    Returns:
        A ``LinearProbe``.

    Example:

    >>> probe = bit_keras.fewshot.fit_linear_probe(train_features, train_labels)
    >>> accuracy = np.mean(probe.predict(test_features) == test_labels)
    """
    features, labels = check_features(features, labels, "features", "labels")
    checks.finite_number(l2_reg, "l2_reg", strictly_positive=True)
    classes, targets = np.unique(labels, return_inverse=True)
    y = 2.0 * np.eye(len(classes))[targets] - 1.0
    mean = features.mean(axis=0)
    std = features.std(axis=0) + STD_EPSILON
    x = _design(features, mean, std)
    n, d = x.shape
    # (X^T X + l2 I)^-1 X^T Y  equals  X^T (X X^T + l2 I)^-1 Y; eigendecompose the smaller
    # Gram matrix, as big_vision does (few shots: N << D).
    if n >= d:
        eigs, q = np.linalg.eigh(x.T @ x)
        lhs, rhs = q, q.T @ (x.T @ y)
    else:
        eigs, q = np.linalg.eigh(x @ x.T)
        lhs, rhs = x.T @ q, q.T @ y
    weights = (lhs / (eigs + l2_reg)) @ rhs
    return LinearProbe(classes=classes, mean=mean, std=std, weights=weights)


def check_features(features, labels, features_name, labels_name):
    """(float64 [N, D] features, int64 [N] labels), or a ValueError naming the bad argument."""
    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"{features_name} must be a non-empty [N, D] array. "
                         f"Received: shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{features_name} must be finite. Received: "
                         f"{int(np.sum(~np.isfinite(features)))} NaN or infinite values")
    if labels.shape != (len(features),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{labels_name} must be {len(features)} integers, one per row of "
                         f"{features_name}. Received: dtype {labels.dtype}, shape {labels.shape}")
    return features.astype(np.float64), labels.astype(np.int64)
