"""BiT as a dense-prediction backbone: output strides, stochastic depth, fewer blocks (issue 27).

The dilated models are checked against the float64 NumPy forward pass with the strides and
dilations written out by hand from timm's ``ResNetV2(output_stride=...)`` rule; the same
official weights load into every one.
"""

import numpy as np
import numpy_bit
import pytest

import bit_keras

SPEC = dict(units=(1, 1, 2, 2), width=1, num_classes=5, base_filters=16, groups=8)
# (block, unit) -> (stride, dilation) of the 3x3 convolution, by hand: a block that would
# pass the output stride keeps stride 1 and doubles the dilation; its first unit dilates by
# 1 (2 from dilation 4 on), the rest by the block's dilation.
PLANS = {
    32: {(1, 1): (1, 1), (2, 1): (2, 1), (3, 1): (2, 1), (3, 2): (1, 1), (4, 1): (2, 1),
         (4, 2): (1, 1)},
    16: {(1, 1): (1, 1), (2, 1): (2, 1), (3, 1): (2, 1), (3, 2): (1, 1), (4, 1): (1, 1),
         (4, 2): (1, 2)},
    8: {(1, 1): (1, 1), (2, 1): (2, 1), (3, 1): (1, 1), (3, 2): (1, 2), (4, 1): (1, 2),
        (4, 2): (1, 4)},
}
SIDES = {32: (16, 8, 4, 2), 16: (16, 8, 4, 4), 8: (16, 8, 8, 8)}  # 64 px: blocks 1..4


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    w = numpy_bit.random_weights(SPEC["units"], 1, SPEC["num_classes"], base=16, seed=11)
    path = tmp_path_factory.mktemp("dense") / "w.npz"
    np.savez(path, **w)
    return w, str(path)


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_each_output_stride_matches_the_float64_reference(weights, output_stride):
    w, path = weights
    model = bit_keras.resnet_v2(**SPEC, output_stride=output_stride)
    bit_keras.load_weights(model, path)  # the same official weights, strictly
    images = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    blocks = {}
    want = numpy_bit.forward(w, images, groups=8, plan=PLANS[output_stride],
                             block_outputs=blocks)
    features = bit_keras.feature_extractor(model, ("block1", "block2", "block3", "block4"))
    got = features(images)
    for b, side in enumerate(SIDES[output_stride], start=1):
        assert tuple(got[f"block{b}"].shape) == (2, side, side, 16 * 4 * 2 ** (b - 1))
        assert rel_err(got[f"block{b}"], blocks[f"block{b}"]) < 1e-5
    assert rel_err(model(images), want) < 1e-5
    assert model.output_stride == output_stride
    assert bit_keras.BiTModel.from_config(model.get_config()).output_stride == output_stride


def test_a_dilated_model_holds_the_same_weights():
    plain = bit_keras.resnet_v2(**SPEC)
    for output_stride in (16, 8):
        dilated = bit_keras.resnet_v2(**SPEC, output_stride=output_stride)
        assert [(v.path, v.shape) for v in dilated.weights] == \
               [(v.path, v.shape) for v in plain.weights]


def test_drop_path_zero_is_today_s_model_bit_for_bit_and_identity_at_inference(weights):
    _, path = weights
    images = np.random.default_rng(1).random((8, 32, 32, 3)).astype(np.float32)
    plain = bit_keras.resnet_v2(**SPEC)
    zero = bit_keras.resnet_v2(**SPEC, drop_path_rate=0.0)
    dropping = bit_keras.resnet_v2(**SPEC, drop_path_rate=0.5)
    for model in (plain, zero, dropping):
        bit_keras.load_weights(model, path)
    assert [layer.name for layer in zero.layers] == [layer.name for layer in plain.layers]
    want = np.asarray(plain(images))
    np.testing.assert_array_equal(np.asarray(zero(images, training=True)), want)
    np.testing.assert_array_equal(np.asarray(dropping(images)), want)
    # In training, branches are dropped per example: some rows move, none becomes NaN.
    trained = np.asarray(dropping(images, training=True))
    assert np.all(np.isfinite(trained))
    assert np.any(np.abs(trained - want).max(axis=1) > 1e-4)
    rates = [layer.rate for layer in dropping.layers
             if isinstance(layer, bit_keras.layers.DropPath)]
    np.testing.assert_allclose(rates, [0.5 * i / 5 for i in range(1, 6)])  # unit 1 has none


def test_three_block_models_for_hybrids():
    model = bit_keras.resnet_v2(units=(3, 4, 9), width=1, base_filters=16, groups=8,
                                include_top=False)
    assert model.architecture == "R50x1" and model.feature_size == 16 * 4 * 4
    out = model(np.zeros((1, 64, 64, 3), np.float32))
    assert tuple(out.shape) == (1, 256)
    assert "block4" not in [layer.name for layer in model.layers]
    with pytest.raises(ValueError, match=r"Valid names for this model are: \['stem', "
                                         r"'block1', 'block2', 'block3', 'pre_logits'\]"):
        bit_keras.feature_extractor(model, ("block4",))


@pytest.mark.parametrize("kwargs,message", [
    (dict(output_stride=4), r"output_stride must be one of \(8, 16, 32\)"),
    (dict(drop_path_rate=1.0), r"drop_path_rate must be a number in \[0, 1\)"),
    (dict(units=(1, 1, 1, 1, 1)), "units must be one to four positive ints"),
])
def test_bad_dense_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bit_keras.resnet_v2(**{**SPEC, **kwargs})


def test_the_feature_pyramid_export_serves_the_block_outputs(weights, tmp_path):
    import onnxruntime
    import tensorflow as tf
    _, path = weights
    model = bit_keras.resnet_v2(**SPEC, output_stride=16)
    bit_keras.load_weights(model, path)
    images = np.random.default_rng(2).random((2, 48, 64, 3)).astype(np.float32)
    want = {k: np.asarray(v) for k, v in bit_keras.feature_extractor(
        model, ("block1", "block2", "block3", "block4"))(images).items()}
    bit_keras.export(model, str(tmp_path / "pyramid"), kind="feature_pyramid")
    served = tf.saved_model.load(str(tmp_path / "pyramid")).signatures["serving_default"](
        images=tf.constant(images))
    assert sorted(served) == sorted(want)
    for name, value in want.items():
        assert rel_err(served[name], value) < 1e-5, name
    assert tuple(served["block4"].shape) == (2, 3, 4, 512)  # stride 16 on 48x64
    bit_keras.export_onnx(model, str(tmp_path / "pyramid.onnx"), kind="feature_pyramid")
    session = onnxruntime.InferenceSession(str(tmp_path / "pyramid.onnx"),
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for name, value in zip(names, session.run(None, {"images": images})):
        assert rel_err(value, want[name]) < 1e-5, name
    assert sorted(names) == sorted(want)
    with pytest.raises(ValueError, match="kind must be one of"):
        bit_keras.export_tflite(model, str(tmp_path / "p.tflite"), kind="feature_pyramid")


def test_build_and_load_take_the_dense_settings(tmp_path):
    from bit_keras.models import variants
    plain = bit_keras.build(variants.TINY, num_classes=3)
    path = bit_keras.save_npz(plain, str(tmp_path / "tiny.npz"))
    model = bit_keras.load(variants.TINY, weights=path, output_stride=8, drop_path_rate=0.1)
    assert (model.output_stride, model.drop_path_rate) == (8, 0.1)
    side = bit_keras.feature_extractor(model, ("block4",))(np.zeros((1, 64, 64, 3)))["block4"]
    assert tuple(side.shape[1:3]) == (8, 8)


def test_the_keras_hub_backbone_takes_the_dense_settings():
    from bit_keras.keras_hub import BiTBackbone  # keras-hub is in the test extra
    backbone = BiTBackbone(units=(1, 1, 1), base_filters=16, groups=8, output_stride=16,
                           drop_path_rate=0.1)
    assert sorted(backbone.pyramid_outputs) == ["P2", "P3", "P4"]  # three blocks: no P5
    again = BiTBackbone.from_config(backbone.get_config())
    assert (again.output_stride, again.drop_path_rate) == (16, 0.1)
