"""The README's main job, reduced: the whole chain runs and reports what it measured."""

import json
import os

import pytest

from bit_keras import demo


def test_tiny_demo_runs_the_whole_chain(tmp_path):
    out = str(tmp_path / "demo")
    report = demo.run(demo.DemoConfig.tiny(out=out))
    for path in ("pretrain/weights.npz", "export/feature_vector/saved_model.pb", "results.json",
                 "fewshot.png"):
        assert os.path.exists(os.path.join(out, path)), path
    saved = json.load(open(os.path.join(out, "results.json")))
    assert saved["table"] == report["table"]
    for method in ("linear_probe", "fine_tune"):
        for name in ("pretrained", "scratch"):
            accs = saved["table"][method][name]
            assert sorted(accs) == ["1", "5"] and all(0 <= a <= 1 for a in accs.values())
    assert "hub.KerasLayer" in report["text"]
    assert saved["details"]["linear_probe"]["pretrained"]["num_classes"] == 24


def test_real_inputs_need_model_and_dataset(tmp_path):
    with pytest.raises(ValueError, match="--weights needs --model"):
        demo.run(demo.DemoConfig(out=str(tmp_path), weights="BiT-M-R50x1.npz"))
