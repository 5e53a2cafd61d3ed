"""The result contract: clean results pass, broken ones fail naming implementation and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toymodel.result import ContractError, Result, load, save, validate
from toymodel.spec import Spec


def spec(model: str = "relu_output") -> Spec:
    return Spec(model=model, n=3, m=2, importance=[1] * 3, density=[[0.1] * 3, [0.5] * 3], restarts=2)  # type: ignore[arg-type]


def raw(s: Spec, k: int = 4) -> dict[str, object]:
    rng = np.random.default_rng(0)
    out: dict[str, object] = {
        "W": rng.normal(size=(s.instances, s.m, s.n)).astype(np.float32),
        "b": rng.normal(size=(s.instances, s.n)),
        "loss_steps": np.arange(1, k + 1) * 10,
        "loss_curve": rng.random((s.instances, k)),
        "eval_loss": rng.random(s.instances),
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


@pytest.mark.parametrize(("field", "value", "message"), [
    ("W", np.zeros((4, 3, 2)), "result field 'W' has shape (4, 3, 2), expected (4, 2, 3)"),
    ("b", None, "result field 'b' is missing"),
    ("eval_loss", np.array([0.1, np.nan, 0.2, 0.3]),
     "'eval_loss' holds a non-finite value (nan) at index (1,)"),
    ("loss_curve", np.full((4, 4), np.inf), "'loss_curve' holds a non-finite value (inf)"),
    ("W", "weights", "result field 'W' is not numeric"),
    ("loss_steps", np.array([10, 10, 20, 30]), "'loss_steps' must be strictly increasing"),
    ("loss_steps", 5.0, "'loss_steps' has shape ()"),
    ("W2", np.zeros((4, 3, 2)), "'W2' is only for 'abs' models"),
])
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
    r = Result(**{**{f: getattr(r, f) for f in ("spec", "W", "b", "W2", "loss_steps", "loss_curve",
                                                 "eval_loss", "implementation")}, "meta": {"threads": 2}})
    save(r, tmp_path / "r.npz")
    back = load(tmp_path / "r.npz")
    assert back.spec == s and back.implementation == "numpy" and back.meta == {"threads": 2}
    for f in ("W", "b", "W2", "loss_steps", "loss_curve", "eval_loss"):
        np.testing.assert_array_equal(getattr(back, f), getattr(r, f))
