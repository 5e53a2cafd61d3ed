"""Specs: validation names the bad field and value; JSON round trip; stable hash."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from toymodel.spec import (
    FeatureGroup,
    Spec,
    SpecError,
    TrainConfig,
    density_levels,
    geometric_importance,
    uniform_rows,
)


def base(**kw: object) -> Spec:
    args: dict[str, object] = dict(model="relu_output", n=4, m=2, importance=[1.0] * 4, density=[0.1] * 4)
    args.update(kw)
    return Spec(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"n": 0}, "n", "0"),
        ({"m": -1}, "m", "-1"),
        ({"n": 2.5}, "n", "2.5"),
        ({"model": "relu"}, "model", "'relu'"),
        ({"density": [0.1, 0.2, 1.5, 0.1]}, "density[0][2]", "1.5"),
        ({"density": [0.1, -0.2, 0.1, 0.1]}, "density[0][1]", "-0.2"),
        ({"importance": [1.0, math.nan, 1.0, 1.0]}, "importance[0][1]", "nan"),
        ({"importance": [1.0, -1.0, 1.0, 1.0]}, "importance[0][1]", "-1.0"),
        ({"importance": [1.0, 1.0, 1.0]}, "importance", "shape"),
        ({"importance": [[1.0] * 4] * 2, "density": [[0.1] * 4] * 3}, "importance", "2 settings"),
        ({"restarts": 0}, "restarts", "0"),
        ({"seed": -3}, "seed", "-3"),
        ({"eval_samples": 0}, "eval_samples", "0"),
        ({"values": "gaussian"}, "values", "'gaussian'"),
        ({"hidden_l1": [0.1, 0.2]}, "hidden_l1", "one value per setting"),
        ({"hidden_l1": [-0.1]}, "hidden_l1", ">= 0"),
        ({"groups": (FeatureGroup("correlated", (0, 7)),)}, "groups[0].features", "outside"),
        (
            {"groups": (FeatureGroup("correlated", (0, 1)), FeatureGroup("anticorrelated", (1, 2)))},
            "groups[1].features",
            "more than one group",
        ),
        (
            {"groups": (FeatureGroup("correlated", (0, 1)),), "density": [0.1, 0.2, 0.1, 0.1]},
            "groups[0]",
            "share one density",
        ),
        ({"device": ""}, "device", "device name"),
    ],
)
def test_invalid_field_is_named(changes: dict[str, object], field: str, value: str) -> None:
    with pytest.raises(SpecError) as info:
        base(**changes)
    msg = str(info.value)
    assert f"'{field}'" in msg and value in msg, msg


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": 0}, "train.steps"),
        ({"batch_size": -5}, "train.batch_size"),
        ({"lr": 0.0}, "train.lr"),
        ({"lr": math.inf}, "train.lr"),
        ({"weight_decay": -0.1}, "train.weight_decay"),
        ({"betas": (0.9, 1.0)}, "train.betas[1]"),
        ({"betas": (0.9,)}, "train.betas"),
        ({"schedule": "step"}, "train.schedule"),
        ({"init_std": 0.0}, "train.init_std"),
        ({"log_every": 0}, "train.log_every"),
    ],
)
def test_invalid_train_field_is_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        TrainConfig(**changes)  # type: ignore[arg-type]
    assert f"'{field}'" in str(info.value)


@pytest.mark.parametrize("kind", ["correlated", "anticorrelated"])
def test_group_rules(kind: str) -> None:
    with pytest.raises(SpecError, match="at least 2"):
        FeatureGroup(kind, (1,))  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="repeats"):
        FeatureGroup(kind, (1, 1))  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"groups\.kind"):
        FeatureGroup("mixed", (0, 1))  # type: ignore[arg-type]


def test_broadcasting_and_derived_arrays() -> None:
    spec = base(density=[[0.1] * 4, [0.5] * 4, [1.0] * 4], restarts=2)
    assert spec.settings == 3 and spec.instances == 6
    assert spec.importance_array().shape == (3, 4)
    assert spec.density_array(per_instance=True)[:, 0].tolist() == [0.1, 0.1, 0.5, 0.5, 1.0, 1.0]
    assert spec.hidden_l1_array(per_instance=True).tolist() == [0.0] * 6
    assert spec.values == "uniform01" and base(model="abs").values == "uniform_pm1"
    # the notebook's xavier-normal std for a (settings, n, m) tensor
    assert spec.resolved_init_std() == pytest.approx(math.sqrt(2 / (4 * 2 + 3 * 2)))
    assert base(train=TrainConfig(init_std=0.3)).resolved_init_std() == 0.3


@given(
    n=st.integers(1, 6),
    m=st.integers(1, 4),
    settings=st.integers(1, 3),
    restarts=st.integers(1, 3),
    seed=st.integers(0, 2**31),
    data=st.data(),
)
def test_json_round_trip_and_hash(
    n: int, m: int, settings: int, restarts: int, seed: int, data: st.DataObject
) -> None:
    dens = data.draw(
        st.lists(st.lists(st.floats(0, 1), min_size=n, max_size=n), min_size=settings, max_size=settings)
    )
    imp = data.draw(st.lists(st.floats(0, 10), min_size=n, max_size=n))
    model = data.draw(st.sampled_from(["linear", "relu_output", "relu_hidden", "abs"]))
    spec = Spec(
        model=model,  # type: ignore[arg-type]
        n=n,
        m=m,
        importance=imp,
        density=dens,
        restarts=restarts,
        seed=seed,
        train=TrainConfig(steps=data.draw(st.integers(1, 10**5))),
    )
    again = Spec.from_json(spec.to_json())
    assert again == spec
    assert again.hash() == spec.hash()
    assert spec.replace(seed=seed + 1).hash() != spec.hash()


def test_from_dict_rejects_unknown_fields_and_bad_json() -> None:
    d = base().to_dict()
    d["sparsity"] = 0.9
    with pytest.raises(SpecError, match="'sparsity'"):
        Spec.from_dict(d)
    d = base().to_dict()
    d["train"]["momentum"] = 0.9
    with pytest.raises(SpecError, match=r"train\.momentum"):
        Spec.from_dict(d)
    with pytest.raises(SpecError, match="does not parse"):
        Spec.from_json("{not json")
    d = base().to_dict()
    del d["n"]
    with pytest.raises(SpecError, match="'n'"):
        Spec.from_dict(d)


def test_hash_is_stable_across_sessions() -> None:
    """The hash keys caches and baselines: it must not depend on the process (fixed value)."""
    spec = base()
    assert spec.hash() == Spec.from_json(spec.to_json()).hash()
    assert len(spec.hash()) == 16
    assert Spec.from_dict(spec.to_dict()).to_json() == spec.to_json()


def test_hash_is_pinned() -> None:
    """Caches and baselines key on this digest: validation may tighten, the canonical JSON of a
    valid spec may not change (value computed before the strict field checks)."""
    spec = base(groups=(FeatureGroup("correlated", (0, 1)),), train=TrainConfig(steps=7, lr=1e-2))
    assert spec.hash() == "7080fc7e8f99b060"


def test_numpy_scalars_become_python_ones() -> None:
    """A numpy count or rate is accepted and stored as the Python number it equals, so the spec
    still serialises (``json`` takes no numpy scalars) and hashes like its plain twin."""
    spec = base(
        n=np.int64(4),
        m=np.int32(2),
        seed=np.uint8(3),
        restarts=np.int64(2),
        train=TrainConfig(steps=np.int64(7), lr=np.float32(0.5), weight_decay=np.float64(0.0)),
    )
    plain = base(seed=3, restarts=2, train=TrainConfig(steps=7, lr=0.5, weight_decay=0.0))
    assert spec == plain and spec.to_json() == plain.to_json()
    assert type(spec.n) is int and type(spec.train.steps) is int and type(spec.train.lr) is float


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"importance": [True, False, True, True]}, "importance"),
        ({"density": ["0.1", "0.1", "0.1", "0.1"]}, "density"),
        ({"hidden_l1": ["0.1"]}, "hidden_l1"),
        ({"groups": (FeatureGroup("correlated", (0, 1)), 3)}, "groups[1]"),
        ({"model": ["linear"]}, "model"),
        ({"values": 1}, "values"),
        ({"seed": 2**63}, "seed"),
        ({"n": 2**63}, "n"),
    ],
)
def test_wrong_types_are_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError, match=f"'{re.escape(field)}'"):
        base(**changes)


def test_replace_merges_train_changes() -> None:
    spec = base().replace(train={"steps": 7}, restarts=3)
    assert spec.train.steps == 7 and spec.train.lr == 1e-3 and spec.restarts == 3


def test_schedule_helpers() -> None:
    assert geometric_importance(3, 0.7) == (1.0, 0.7, pytest.approx(0.49))
    levels = density_levels(0.001, 1.0, 4)
    assert levels[0] == 1.0 and levels[-1] == pytest.approx(0.001)
    assert np.all(np.diff(levels) < 0)
    assert uniform_rows([0.1, 0.2], 3) == ((0.1, 0.1, 0.1), (0.2, 0.2, 0.2))
    with pytest.raises(SpecError, match="'ratio'"):
        geometric_importance(3, -1.0)
