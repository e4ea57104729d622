"""BiT-HyperRule tables at every boundary, both flavours, batch scaling and the Keras adapter."""

import numpy as np
import pytest

from bit_keras import hyperrule as hr

SMALL = (100, 200, 300, 400, 500)
MEDIUM = (500, 3000, 6000, 9000, 10_000)
LARGE = (500, 6000, 12_000, 18_000, 20_000)


@pytest.mark.parametrize("n, code, paper", [
    (1, SMALL, (100, 150, 300, 450, 500)),
    (19_999, SMALL, (100, 150, 300, 450, 500)),
    (20_000, MEDIUM, MEDIUM),
    (499_999, MEDIUM, MEDIUM),
    (500_000, LARGE, LARGE),
    (14_197_122, LARGE, LARGE),
])
def test_schedule_tables(n, code, paper):
    assert hr.schedule(n, "code") == code
    assert hr.schedule(n, "paper") == paper


@pytest.mark.parametrize("n, alpha", [(19_999, 0.0), (20_000, 0.1), (499_999, 0.1), (500_000, 0.1)])
def test_mixup(n, alpha):
    assert hr.mixup_alpha(n) == alpha


@pytest.mark.parametrize("area, arch, code, paper", [
    (96 * 96 - 1, None, (160, 128), (160, 128)),
    ((95, 97), None, (160, 128), (160, 128)),  # 9215 pixels
    (96 * 96, None, (512, 480), (448, 384)),
    ((96, 96), "BiT-M-R50x1", (512, 480), (448, 384)),
    (224 * 224, "BiT-M-R152x4", (512, 480), (512, 480)),
    (32 * 32, "BiT-M-R152x4", (160, 128), (160, 128)),
])
def test_resolution(area, arch, code, paper):
    assert hr.resolution(area, "code", arch) == code
    assert hr.resolution(area, "paper", arch) == paper


def test_official_learning_rate_at_every_support():
    # Official get_lr: warmup from 0, /10 only once step is strictly past a decay support.
    expected = {0: 0.0, 50: 0.0015, 99: 0.003 * 99 / 100, 100: 0.003, 200: 0.003, 201: 0.0003,
                300: 0.0003, 301: 0.00003, 400: 0.00003, 401: 0.000003, 499: 0.000003, 500: None}
    for step, lr in expected.items():
        got = hr.learning_rate(step, SMALL)
        assert (got is None) if lr is None else got == pytest.approx(lr, rel=1e-12), step


def test_batch_scaling():
    lr, supports = hr.scale_for_batch(128, 0.003, MEDIUM)
    assert lr == pytest.approx(0.00075)
    assert supports == (2000, 12_000, 24_000, 36_000, 40_000)
    lr, supports = hr.scale_for_batch(1024, 0.003, SMALL)
    assert (lr, supports) == (pytest.approx(0.006), (50, 100, 150, 200, 250))
    assert hr.scale_for_batch(512, 0.01, LARGE) == (0.01, LARGE)


def test_without_batch_scaling_the_batch_changes_nothing_else():
    """The official train.py: base_lr and the schedule whatever --batch."""
    scaled = hr.hyperrule(50_000, 32 * 32, batch=128)
    official = hr.hyperrule(50_000, 32 * 32, batch=128, batch_scaling=False)
    assert official.learning_rate == 0.003 and official.supports == MEDIUM
    assert official.batch == 128 and scaled.learning_rate == 0.003 * 128 / 512
    assert scaled.supports == tuple(4 * s for s in MEDIUM)
    with pytest.raises(ValueError, match="batch_scaling must be True or False. Received: "
                       "batch_scaling='no'"):
        hr.hyperrule(50_000, 32 * 32, batch_scaling="no")


def test_hyperrule_combines_everything():
    hp = hr.hyperrule(50_000, (32, 32), batch=256, flavour="code")
    assert hp == hr.HyperParams("code", 256, pytest.approx(0.0015),
                                (1000, 6000, 12_000, 18_000, 20_000), 160, 128, 0.1)
    assert hp.steps == 20_000
    assert "batch 256" in hp.describe() and "lr 0.0015" in hp.describe()
    hp = hr.hyperrule(1000, (300, 400), batch=512, flavour="paper", architecture="R152x4")
    assert (hp.resize, hp.crop, hp.supports, hp.mixup_alpha) == (512, 480, (100, 150, 300, 450, 500), 0.0)
    # An explicit step count stretches the batch-scaled schedule.
    assert hr.hyperrule(1000, 64, batch=512, steps=50).supports == (10, 20, 30, 40, 50)


def test_keras_schedule_matches_pure_function():
    for supports, base in [(SMALL, 0.003), ((2000, 12_000, 24_000, 36_000, 40_000), 0.00075)]:
        sched = hr.HyperRuleSchedule(supports, base)
        steps = sorted({0, 1, *supports, *(s - 1 for s in supports), *(s + 1 for s in supports[:-1])})
        steps = [s for s in steps if s < supports[-1]]
        got = np.array([float(sched(s)) for s in steps])
        want = np.array([hr.learning_rate(s, supports, base) for s in steps])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)
        assert hr.HyperRuleSchedule.from_config(sched.get_config()).supports == supports


@pytest.mark.parametrize("call, message", [
    (lambda: hr.schedule(100, "fast"), "flavour must be one of ('code', 'paper'). Received: flavour='fast'"),
    (lambda: hr.schedule(0), "num_examples must be a positive int. Received: num_examples=0"),
    (lambda: hr.scale_for_batch(0, 0.003, SMALL), "batch must be a positive int. Received: batch=0"),
    (lambda: hr.hyperrule(10, 64, steps=-1), "steps must be a positive int or None. Received: steps=-1"),
    (lambda: hr.resolution(0), "image_area must be positive. Received: image_area=0"),
    (lambda: hr.HyperRuleSchedule((5, 3)), "supports must be at least (warmup, end)"),
])
def test_errors_name_the_argument(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
