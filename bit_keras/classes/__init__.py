"""Class names of the BiT upstream heads, shipped with the package, and top-k decoding.

Two lists, each a tab-separated file of WordNet id and lemmas (``n01440764<TAB>tench,
Tinca tinca``), in the order of the heads' outputs:

- ``ilsvrc2012``: the 1000 ILSVRC-2012 classes (sorted WordNet ids, the order of BiT-S,
  ``-ILSVRC2012``, distilled and teacher heads, TFDS's ``imagenet2012`` and timm);
- ``imagenet21k``: the 21843 ImageNet-21k classes in the order of the BiT-M head (the
  "goog" order timm uses for its ``in21k`` weights).

Read from the lists TFDS and timm's wheel carry when this package was built; nothing is
downloaded. A class's name is its first lemma (``"tench"``).

Example:

>>> bit_keras.class_names("BiT-S-R50x1")[:2]
['tench', 'goldfish']
>>> bit_keras.decode_predictions(model(images), model, top=3)
[[('n02123045', 'tabby', 0.61), ...], ...]
"""

import functools
import gzip
import os

import numpy as np

LISTS = {"ilsvrc2012": ("ilsvrc2012.tsv", 1000, "softmax"),
         "imagenet21k": ("imagenet21k.tsv.gz", 21843, "sigmoid")}
_ALIASES = {"ilsvrc-2012": "ilsvrc2012", "imagenet2012": "ilsvrc2012", "imagenet-1k": "ilsvrc2012",
            "imagenet1k": "ilsvrc2012", "imagenet-21k": "imagenet21k"}


@functools.cache
def _read(list_name):
    """(WordNet ids, lemmas) of one shipped list, as tuples."""
    filename, count, _ = LISTS[list_name]
    path = os.path.join(os.path.dirname(__file__), filename)
    opener = gzip.open if filename.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    if len(rows) != count:  # a damaged install, not a user error
        raise RuntimeError(f"{path} holds {len(rows)} classes, not {count}; reinstall bit_keras")
    return tuple(r[0] for r in rows), tuple(r[1] for r in rows)


def list_of(name_or_model):
    """The shipped list (``"ilsvrc2012"`` or ``"imagenet21k"``) that names a model's head.

    Args:
        name_or_model: a list name (``"ilsvrc2012"``, ``"ILSVRC-2012"``, ``"imagenet21k"``),
            a variant name from ``bit_keras.VARIANTS`` or a ``BiTModel`` whose head is its
            variant's upstream head.

    Raises:
        ValueError: the head has no shipped class list (a fresh or fine-tuned head, BiT-L's
            JFT head, a VTAB-1k head), saying what is accepted.
    """
    from bit_keras.models import variants

    if isinstance(name_or_model, str):
        key = _ALIASES.get(name_or_model.lower(), name_or_model.lower())
        if key in LISTS:
            return key
        variant = variants.get_variant(name_or_model)
    else:
        name = getattr(name_or_model, "variant", None)
        classes = getattr(name_or_model, "num_classes", None)
        if not isinstance(name, str) or name not in variants.VARIANTS:
            raise ValueError(_no_list(f"the model {getattr(name_or_model, 'name', name_or_model)!r}"
                                      " is not a named BiT variant"))
        variant = variants.VARIANTS[name]
        if classes != variant.num_classes:
            raise ValueError(_no_list(f"the model's head has {classes} classes, not the "
                                      f"{variant.num_classes} of {variant.name}'s upstream head"))
    if variant.vtab_task is None:
        for key, (_, count, _) in LISTS.items():
            if variant.num_classes == count:
                return key
    raise ValueError(_no_list(f"{variant.name}'s head ({variant.num_classes} classes, "
                              f"{variant.upstream}) has no shipped class list"))


def _no_list(why):
    return (f"No class names: {why}. Class names ship for the ILSVRC-2012 heads (1000: BiT-S, "
            "-ILSVRC2012, distilled and teacher models) and the BiT-M ImageNet-21k head "
            "(21843); pass a list name ('ilsvrc2012', 'imagenet21k') or your own class names.")


def class_names(name_or_model, wordnet_ids=False):
    """The class names of a head, in the order of its outputs.

    Args:
        name_or_model: as for ``list_of``.
        wordnet_ids: return the WordNet ids (``"n01440764"``) instead of the names.

    Returns:
        A list of 1000 or 21843 strings.
    """
    wnids, lemmas = _read(list_of(name_or_model))
    return list(wnids) if wordnet_ids else [lemma.split(",")[0].strip() for lemma in lemmas]


def scores_of(name_or_model):
    """How the head was trained: ``"softmax"`` (ILSVRC-2012) or ``"sigmoid"`` (ImageNet-21k)."""
    return LISTS[list_of(name_or_model)][2]


def decode_predictions(logits, name_or_model, top=5, scores=None):
    """The ``top`` classes of each row of ``logits``, as ``keras.applications`` gives them.

    Args:
        logits: ``[batch, classes]`` head outputs (NumPy or a tensor).
        name_or_model: a list name, a variant name, a ``BiTModel`` with its upstream head
            (see ``list_of``), or a sequence of your own class names.
        top: how many classes per row.
        scores: ``"softmax"`` or ``"sigmoid"``; default as the head was trained (softmax for
            ILSVRC-2012 and for your own names, sigmoid for BiT-M's 21k head).

    Returns:
        One list per row of ``(wordnet_id, name, score)`` tuples, best first (the id is
        ``None`` for your own names).

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1")
    >>> bit_keras.decode_predictions(model(images), model, top=3)
    """
    if isinstance(name_or_model, (list, tuple)):
        names, wnids, default = [str(n) for n in name_or_model], None, "softmax"
    else:
        names, wnids = class_names(name_or_model), class_names(name_or_model, True)
        default = scores_of(name_or_model)
    scores = default if scores is None else scores
    if scores not in ("softmax", "sigmoid"):
        raise ValueError(f"scores must be 'softmax' or 'sigmoid'. Received: scores={scores!r}")
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != len(names):
        raise ValueError(f"logits must be [batch, {len(names)}] for {len(names)} classes. "
                         f"Received: logits of shape {logits.shape}")
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= len(names):
        raise ValueError(f"top must be an int in [1, {len(names)}]. Received: top={top!r}")
    if scores == "softmax":
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
    else:
        probs = 1.0 / (1.0 + np.exp(-logits))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [[(None if wnids is None else wnids[i], names[i], float(row[i])) for i in best]
            for row, best in zip(probs, order)]
