"""The README's main job: its checks (the whole tiny chain runs in tests/test_cli.py, through
the console script, as a user starts it)."""


import pytest

from bit_keras import demo


def test_real_inputs_need_model_and_dataset(tmp_path):
    with pytest.raises(ValueError, match="--weights needs --model"):
        demo.run(demo.DemoConfig(out=str(tmp_path), weights="BiT-M-R50x1.npz"))
