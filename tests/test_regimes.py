"""Loss-curve regime detection (toymodel.analysis.regimes) on synthetic curves with known stages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toymodel.analysis.regimes import detect_regimes

STEPS = np.arange(100, 20_001, 100, dtype=np.float64)


def _sigmoid(t: np.ndarray, at: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(t - at) / width))


def staged(
    levels: tuple[float, ...],
    drops_at: tuple[float, ...],
    noise: float = 0.01,
    seed: int = 0,
    width: float = 150.0,
) -> np.ndarray:
    """A fast initial descent onto levels[0], then quick falls to each next level at drops_at."""
    log = np.full(STEPS.shape, np.log(levels[0]))
    for a, b, at in zip(levels, levels[1:], drops_at, strict=False):
        log += (np.log(b) - np.log(a)) * _sigmoid(STEPS, at, width)
    log += 2.0 * np.exp(-STEPS / 300.0)  # descent from the init
    rng = np.random.default_rng(seed)
    return np.exp(log + rng.normal(0.0, noise, STEPS.shape))


def test_two_stages_are_two_events() -> None:
    reg = detect_regimes(STEPS, staged((1.0, 0.5, 0.2), (6000, 13_000)))
    assert reg.count == 2, reg.describe()
    assert reg.drop_steps == pytest.approx((6000, 13_000), abs=300)
    assert [p.level for p in reg.events] == pytest.approx([1.0, 0.5], rel=0.03)
    assert [p.next_level for p in reg.events] == pytest.approx([0.5, 0.2], rel=0.03)
    assert reg.events[0].drop == pytest.approx(np.log(2), abs=0.05)


def test_the_initial_descent_is_not_an_event() -> None:
    reg = detect_regimes(STEPS, staged((1.0,), ()))
    assert reg.count == 0, reg.describe()
    assert len(reg.plateaus) >= 1


def test_a_small_drop_is_not_an_event() -> None:
    reg = detect_regimes(STEPS, staged((1.0, 0.95), (8000,)), min_drop=0.1)
    assert reg.count == 0, reg.describe()
    assert detect_regimes(STEPS, staged((1.0, 0.8), (8000,)), min_drop=0.1).count == 1


def test_a_steady_decline_has_no_events() -> None:
    """A power-law decline keeps falling without stages: at most tiny steps between its pieces."""
    loss = 0.3 * (STEPS / 100.0) ** -0.5
    reg = detect_regimes(STEPS, loss)
    assert reg.count == 0, reg.describe()


def test_a_drop_at_the_end_counts_against_the_final_loss() -> None:
    reg = detect_regimes(STEPS, staged((1.0, 0.4), (19_500,), width=50.0))
    assert reg.count == 1, reg.describe()
    assert reg.events[0].next_level == pytest.approx(0.4, rel=0.15)


def test_noise_does_not_split_a_plateau() -> None:
    reg = detect_regimes(STEPS, staged((1.0, 0.5), (10_000,), noise=0.03, seed=3))
    assert reg.count == 1, reg.describe()


def test_uneven_logging_is_resampled() -> None:
    keep = np.sort(np.random.default_rng(1).choice(STEPS.size, 150, replace=False))
    loss = staged((1.0, 0.5, 0.2), (6000, 13_000))
    assert detect_regimes(STEPS[keep], loss[keep]).count == 2


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-6, 1e3), seed=st.integers(0, 1000))
def test_events_do_not_depend_on_the_loss_scale(scale: float, seed: int) -> None:
    loss = staged((1.0, 0.5, 0.2), (6000, 13_000), seed=seed)
    a, b = detect_regimes(STEPS, loss), detect_regimes(STEPS, scale * loss)
    assert a.count == b.count
    assert a.drop_steps == b.drop_steps


@pytest.mark.parametrize(
    ("steps", "loss", "match"),
    [
        (STEPS[:2], np.ones(2), "at least 3"),
        (STEPS, np.ones(STEPS.size - 1), "one length"),
        (STEPS[::-1], np.ones(STEPS.size), "increasing"),
        (STEPS, np.zeros(STEPS.size), "positive"),
        (STEPS, np.full(STEPS.size, np.nan), "finite"),
    ],
)
def test_bad_input_is_rejected(steps: np.ndarray, loss: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        detect_regimes(steps, loss)


@pytest.mark.parametrize("name", ["smooth", "window", "min_plateau", "flat_tol", "span_tol", "min_drop"])
def test_bad_parameters_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        detect_regimes(STEPS, np.ones(STEPS.size), **{name: 0.0})
