"""BiT in keras-hub (issue 27): the backbone, classifier and converter, presets, the command.

Tiny models (R14, base 16 channels, 8 groups). keras-hub's own base classes load the preset
folders ``bit_keras.save_preset`` writes, to ``bit_keras.load``'s logits, on TensorFlow here
and on JAX and PyTorch each in a child process (tests/keras_hub_child.py).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import TINY
from numpy_bit import random_weights

import bit_keras
from bit_keras.models import variants

keras_hub = pytest.importorskip("keras_hub")
import bit_keras.keras_hub as bkh  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENV = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
CLASSES = 5
SIDE = 40  # the presets' converter side: the test images are that size, so no resize


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.npz"
    np.savez(path, **random_weights(TINY["units"], 1, CLASSES, base=16, seed=3))
    return str(path)


@pytest.fixture(scope="module")
def raw_images():
    return np.random.default_rng(0).integers(0, 256, (3, SIDE, SIDE, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def preset(checkpoint, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("presets") / "tiny_preset")
    return bkh.save_preset(variants.TINY, checkpoint, out, image_size=SIDE,
                           class_names=[f"c{i}" for i in range(CLASSES)])


def reference_logits(checkpoint, raw_images):
    model = bit_keras.load(variants.TINY, weights=checkpoint)
    return np.asarray(model(raw_images.astype(np.float32) / 255.0))


def test_pyramid_levels_have_strides_4_to_32():
    backbone = bkh.BiTBackbone(**TINY)
    pyramid = keras.Model(backbone.input, backbone.pyramid_outputs)(np.zeros((1, 64, 96, 3)))
    assert {k: tuple(v.shape) for k, v in pyramid.items()} == {
        "P2": (1, 16, 24, 64), "P3": (1, 8, 12, 128), "P4": (1, 4, 6, 256), "P5": (1, 2, 3, 512)}
    assert tuple(backbone(np.zeros((1, 64, 96, 3))).shape) == (1, 2, 3, 512)
    assert isinstance(backbone, keras_hub.models.FeaturePyramidBackbone)


def test_retinanet_builds_its_fpn_on_the_pyramid():
    encoder = bkh.BiTBackbone(**TINY)
    retinanet = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3,
                                                    max_level=7, use_p5=False,
                                                    image_shape=(64, 64, 3))
    out = retinanet(np.zeros((1, 64, 64, 3), np.float32))
    assert {k: tuple(v.shape)[1:3] for k, v in out.items()} == {
        "P3": (8, 8), "P4": (4, 4), "P5": (2, 2), "P6": (1, 1), "P7": (1, 1)}


def test_backbone_carries_its_spec_through_its_config():
    backbone = bkh.BiTBackbone(**TINY, image_shape=(None, None, 3), variant=variants.TINY)
    config = backbone.get_config()
    assert {k: config[k] for k in ("units", "width", "base_filters", "groups", "variant")} == {
        "units": [1, 1, 1, 1], "width": 1, "base_filters": 16, "groups": 8,
        "variant": variants.TINY}
    again = bkh.BiTBackbone.from_config(config)
    assert again.units == (1, 1, 1, 1) and again.count_params() == backbone.count_params()


def test_the_strict_loader_loads_into_the_backbone(checkpoint, raw_images):
    backbone = bkh.BiTBackbone(**TINY)
    bit_keras.load_weights(backbone, checkpoint, skip_head=True)
    model = bit_keras.load(variants.TINY, weights=checkpoint)
    x = raw_images.astype(np.float32) / 255.0
    ours = keras.Model(backbone.input, backbone.pyramid_outputs)(x)
    theirs = bit_keras.feature_extractor(model, ("block1", "block4"))(x)
    np.testing.assert_array_equal(np.asarray(ours["P2"]), np.asarray(theirs["block1"]))
    np.testing.assert_array_equal(np.asarray(ours["P5"]), np.asarray(theirs["block4"]))
    with pytest.raises(bit_keras.CheckpointError, match="unexpected in the checkpoint"):
        bit_keras.load_weights(bkh.BiTBackbone(**TINY), checkpoint)  # the head has no home


def test_converter_takes_0_255_pixels_to_bits_0_1():
    converter = bkh.BiTImageConverter(image_size=(8, 8))
    out = np.asarray(converter(np.full((1, 8, 8, 3), 255, np.uint8)))
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)


def test_preset_folder_holds_config_weights_converter_names_metadata(preset):
    files = set(os.listdir(preset))
    assert {"config.json", "model.weights.h5", "task.json", "task.weights.h5",
            "preprocessor.json", "image_converter.json", "metadata.json",
            "class_names.txt"} <= files
    metadata = json.load(open(os.path.join(preset, "metadata.json")))
    assert metadata["bit_keras"]["variant"] == variants.TINY
    assert metadata["bit_keras"]["image_size"] == SIDE and "ImageClassifier" in metadata["tasks"]
    assert open(os.path.join(preset, "class_names.txt")).read().split() == [
        f"c{i}" for i in range(CLASSES)]


def test_keras_hub_loads_the_preset_to_bit_keras_logits(preset, checkpoint, raw_images):
    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    assert isinstance(classifier, bkh.BiTImageClassifier)
    expected = reference_logits(checkpoint, raw_images)
    np.testing.assert_allclose(classifier.predict(raw_images, verbose=0), expected,
                               atol=1e-5 * np.abs(expected).max())
    backbone = keras_hub.models.Backbone.from_preset(preset)
    assert isinstance(backbone, bkh.BiTBackbone) and backbone.units == (1, 1, 1, 1)


def test_a_headless_model_gives_a_backbone_preset(tmp_path):
    model = bit_keras.resnet_v2(**TINY, include_top=False)
    out = bkh.save_preset(model, out_dir=str(tmp_path / "headless"))
    assert "task.json" not in os.listdir(out) and "image_converter.json" in os.listdir(out)
    backbone = keras_hub.models.Backbone.from_preset(out)
    x = np.random.default_rng(2).random((1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(bit_keras.feature_extractor(model, ("block4",))(x)["block4"]),
        np.asarray(keras.Model(backbone.input, backbone.pyramid_outputs["P5"])(x)))
    assert json.load(open(os.path.join(out, "image_converter.json")))["config"]["image_size"] == [
        224, 224]


def test_an_upstream_head_gets_its_shipped_class_names_and_side(tmp_path):
    # A tiny network labelled as BiT-S-R50x1 (1000 ILSVRC-2012 classes, trained at 224).
    model = bit_keras.models.BiTModel(**TINY, num_classes=1000, variant="BiT-S-R50x1")
    out = bkh.save_preset(model, out_dir=str(tmp_path / "upstream"))
    names = open(os.path.join(out, "class_names.txt")).read().splitlines()
    assert len(names) == 1000 and names[:2] == bit_keras.class_names("BiT-S-R50x1")[:2]
    converter = json.load(open(os.path.join(out, "image_converter.json")))["config"]
    assert converter["image_size"] == [224, 224] and converter["scale"] == pytest.approx(1 / 255)


def test_the_folder_passes_upload_presets_local_checks(preset, tmp_path):
    # No network: an unknown scheme fails only after keras-hub has validated the folder,
    # and the model card an hf:// upload writes is made (then removed) from it.
    with pytest.raises(ValueError, match="Unknown URI"):
        keras_hub.upload_preset("local://bit", preset)
    from keras_hub.src.utils import preset_utils
    preset_utils.create_model_card(preset)
    card = open(os.path.join(preset, "README.md")).read()
    preset_utils.delete_model_card(preset)
    assert "BiT" in card and "units" in card and not os.path.exists(
        os.path.join(preset, "README.md"))


def test_save_preset_errors(preset, tmp_path):
    with pytest.raises(FileExistsError, match="already exists"):
        bkh.save_preset(variants.TINY, None, preset)
    with pytest.raises(ValueError, match="out_dir must name a folder"):
        bkh.save_preset(variants.TINY)
    with pytest.raises(ValueError, match="weights is for a model name"):
        bkh.save_preset(bit_keras.resnet_v2(**TINY, num_classes=2), "x.npz", str(tmp_path / "p"))
    with pytest.raises(ValueError, match="one name per class"):
        bkh.save_preset(bit_keras.resnet_v2(**TINY, num_classes=2), out_dir=str(tmp_path / "p"),
                        class_names=["a"])
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        bkh.save_preset(bit_keras.resnet_v2(**TINY, num_classes=2), out_dir=str(tmp_path / "p"),
                        image_size=0)
    assert not os.path.exists(tmp_path / "p")


def test_preset_names_cover_every_public_model_and_the_guide_shows_the_table():
    assert bkh.preset_name("BiT-M-R50x1-ILSVRC2012") == "bit_m_r50x1_ilsvrc2012"
    public = set(bkh.PUBLIC_PRESETS)
    assert {"BiT-S-R50x1", "BiT-M-R152x4", "BiT-M-R101x3-ILSVRC2012",
            "BiT-M-R50x1-distilled-224", "BiT-M-R152x2-teacher-384"} <= public
    assert not any(n.startswith("BiT-L") or "-run" in n for n in public)
    assert len(public) == 6 * 3 + 4
    guide = open(os.path.join(ROOT, "docs", "keras_hub.md"), encoding="utf-8").read()
    assert bkh.preset_table() in guide


def test_the_command_writes_a_preset_and_refuses_to_overwrite(checkpoint, raw_images, tmp_path):
    out = str(tmp_path / "cli_preset")
    args = [sys.executable, "-m", "bit_keras", "preset", "--model", variants.TINY, "--weights",
            checkpoint, "--out", out, "--image_size", str(SIDE)]
    proc = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split() == [out], proc.stderr[-3000:]
    assert "config.json" in os.listdir(out)
    proc = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("preset: error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "already exists" in errors[0]


def test_import_bit_keras_imports_keras_hub_only_when_already_imported():
    code = "import sys, bit_keras; print('keras_hub' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.stdout.split() == ["False"], proc.stderr[-2000:]
    # keras-hub imported first: import bit_keras registers the classes by itself.
    code = ("import keras, keras_hub, bit_keras; "
            "print(keras.saving.get_registered_object('bit_keras>BiTBackbone').__name__)")
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.stdout.split() == ["BiTBackbone"], proc.stderr[-2000:]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_preset_gives_the_same_logits_on_every_backend(backend, preset, checkpoint,
                                                          raw_images, tmp_path):
    np.save(tmp_path / "images.npy", raw_images)
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "keras_hub_child.py"), preset,
         str(tmp_path / "images.npy"), str(tmp_path / "out.npz")],
        env={**ENV, "KERAS_BACKEND": backend}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    assert str(out["backend"]) == backend and str(out["backbone_class"]) == "BiTBackbone"
    expected = reference_logits(checkpoint, raw_images)
    np.testing.assert_allclose(out["logits"], expected, atol=1e-5 * np.abs(expected).max())
    assert tuple(out["shape/P5"]) == (3, 2, 2, 512) and tuple(out["shape/P2"]) == (3, 10, 10, 64)
