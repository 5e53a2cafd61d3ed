"""The result contract: clean results pass, broken ones fail naming implementation and field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from toymodel import models
from toymodel.result import (
    ContractError,
    eval_loss_disagreement,
    expected_loss_steps,
    load,
    save,
    validate,
)
from toymodel.spec import Spec, TrainConfig


def spec(model: str = "relu_output") -> Spec:
    return Spec(
        model=model,  # type: ignore[arg-type]
        n=3,
        m=2,
        importance=[1] * 3,
        density=[[0.1] * 3, [0.5] * 3],
        restarts=2,
        train=TrainConfig(steps=35, log_every=10),
        eval_samples=2048,
    )


def raw(s: Spec) -> dict[str, object]:
    rng = np.random.default_rng(0)
    steps = expected_loss_steps(s)
    out: dict[str, object] = {
        "W": rng.normal(size=(s.instances, s.m, s.n)).astype(np.float32),
        "b": rng.normal(size=(s.instances, s.n)),
        "loss_steps": steps,
        "loss_curve": rng.random((s.instances, steps.size)),
    }
    if s.model == "abs":
        out["W2"] = rng.normal(size=(s.instances, s.n, s.m))
    return out


def test_valid_result_is_float64_and_read_only() -> None:
    r = validate(raw(spec()), spec(), "mine")
    assert r.W.dtype == np.float64 and not r.W.flags.writeable
    assert r.implementation == "mine" and r.W2 is None
    assert r.by_setting(r.eval_loss).shape == (2, 2)
    assert set(r.params) == {"W", "b"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("W", np.zeros((4, 3, 2)), "result field 'W' has shape (4, 3, 2), expected (4, 2, 3)"),
        ("b", None, "result field 'b' is missing"),
        ("eval_loss", np.array([0.1, 0.2]), "result field 'eval_loss' has shape (2,), expected (4,)"),
        ("loss_curve", np.full((4, 4), np.inf), "'loss_curve' holds a non-finite value (inf)"),
        ("W", "weights", "result field 'W' is not numeric"),
        (
            "loss_steps",
            np.array([10, 10, 20, 30]),
            "'loss_steps' is [10., 10., 20., 30.], expected [10., 20., 30., 35.]",
        ),
        ("loss_steps", np.array([10, 20, 30]), "'loss_steps' has shape (3,), expected (4,)"),
        ("loss_steps", 5.0, "'loss_steps' has shape ()"),
        ("W2", np.zeros((4, 3, 2)), "'W2' is only for 'abs' models"),
    ],
)
def test_contract_violations_are_named(field: str, value: object, message: str) -> None:
    data = raw(spec())
    if value is None:
        del data[field]
    else:
        data[field] = value
    with pytest.raises(ContractError) as info:
        validate(data, spec(), "student")
    assert "implementation 'student'" in str(info.value)
    assert message in str(info.value), str(info.value)


def test_abs_needs_w2_and_non_mappings_are_rejected() -> None:
    data = raw(spec("abs"))
    del data["W2"]
    with pytest.raises(ContractError, match="'W2' is missing"):
        validate(data, spec("abs"), "x")
    with pytest.raises(ContractError, match="returned list"):
        validate([1, 2], spec(), "x")


def test_npz_round_trip(tmp_path: Path) -> None:
    s = spec("abs")
    r = validate(raw(s), s, "numpy")
    r = dataclasses.replace(r, meta={"threads": 2}, reported_eval_loss=np.array([0.1, np.nan, -1.0, 2.0]))
    save(r, tmp_path / "r.npz")
    back = load(tmp_path / "r.npz")
    assert back.spec == s and back.implementation == "numpy" and back.meta == {"threads": 2}
    for f in ("W", "b", "W2", "loss_steps", "loss_curve", "eval_loss", "eval_loss_se", "reported_eval_loss"):
        np.testing.assert_array_equal(getattr(back, f), getattr(r, f))


def test_the_suite_scores_the_held_out_loss_itself() -> None:
    """Whatever an implementation reports, ``eval_loss`` is the suite's recomputation on the
    spec's fixed sample; the report is kept apart and never used."""
    s = spec()
    honest = raw(s)
    params = {k: np.asarray(honest[k], dtype=np.float64) for k in ("W", "b")}
    mean, se = models.eval_loss_and_se(s, params)
    honest["eval_loss"] = mean
    lying = {**honest, "eval_loss": -mean}
    a, b = validate(honest, s, "honest"), validate(lying, s, "liar")
    np.testing.assert_array_equal(a.eval_loss, b.eval_loss)
    np.testing.assert_array_equal(a.eval_loss, mean)
    assert np.all(se > 0) and np.all(se < 0.1 * mean)
    assert eval_loss_disagreement(a) is None
    line = eval_loss_disagreement(b)
    assert line is not None and "\n" not in line
    assert "implementation 'liar'" in line and "instance 0 reported" in line and f"{-mean[0]:.6g}" in line
    assert f"recomputed {mean[0]:.6g}" in line and "4 of 4 instances differ" in line


@pytest.mark.parametrize(
    ("change", "flagged"),
    [
        (lambda m, se: m + 2 * se, False),  # sampling noise of an implementation's own sample
        (lambda m, se: m * 1.5, True),  # a different loss (e.g. with an L1 term)
        (lambda m, se: np.full_like(m, np.nan), True),
        (lambda m, se: np.where(np.arange(m.size) == 2, -1e-9, m), True),  # impossible: negative
    ],
)
def test_reported_losses_are_compared_within_sampling_tolerance(change: object, flagged: bool) -> None:
    s = spec()
    data = raw(s)
    params = {k: np.asarray(data[k], dtype=np.float64) for k in ("W", "b")}
    mean, se = models.eval_loss_and_se(s, params)
    data["eval_loss"] = change(mean, se)  # type: ignore[operator]
    assert (eval_loss_disagreement(validate(data, s, "x")) is not None) is flagged


def test_eval_loss_is_optional() -> None:
    r = validate(raw(spec()), spec(), "quiet")
    assert r.reported_eval_loss is None and eval_loss_disagreement(r) is None
    assert r.eval_loss.shape == (4,) and np.all(r.eval_loss > 0)
