"""bit_keras.vtab: the VTAB-1k split arithmetic, the task table, and the protocol on small
TFDS stand-ins for three tasks (one per split rule), resumable task by task."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

import bit_keras
from bit_keras import vtab

SIDE = 24


@dataclasses.dataclass(eq=False)
class StandInConfig(tfds.core.BuilderConfig):
    splits: tuple = ()
    label: str = "label"
    classes: int = 3
    channels: int = 3


class VtabStandIn(tfds.core.GeneratorBasedBuilder):
    """Small stand-ins: the class is the image's dominant colour (or grey level)."""

    code_path = epath.Path(__file__)
    pkg_dir_path = epath.Path(__file__).parent
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        # like dtd: train / validation / test splits
        StandInConfig(name="with_validation", splits=(("train", 900), ("validation", 240),
                                                      ("test", 60))),
        # like smallnorb: one grey channel, val and test are the halves of TFDS test
        StandInConfig(name="test_halves", splits=(("train", 850), ("test", 400)),
                      label="label_azimuth", channels=1),
        # like dsprites: one TFDS split cut 80/10/10, 6 values binned into 3 classes
        StandInConfig(name="one_split", splits=(("train", 2000),), label="label_x_position",
                      classes=6),
        # like clevr: train cut 90% / test, the label counted from 3 to 5 annotated objects
        StandInConfig(name="with_objects", splits=(("train", 2000), ("test", 90)),
                      label="objects"),
    ]

    def _info(self):
        c = self.builder_config
        label = (tfds.features.Sequence({
            "size": tfds.features.ClassLabel(num_classes=2),
            "pixel_coords": tfds.features.Tensor(shape=(3,), dtype=np.float32)})
            if c.label == "objects" else tfds.features.ClassLabel(num_classes=c.classes))
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(SIDE, SIDE, c.channels)), c.label: label}))

    def _split_generators(self, dl_manager):
        return {name: self._generate_examples(name, n) for name, n in self.builder_config.splits}

    def _generate_examples(self, split, n):
        c = self.builder_config
        rng = np.random.default_rng(len(split))
        for i in range(n):
            label = i % c.classes
            klass = label * 3 // c.classes
            image = rng.integers(0, 60, (SIDE, SIDE, c.channels)).astype(np.uint8)
            image[..., klass % c.channels] += 150 if c.channels == 3 else 95 * klass
            if c.label == "objects":
                n = 3 + klass
                label = {"size": [0] * n, "pixel_coords": np.ones((n, 3), np.float32)}
            yield f"{split}{i}", {"image": image, c.label: label}


def stand_in(name, config):
    task = vtab.TASKS[name]
    return dataclasses.replace(task, tfds=f"vtab_stand_in/{config}", num_classes=3)


def test_split_arithmetic_follows_task_adaptation():
    counts = {"train": 3060, "test": 6084}
    s = vtab.splits(vtab.TASKS["caltech101"], counts)
    assert s == {"train800": "train[:800]", "val200": "train[2754:2954]",
                 "train800val200": "train[:800]+train[2754:2954]", "test": "test"}
    s = vtab.splits(vtab.TASKS["eurosat"], {"train": 27000})
    assert s["val200"] == "train[16200:16400]" and s["test"] == "train[21600:]"
    s = vtab.splits(vtab.TASKS["dsprites-xpos"], {"train": 737280})
    assert s["val200"] == "train[589824:590024]" and s["test"] == "train[663552:]"
    assert vtab.splits(vtab.TASKS["dtd"], {})["train800val200"] == "train[:800]+validation[:200]"
    s = vtab.splits(vtab.TASKS["smallnorb-azimuth"], {})
    assert s["val200"] == "test[:200]" and s["test"] == "test[50%:]"


def test_the_table_holds_19_tasks_in_three_categories_with_the_bucket_heads():
    assert len(vtab.TASKS) == 19
    counts = {c: sum(t.category == c for t in vtab.TASKS.values()) for c in vtab.CATEGORIES}
    assert counts == {"natural": 7, "specialized": 4, "structured": 8}
    assert {n: t.num_classes for n, t in vtab.TASKS.items()} == bit_keras.models.variants.VTAB_TASKS


def test_the_protocol_on_stand_ins_resumes_task_by_task(tmp_path):
    tasks = [stand_in("dtd", "with_validation"),
             stand_in("smallnorb-azimuth", "test_halves"),
             dataclasses.replace(stand_in("dsprites-xpos", "one_split"), bins=2),
             stand_in("clevr-count", "with_objects")]
    model = bit_keras.build("R14x1-tiny", include_top=False)
    options = dict(data_dir=str(tmp_path / "tfds"), batch=16, steps=30, base_lr=0.3,
                   resize=28, crop=SIDE, checkpoint_every=10, progress=False)
    results, summary = vtab.run(model, str(tmp_path / "run"), tasks=tasks, **options)
    assert list(results) == ["dtd", "smallnorb-azimuth", "dsprites-xpos", "clevr-count"]
    assert results["dtd"]["test_examples"] == 60            # TFDS test
    assert results["smallnorb-azimuth"]["test_examples"] == 200   # the second half of test
    assert results["dsprites-xpos"]["test_examples"] == 200       # train[1800:]
    assert results["clevr-count"]["test_examples"] == 90          # TFDS test
    for name, r in results.items():
        assert r["accuracy"] > 0.6, (name, r)   # chance is 1/3: colours are easy
    assert summary["mean"] == pytest.approx(np.mean([r["accuracy"] for r in results.values()]))
    assert summary["natural"] == results["dtd"]["accuracy"] and summary["specialized"] is None
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["results"] == results and saved["mean"] == summary["mean"]
    assert "| **mean** |" in (tmp_path / "run" / "summary.md").read_text()
    # Scored tasks are not run again: a run that could not train still returns them.
    again, _ = vtab.run(model, str(tmp_path / "run"), tasks=tasks,
                        **{**options, "steps": 1})
    assert again == results


def test_computed_labels_follow_task_adaptation():
    """Labels from object annotations, on hand-made examples (thresholds of
    task_adaptation's clevr.py and kitti.py)."""
    clevr = {"objects": {"size": tf.zeros([5], tf.int64),
                         "pixel_coords": tf.constant([[0, 0, 9.2], [0, 0, 12.0]])}}
    assert int(vtab.tasks.label_of(vtab.TASKS["clevr-count"], clevr)) == 2   # 5 objects
    # depth 9.2: above the thresholds 0, 8, 8.5 and 9 -> bin 3
    assert int(vtab.tasks.label_of(vtab.TASKS["clevr-distance"], clevr)) == 3
    kitti = {"objects": {"type": tf.constant([0, 4, 2]),
                         "location": tf.constant([[0, 0, 25.0], [0, 0, 5.0], [0, 0, 15.0]])}}
    # vehicles (types < 3) at 25 and 15 m (the pedestrian at 5 m is not one): 15 -> bin 1
    assert int(vtab.tasks.label_of(vtab.TASKS["kitti-distance"], kitti)) == 1
    nobody = {"objects": {"type": tf.constant([4]), "location": tf.constant([[0, 0, 5.0]])}}
    assert int(vtab.tasks.label_of(vtab.TASKS["kitti-distance"], nobody)) == 3   # no vehicle
    dsprites = {"label_orientation": tf.constant(39, tf.int64)}
    assert int(vtab.tasks.label_of(vtab.TASKS["dsprites-orientation"], dsprites)) == 15


def test_unknown_tasks_are_refused_before_anything_runs(tmp_path):
    model = bit_keras.build("R14x1-tiny", include_top=False)
    with pytest.raises(ValueError, match=r"Unknown VTAB-1k tasks \['imagenet'\]. Accepted: "
                       "caltech101, "):
        vtab.run(model, str(tmp_path / "run"), tasks=["dtd", "imagenet"])
    assert not (tmp_path / "run").exists()
