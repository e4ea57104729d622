"""Checkpoint formats and layouts, strict loading, and one test per error message."""

import os

import numpy as np
import numpy_bit
import pytest
from checkpoint_files import (
    big_vision_params,
    numbered_convolutions,
    timm_state_dict,
    write_bit_tf2_h5,
    write_timm_safetensors,
)
from conftest import TINY

import bit_keras
from bit_keras import CheckpointError


def tiny(num_classes=5, **kw):
    return bit_keras.resnet_v2(num_classes=num_classes, **{**TINY, **kw})


@pytest.fixture
def weights():
    return numpy_bit.random_weights((1, 1, 1, 1), 1, 5, base=16, seed=3)


@pytest.fixture
def npz(tmp_path, weights):
    path = tmp_path / "tiny.npz"
    np.savez(path, **weights)
    return str(path)


def snapshot(model):
    return [w.copy() for w in model.get_weights()]


def assert_unchanged(model, before):
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_npz_round_trip_is_exact(tmp_path, weights, images):
    model = bit_keras.load_weights(tiny(), weights)
    path = tmp_path / "out" / "saved.npz"
    bit_keras.save_npz(model, path)
    with np.load(path, allow_pickle=False) as saved:
        assert sorted(saved.files) == sorted(weights)
        for k in weights:
            np.testing.assert_array_equal(saved[k], weights[k])
    again = bit_keras.load_weights(tiny(), str(path))
    np.testing.assert_array_equal(np.asarray(again(images)), np.asarray(model(images)))
    assert not [f for f in os.listdir(path.parent) if f != "saved.npz"]  # no temp file left


def test_h5_and_timm_files_give_the_npz_logits(tmp_path, weights, npz, images):
    want = np.asarray(bit_keras.load_weights(tiny(), npz)(images))
    write_bit_tf2_h5(weights, tmp_path / "tiny.h5")
    write_timm_safetensors(weights, tmp_path / "tiny.safetensors")
    np.savez(tmp_path / "timm.npz", **timm_state_dict(weights))
    for name in ("tiny.h5", "tiny.safetensors", "timm.npz"):
        got = np.asarray(bit_keras.load_weights(tiny(), str(tmp_path / name))(images))
        np.testing.assert_array_equal(got, want)


def test_save_npz_timm_layout_loads_back(tmp_path, weights, images):
    model = bit_keras.load_weights(tiny(), weights)
    bit_keras.save_npz(model, tmp_path / "t.npz", layout="timm")
    with np.load(tmp_path / "t.npz", allow_pickle=False) as f:
        assert f["stem.conv.weight"].shape == (16, 3, 7, 7)
        assert f["head.fc.weight"].shape == (5, 512, 1, 1)
    got = bit_keras.load_weights(tiny(), str(tmp_path / "t.npz"))(images)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(model(images)))


def test_load_by_name_keeps_or_replaces_the_head(tmp_path, images):
    w = numpy_bit.random_weights((3, 4, 6, 3), 1, 1000, seed=0)
    path = tmp_path / "BiT-S-R50x1.npz"
    np.savez(path, **w)
    kept = bit_keras.load("BiT-S-R50x1", weights=str(path))
    assert kept.output.shape[-1] == 1000
    np.testing.assert_array_equal(kept.get_layer("head").kernel.numpy(), w["resnet/head/conv2d/kernel"][0, 0])
    fresh = bit_keras.load("BiT-S-R50x1", weights=str(path), num_classes=3)
    assert fresh.output.shape[-1] == 3
    assert not np.any(fresh.get_layer("head").kernel.numpy())
    np.testing.assert_array_equal(fresh.get_layer("block4_unit03_c_conv").kernel.numpy(),
                                  w["resnet/block4/unit03/c/standardized_conv2d/kernel"])
    feats = bit_keras.load("BiT-S-R50x1", weights=str(path), include_top=False)
    x = images[:1]
    np.testing.assert_allclose(np.asarray(feats(x)),
                               np.asarray(bit_keras.feature_extractor(kept, ["pre_logits"])(x)["pre_logits"]),
                               rtol=1e-6, atol=1e-6)


def test_missing_file(tiny_model):
    with pytest.raises(CheckpointError, match="Checkpoint file not found: .*nowhere.npz"):
        bit_keras.load_weights(tiny_model, "/nowhere.npz")


def test_unknown_suffix(tmp_path, tiny_model):
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"Unknown checkpoint kind '.pt'.*Accepted: .npz, .h5"):
        bit_keras.load_weights(tiny_model, str(tmp_path / "w.pt"))


def test_truncated_file_names_the_file(tmp_path, npz, tiny_model):
    data = open(npz, "rb").read()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[: len(data) // 2])
    before = snapshot(tiny_model)
    with pytest.raises(CheckpointError, match="Cannot read checkpoint .*cut.npz.*truncated or corrupt"):
        bit_keras.load_weights(tiny_model, str(bad))
    assert_unchanged(tiny_model, before)


def test_corrupt_h5_names_the_file(tmp_path, tiny_model):
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n" + os.urandom(300))
    with pytest.raises(CheckpointError, match="Cannot read checkpoint .*junk.h5"):
        bit_keras.load_weights(tiny_model, str(tmp_path / "junk.h5"))


def test_pickled_object_is_refused(tmp_path, weights, tiny_model):
    path = tmp_path / "pickled.npz"
    np.savez(path, **weights, evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="pickled objects; bit_keras never unpickles"):
        bit_keras.load_weights(tiny_model, str(path))


def test_wrong_architecture_lists_both_sides(tmp_path, tiny_model):
    other = numpy_bit.random_weights((2, 1, 1, 1), 2, 5, base=16)
    path = tmp_path / "other.npz"
    np.savez(path, **other)
    before = snapshot(tiny_model)
    with pytest.raises(CheckpointError) as e:
        bit_keras.load_weights(tiny_model, str(path))
    msg = str(e.value)
    assert "looks like: units per block (2, 1, 1, 1), stem width 32" in msg
    assert "The model is: units per block (1, 1, 1, 1), stem width 16" in msg
    assert "unexpected in the checkpoint (9): resnet/block1/unit02/a/group_norm/beta" in msg
    assert "shape mismatches" in msg and "resnet/block1/unit01/a/proj/standardized_conv2d/kernel: checkpoint (1, 1, 32, 128) vs model (1, 1, 16, 64)" in msg
    assert_unchanged(tiny_model, before)


def test_missing_keys_are_listed(weights, tiny_model):
    partial = dict(weights)
    del partial["resnet/block2/unit01/b/group_norm/gamma"]
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint \(1\): resnet/block2/unit01/b/group_norm/gamma"):
        bit_keras.load_weights(tiny_model, partial)


def test_real_size_architecture_is_recognised(tmp_path, tiny_model):
    path = tmp_path / "r50.npz"
    np.savez(path, **numpy_bit.random_weights((3, 4, 6, 3), 1, 10, base=64))
    with pytest.raises(CheckpointError, match=r"looks like: R50x1, units per block \(3, 4, 6, 3\), stem width 64, 10-way head"):
        bit_keras.load_weights(tiny_model, str(path))


def test_non_finite_tensor(tmp_path, weights, tiny_model):
    weights["resnet/group_norm/beta"][0] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, **weights)
    with pytest.raises(CheckpointError, match="resnet/group_norm/beta has NaN or infinite"):
        bit_keras.load_weights(tiny_model, str(path))


def test_integer_tensor(tmp_path, weights, tiny_model):
    weights["resnet/group_norm/beta"] = np.zeros(512, np.int32)
    path = tmp_path / "int.npz"
    np.savez(path, **weights)
    with pytest.raises(CheckpointError, match="resnet/group_norm/beta has dtype int32; expected floats"):
        bit_keras.load_weights(tiny_model, str(path))


def test_foreign_keys(tmp_path, tiny_model):
    path = tmp_path / "foreign.npz"
    np.savez(path, **{"encoder.layer.0.weight": np.zeros(3, np.float32)})
    with pytest.raises(CheckpointError, match="no tensor of a known BiT layout"):
        bit_keras.load_weights(tiny_model, str(path))


def test_known_broken_bit_tf2_h5_points_to_npz(tmp_path, weights, tiny_model):
    # big_transfer #47: BiT-S-R50x3.h5 carries a 64-channel stem in a 192-channel model.
    weights["resnet/root_block/standardized_conv2d/kernel"] = np.zeros((7, 7, 3, 8), np.float32)
    path = tmp_path / "BiT-S-R50x3.h5"
    write_bit_tf2_h5(weights, path)
    before = snapshot(tiny_model)
    with pytest.raises(CheckpointError, match=r"inconsistent.*issue #47.*BiT-S-R50x3.npz"):
        bit_keras.load_weights(tiny_model, str(path))
    assert_unchanged(tiny_model, before)


def test_checkpoint_without_head_needs_num_classes(tmp_path):
    path = tmp_path / "nohead.npz"
    np.savez(path, **numpy_bit.random_weights((3, 4, 6, 3), 1, 0))
    with pytest.raises(CheckpointError, match="has no head; pass num_classes=N"):
        bit_keras.load("R50x1", weights=str(path))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"num_classes must be a positive int or None. Received: num_classes=0"):
        bit_keras.build("BiT-M-R50x1", num_classes=0)
    with pytest.raises(ValueError, match=r"Unknown BiT model name: 'BiT-X-R50x1'. Valid names are: BiT-S-R50x1, BiT-M-R50x1"):
        bit_keras.build("BiT-X-R50x1")
    with pytest.raises(ValueError, match="num_classes is required for the bare architecture 'R26x1'"):
        bit_keras.build("R26x1")
    with pytest.raises(ValueError, match=r"layout must be one of \['official', 'timm', 'big_vision'\]"):
        bit_keras.save_npz(None, "x.npz", layout="keras")


# --- Every published layout through the one strict loader: the numbered-convolution official
# files and big_vision's bit_paper checkpoints (bare, params/, opt/target/), to the official
# layout's logits; big_vision's layout written back by save_npz(..., layout="big_vision").

@pytest.fixture
def official_logits(weights, images):
    return np.asarray(bit_keras.load_weights(tiny(), weights)(images))


def assert_logits_close(got, want):
    got = np.asarray(got)
    assert np.max(np.abs(got - want)) <= 1e-4 * max(np.max(np.abs(want)), 1e-6)


def test_numbered_convolution_names_load_to_the_official_logits(tmp_path, weights,
                                                                  official_logits, images):
    numbered = numbered_convolutions(weights)
    assert "resnet/block1/unit01/a/standardized_conv2d_1/kernel" in numbered  # the quirk
    np.savez(tmp_path / "numbered.npz", **numbered)
    got = bit_keras.load_weights(tiny(), str(tmp_path / "numbered.npz"))(images)
    assert_logits_close(got, official_logits)
    # The quirk still goes through the strict check: a missing tensor is named.
    del numbered["resnet/block1/unit01/b/standardized_conv2d_2/kernel"]
    np.savez(tmp_path / "short.npz", **numbered)
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint \(1\): "
                       r"resnet/block1/unit01/b/standardized_conv2d/kernel"):
        bit_keras.load_weights(tiny(), str(tmp_path / "short.npz"))


@pytest.mark.parametrize("prefix", ["", "params/", "opt/target/"])
def test_big_vision_checkpoints_load_to_the_official_logits(tmp_path, weights, official_logits,
                                                             images, prefix):
    tree = {prefix + k: v for k, v in big_vision_params(weights).items()}
    if prefix:  # a training checkpoint holds more than the parameters
        other = "opt/state/" if prefix == "opt/target/" else "opt/"
        tree.update({other + "momentum/head/kernel": np.ones((512, 5), np.float32),
                     "chrono/accum_train_time": np.float64(12.5)})
    np.savez(tmp_path / "bv.npz", **tree)
    got = bit_keras.load_weights(tiny(), str(tmp_path / "bv.npz"))(images)
    assert_logits_close(got, official_logits)


def test_a_big_vision_file_that_does_not_fit_lists_both_sides(tmp_path, weights):
    tree = big_vision_params(weights)
    tree["block1/unit01/gn9/scale"] = tree.pop("block1/unit01/gn1/scale")
    np.savez(tmp_path / "odd.npz", **tree)
    with pytest.raises(CheckpointError, match=r"keys that belong to no BiT weight: "
                       r"\['block1/unit01/gn9/scale'\]"):
        bit_keras.read_checkpoint(tmp_path / "odd.npz")
    wide = numpy_bit.random_weights((1, 1, 1, 1), 2, 5, base=16, seed=3)
    np.savez(tmp_path / "wide.npz", **{"params/" + k: v for k, v in big_vision_params(wide).items()})
    model = tiny()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(CheckpointError) as err:
        bit_keras.load_weights(model, str(tmp_path / "wide.npz"))
    assert "The checkpoint looks like: units per block (1, 1, 1, 1), stem width 32" in str(err.value)
    assert "The model is: units per block (1, 1, 1, 1), stem width 16" in str(err.value)
    assert "shape mismatches" in str(err.value)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_npz_big_vision_layout_is_big_vision_s_tree_and_loads_back(tmp_path, weights,
                                                                          images):
    model = bit_keras.load_weights(tiny(), weights)
    bit_keras.save_npz(model, tmp_path / "bv.npz", layout="big_vision")
    want = {"params/" + k: v for k, v in big_vision_params(weights).items()}
    with np.load(tmp_path / "bv.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == sorted(want)
        for k, v in want.items():
            assert saved[k].shape == v.shape, k
            np.testing.assert_array_equal(saved[k], v)
    again = bit_keras.load_weights(tiny(), str(tmp_path / "bv.npz"))(images)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(model(images)))
    # and a headless feature extractor writes no head
    backbone = bit_keras.load_weights(tiny(num_classes=None, include_top=False), weights,
                                      skip_head=True)
    bit_keras.save_npz(backbone, tmp_path / "backbone.npz", layout="big_vision")
    with np.load(tmp_path / "backbone.npz", allow_pickle=False) as saved:
        assert not [k for k in saved.files if k.startswith("params/head/")]


def _npz_bomb(path, weights, name, shape, body_bytes=None):
    """A real .npz: the model's arrays and one member whose .npy header declares ``shape``
    (float32) followed by zeros (``body_bytes`` of them; default all it declares), deflated:
    a few hundred KB on disk."""
    import zipfile
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in weights.items():
            with archive.open(key + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(value))
        with archive.open(name + ".npy", "w", force_zip64=True) as f:
            header = {"descr": "<f4", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(f, header)
            left = int(np.prod(shape)) * 4 if body_bytes is None else body_bytes
            zeros = bytes(1 << 22)
            while left > 0:
                f.write(zeros[:min(left, len(zeros))])
                left -= len(zeros)
    return str(path)


def test_an_npz_that_declares_more_than_the_architecture_holds_is_refused_unread(
        tmp_path, weights, tiny_model):
    """A zip bomb: 200 MB of float32 in a member of 200 KB; the header is read,
    the member never is."""
    path = _npz_bomb(tmp_path / "bomb.npz", weights, "resnet/head/conv2d/extra", (50_000_000,))
    assert os.path.getsize(path) < 3_000_000  # the tiny model's weights, and 200 KB
    before = snapshot(tiny_model)
    with pytest.raises(CheckpointError, match=r"bomb.npz declares 50,\d\d\d,\d\d\d values \("
                       r"'resnet/head/conv2d/extra' alone 50,000,000\), more than the [\d,]+ "
                       r"the architecture can hold \(max_params\).*Nothing was read"):
        bit_keras.load_weights(tiny_model, path)
    assert_unchanged(tiny_model, before)
    # Without a model, the bound is BiT's largest architecture with its largest head.
    lying = _npz_bomb(tmp_path / "lying.npz", weights, "x", (2_000_000_000,), body_bytes=64)
    with pytest.raises(CheckpointError, match=r"declares 2,000,\d\d\d,\d\d\d values .* more "
                                              r"than the 1,200,000,000"):
        bit_keras.read_checkpoint(lying)
    assert bit_keras.checkpoints.formats.architecture_params((3, 4, 6, 3), 1) == 68_256_659


def test_an_h5_that_declares_more_than_the_architecture_holds_is_refused_unread(
        tmp_path, weights, tiny_model):
    import h5py
    path = tmp_path / "bomb.h5"
    write_bit_tf2_h5(weights, str(path))
    with h5py.File(path, "a") as f:  # chunked and compressed: declared, never written
        f.create_dataset("extra", shape=(60_000_000,), dtype="f4", chunks=(1 << 20,),
                         compression="gzip")
    with pytest.raises(CheckpointError, match=r"bomb.h5 declares 60,\d\d\d,\d\d\d values"):
        bit_keras.load_weights(tiny_model, str(path))
