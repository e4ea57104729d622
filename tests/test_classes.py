"""The shipped class names (ILSVRC-2012, ImageNet-21k), decode_predictions, and the labels
an exported upstream classifier carries without a labels= argument."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import bit_keras


def tfds_imagenet2012_wnids():
    """TFDS's own ILSVRC-2012 class list (the WordNet ids in label order)."""
    path = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012", "labels.txt")
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def test_ilsvrc2012_names_are_tfds_classes_in_label_order():
    wnids = bit_keras.class_names("BiT-S-R50x1", wordnet_ids=True)
    assert wnids == tfds_imagenet2012_wnids()
    names = bit_keras.class_names("BiT-M-R101x3-ILSVRC2012")
    assert len(names) == 1000 and all(n and "," not in n for n in names)
    assert names == bit_keras.class_names("ILSVRC-2012") == bit_keras.class_names("imagenet2012")
    assert names[wnids.index("n01440764")] == "tench"  # class 0 of every ImageNet head
    assert bit_keras.class_names("BiT-M-R50x1-distilled-224") == names


def test_imagenet21k_names_are_the_bit_m_head_order():
    wnids = bit_keras.class_names("BiT-M-R50x1", wordnet_ids=True)
    names = bit_keras.class_names("imagenet21k")
    assert len(wnids) == len(set(wnids)) == len(names) == 21843
    assert all(w.startswith("n") and len(w) == 9 for w in wnids)
    # The fall-2011 release's classes in WordNet-id order; 999 of the 1000 ILSVRC-2012 ones.
    assert wnids == sorted(wnids)
    assert len(set(wnids) & set(tfds_imagenet2012_wnids())) == 999


def test_no_names_for_heads_that_have_none():
    for name in ("BiT-L-R50x1", "BiT-M-R50x1-run0-dtd", "R14x1-tiny"):
        with pytest.raises(ValueError, match="No class names: .*has no shipped class list"):
            bit_keras.class_names(name)
    plain = bit_keras.resnet_v2((1, 1, 1, 1), 1, num_classes=4, base_filters=16, groups=8)
    with pytest.raises(ValueError, match="No class names: the model .* is not a named BiT variant"):
        bit_keras.class_names(plain)
    fresh_head = bit_keras.build("BiT-S-R50x1", num_classes=4)
    with pytest.raises(ValueError, match="No class names: the model's head has 4 classes, not "
                       "the 1000 of BiT-S-R50x1's upstream head"):
        bit_keras.decode_predictions(np.zeros((1, 4)), fresh_head)


def softmax64(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def with_bias(model, winners):
    """The model's head made to prefer ``winners`` (class index -> bias)."""
    bias = np.zeros(model.num_classes, np.float32)
    for index, value in winners.items():
        bias[index] = value
    model.get_layer("head").bias.assign(bias)
    return model


@pytest.fixture(scope="module")
def bit_s():
    return with_bias(bit_keras.build("BiT-S-R50x1"), {0: 4.0, 1: 3.0, 999: 2.0})


def test_decode_predictions_on_a_bit_s_model_uses_softmax(bit_s):
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    logits = np.asarray(bit_s(images))
    decoded = bit_keras.decode_predictions(logits, bit_s, top=3)
    want = softmax64(logits)
    wnids = tfds_imagenet2012_wnids()
    names = bit_keras.class_names("ilsvrc2012")
    for row, probs in zip(decoded, want):
        assert [d[0] for d in row] == [wnids[0], wnids[1], wnids[999]]
        assert [d[1] for d in row] == [names[0], names[1], names[999]]
        np.testing.assert_allclose([d[2] for d in row], probs[[0, 1, 999]], rtol=1e-12)


def test_decode_predictions_on_a_bit_m_model_uses_sigmoid():
    model = with_bias(bit_keras.build("BiT-M-R50x1"), {5: 6.0, 20000: 5.0})
    images = np.random.default_rng(1).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    logits = np.asarray(model(images), np.float64)
    (row,) = bit_keras.decode_predictions(logits, model, top=2)
    wnids = bit_keras.class_names("imagenet21k", wordnet_ids=True)
    assert [d[0] for d in row] == [wnids[5], wnids[20000]]
    np.testing.assert_allclose([d[2] for d in row], 1 / (1 + np.exp(-logits[0, [5, 20000]])),
                               rtol=1e-12)


def test_decode_predictions_with_your_own_names_and_bad_input():
    logits = np.array([[0.0, 2.0, 1.0]])
    (row,) = bit_keras.decode_predictions(logits, ["cat", "dog", "cow"], top=2)
    assert [(w, n) for w, n, _ in row] == [(None, "dog"), (None, "cow")]
    with pytest.raises(ValueError, match=r"logits must be \[batch, 3\] for 3 classes. "
                       r"Received: logits of shape \(3,\)"):
        bit_keras.decode_predictions(logits[0], ["cat", "dog", "cow"])
    with pytest.raises(ValueError, match=r"top must be an int in \[1, 3\]. Received: top=4"):
        bit_keras.decode_predictions(logits, ["cat", "dog", "cow"], top=4)
    with pytest.raises(ValueError, match="scores must be 'softmax' or 'sigmoid'"):
        bit_keras.decode_predictions(logits, ["cat", "dog", "cow"], scores="relu")


def test_an_exported_bit_s_classifier_carries_the_1000_names(bit_s, tmp_path):
    import tensorflow as tf

    path = bit_keras.export(bit_s, tmp_path / "clf", kind="classifier", image_size=32)
    loaded = tf.saved_model.load(path)
    labels = [n.decode() for n in loaded.signatures["labels"]()["labels"].numpy()]
    assert labels == bit_keras.class_names("BiT-S-R50x1")
    images = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    assert [n.decode() for n in out["top_labels"].numpy()[0][:2]] == labels[:2]
    np.testing.assert_allclose(out["top_scores"].numpy()[0][:2],
                               softmax64(bit_s(images))[0, :2], rtol=1e-4)


def test_labels_false_leaves_the_names_out(tiny_model, tmp_path):
    import tensorflow as tf
    bare = tf.saved_model.load(bit_keras.export(tiny_model, tmp_path / "bare",
                                                kind="classifier", labels=False))
    assert "labels" not in bare.signatures and "serving_default" in bare.signatures


def test_an_exported_bit_m_classifier_carries_the_21843_names_and_sigmoid(tmp_path):
    import tensorflow as tf

    model = with_bias(bit_keras.build("BiT-M-R50x1"), {7: 3.0})
    loaded = tf.saved_model.load(bit_keras.export(model, tmp_path / "clf", kind="classifier"))
    labels = [n.decode() for n in loaded.signatures["labels"]()["labels"].numpy()]
    assert labels == bit_keras.class_names("imagenet21k")
    images = np.zeros((1, 32, 32, 3), np.float32)
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    assert out["top_labels"].numpy()[0][0].decode() == labels[7]
    logits = np.asarray(model(images), np.float64)
    np.testing.assert_allclose(out["top_scores"].numpy()[0][0], 1 / (1 + np.exp(-logits[0, 7])),
                               rtol=1e-4)
