"""Few-shot sampling (``examples_per_class=K``) and the argument checks every source shares.

Each class draws its K examples from its own random stream, seeded by ``(seed, class
index)``, over the class's examples in the source's canonical order (sorted file names for
folders, record order for TFDS and arrays). So the draw depends only on the seed and the
data, not on the file-system listing order, and adding a class leaves the others' draws
unchanged.
"""

import numpy as np

from bit_keras.utils import checks


def check_seed(seed, name="seed"):
    """Returns ``seed`` as an int, or raises a ValueError naming the argument."""
    return checks.seed(seed, name)


def check_examples_per_class(examples_per_class):
    """Returns ``examples_per_class`` (None or a positive int), or raises a ValueError."""
    return checks.positive_int(examples_per_class, "examples_per_class", allow_none=True)


def choose_per_class(labels, class_names, examples_per_class, seed=0, multi_label=False,
                     accept=None):
    """Indices of ``examples_per_class`` examples of every class, sorted, drawn by ``seed``.

    Args:
        labels: int ``(N,)`` class indices.
        class_names: the class names, in label order (for the error message).
        examples_per_class: K, a positive int.
        seed: a non-negative int.
        multi_label: True is refused: with several labels per image, "K per class" has no
            single meaning.
        accept: optional ``accept(list_of_indices) -> list_of_bool``, asked in draw order
            (for example "is this file readable?"); refused examples are passed over.

    Returns:
        A sorted int64 array of ``K * num_classes`` indices.

    Raises:
        ValueError: a class has fewer than K (acceptable) examples; the message names it.
    """
    k = check_examples_per_class(examples_per_class)
    seed = check_seed(seed)
    if multi_label:
        raise ValueError("examples_per_class needs single-label data, but this source is "
                         f"multi-label. Received: examples_per_class={k}")
    labels = np.asarray(labels)
    chosen, short = [], []
    for c, name in enumerate(class_names):
        members = np.flatnonzero(labels == c)
        order = members[np.random.default_rng([seed, c]).permutation(len(members))]
        picked = _take(order, k, accept)
        if len(picked) < k:
            short.append(f"{name!r} has {len(picked)}")
        chosen.extend(picked)
    if short:
        raise ValueError(
            f"examples_per_class={k} needs {k} images of every class, but class "
            + ", class ".join(short) + (" readable" if accept else "") + " image(s). "
            "Use a smaller examples_per_class or add images to that class.")
    return np.sort(np.asarray(chosen, np.int64))


def _take(order, k, accept):
    if accept is None:
        return list(order[:k])
    picked, start = [], 0
    while len(picked) < k and start < len(order):
        batch = list(order[start:start + k - len(picked)])
        picked += [i for i, ok in zip(batch, accept(batch)) if ok]
        start += len(batch)
    return picked
