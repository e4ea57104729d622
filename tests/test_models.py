"""Architectures: the variant table, exact parameter counts, names, serialization, backbones."""

import os

import keras
import numpy as np
import pytest

import bit_keras
from bit_keras import layers
from bit_keras.models import variants

# Exact counts, without a head. With a 1000-way head they equal timm's resnetv2_*_bit
# figures (25.55M, 217.32M, 44.54M, 387.93M, 236.34M, 936.53M).
BACKBONE_PARAMS = {
    "R50x1": 23_500_352, "R50x3": 211_174_080, "R101x1": 42_492_480,
    "R101x3": 381_789_888, "R152x2": 232_238_208, "R152x4": 928_340_224,
}


def test_r50x1_parameter_counts():
    assert bit_keras.build("BiT-M-R50x1").count_params() == 68_256_659  # 21843-way head
    assert bit_keras.build("BiT-S-R50x1", include_top=False).count_params() == BACKBONE_PARAMS["R50x1"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(BACKBONE_PARAMS))
def test_parameter_counts(arch):
    model = bit_keras.build(f"BiT-S-{arch}")
    width = int(arch.split("x")[1])
    assert model.count_params() == BACKBONE_PARAMS[arch] + 2048 * width * 1000 + 1000


def test_variant_table_names():
    names = set(bit_keras.VARIANTS)
    for arch in ("R50x1", "R50x3", "R101x1", "R101x3", "R152x2", "R152x4"):
        assert {f"BiT-S-{arch}", f"BiT-M-{arch}", f"BiT-M-{arch}-ILSVRC2012", f"BiT-L-{arch}"} <= names
    assert bit_keras.VARIANTS["BiT-M-R50x1"].num_classes == 21843
    assert bit_keras.VARIANTS["BiT-L-R152x4"].num_classes == 18291
    assert bit_keras.VARIANTS["BiT-L-R152x4"].weights_url is None
    assert bit_keras.VARIANTS["BiT-M-R152x2-teacher-384"].weights_url.endswith("distill/R152x2_T_384.npz")
    assert bit_keras.VARIANTS["BiT-S-R101x3"].weights_url == "https://storage.googleapis.com/bit_models/BiT-S-R101x3.npz"


def test_readme_variant_table_is_the_table():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    assert variants.markdown_table() in readme


def test_layer_names_are_flat_and_official():
    model = bit_keras.resnet_v2((2, 1, 1, 1), 1, num_classes=3, base_filters=16, groups=8)
    names = [layer.name for layer in model.layers]
    for name in ("rescale", "root_conv", "stem", "block1_unit01_a_gn", "block1_unit01_proj_conv",
                 "block1_unit02_c_conv", "block2_unit01_b_pad", "block4", "final_gn", "pre_logits", "head"):
        assert name in names
    assert "block1_unit02_proj_conv" not in names  # identity shortcut when shape is kept
    assert all("/" not in n for n in names)
    assert not np.any(model.get_layer("head").kernel.numpy())  # zero-initialized head


def test_feature_extractor_strides():
    model = bit_keras.resnet_v2((1, 1, 1, 1), 1, num_classes=3, base_filters=16, groups=8)
    feats = bit_keras.feature_extractor(model)(np.zeros((1, 64, 64, 3), np.float32))
    shapes = {k: tuple(v.shape) for k, v in feats.items()}
    assert shapes == {"stem": (1, 16, 16, 16), "block1": (1, 16, 16, 64), "block2": (1, 8, 8, 128),
                      "block3": (1, 4, 4, 256), "block4": (1, 2, 2, 512), "pre_logits": (1, 512)}
    with pytest.raises(ValueError, match=r"Unknown feature names \['block5'\]"):
        bit_keras.feature_extractor(model, ["block5"])


def test_layers_round_trip_through_config():
    conv = layers.StandardizedConv2D(8, 3, ws_epsilon=1e-8, name="c")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(conv))
    assert isinstance(again, layers.StandardizedConv2D) and again.ws_epsilon == 1e-8 and again.filters == 8
    gn = layers.GroupNormalization(16, epsilon=1e-4, activation="relu")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(gn))
    assert (again.groups, again.epsilon, again.activation) == (16, 1e-4, "relu")


def test_keras_file_round_trip(tmp_path, tiny_model, images):
    for w in tiny_model.weights:
        w.assign(np.random.default_rng(0).normal(size=w.shape).astype("float32") * 0.1 + (w.path.endswith("gamma")))
    path = tmp_path / "m.keras"
    tiny_model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(again(images)), np.asarray(tiny_model(images)))


def test_mixed_bfloat16_keeps_head_float32(images):
    model = bit_keras.resnet_v2((1, 1, 1, 1), 1, num_classes=3, base_filters=16, groups=8, dtype="mixed_bfloat16")
    assert model.get_layer("block1_unit01_b_conv").compute_dtype == "bfloat16"
    assert model.get_layer("block1_unit01_b_conv").kernel.dtype == "float32"
    assert model(images).dtype == "float32"


def test_bad_units():
    # One to four blocks (three-block hybrids are allowed: tests/test_dense.py).
    for units in ((3, 4, 6, 3, 2), (3, 0, 6), ()):
        with pytest.raises(ValueError, match=r"units must be one to four positive ints, one "
                                             rf"per block .*Received: units={units!r}".replace(
                                                 "(", r"\(").replace(")", r"\)")):
            bit_keras.resnet_v2(units, 1, num_classes=3)


def test_the_model_carries_its_spec_through_config_and_keras_files(tmp_path):
    model = bit_keras.build(variants.TINY, num_classes=3)
    assert isinstance(model, bit_keras.BiTModel)
    assert (model.units, model.width, model.base_filters, model.groups) == ((1, 1, 1, 1), 1, 16, 8)
    assert (model.num_classes, model.include_top, model.variant) == (3, True, "R14x1-tiny")
    assert model.architecture == "R14x1" and model.feature_size == 512
    again = bit_keras.BiTModel.from_config(model.get_config())
    assert again.spec() == model.spec() and again.count_params() == model.count_params()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, bit_keras.BiTModel) and loaded.spec() == model.spec()
    features = bit_keras.resnet_v2((2, 1, 1, 1), 2, include_top=False, base_filters=16, groups=8)
    assert (features.num_classes, features.include_top, features.architecture) == (None, False, "R17x2")


def test_tiny_variants_are_registered_like_real_ones():
    tiny = bit_keras.get_variant(variants.TINY)
    assert tiny.weights_url is None and tiny.num_classes is None
    assert tiny.architecture_kwargs() == dict(units=(1, 1, 1, 1), width=1, base_filters=16, groups=8)
    with pytest.raises(ValueError, match="num_classes is required for the headless variant 'R14x1-tiny'"):
        bit_keras.build(variants.TINY)


def test_a_new_head_keeps_the_spec_and_shares_the_backbone():
    from bit_keras import training
    model = bit_keras.build(variants.TINY, num_classes=3)
    tuned = training.with_head(model, 7)
    assert isinstance(tuned, bit_keras.BiTModel) and tuned.num_classes == 7
    assert tuned.units == model.units and tuned.variant == model.variant
    assert tuned.get_layer("block4_unit01_c_conv") is model.get_layer("block4_unit01_c_conv")


def test_the_hyperrule_reads_the_architecture_not_the_name():
    from bit_keras.training import finetuning
    model = bit_keras.resnet_v2((3, 8, 36, 3), 4, num_classes=2, name="my_model")
    assert finetuning._architecture(model) == "R152x4"  # the paper's 512/480 rule applies
    assert bit_keras.hyperrule.resolution(224 * 224, "paper", model.architecture) == (512, 480)


@pytest.mark.parametrize("name,message", [
    ("R50x0", r"width must be a positive int. Received: width=0"),
    ("R77x1", r"Unknown BiT model name: 'R77x1'"),
])
def test_bad_architecture_names_name_the_argument(name, message):
    with pytest.raises(ValueError, match=message):
        bit_keras.build(name, num_classes=2)
