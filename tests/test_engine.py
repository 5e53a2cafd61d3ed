"""Claims-engine parts on their own: registry, cache, baselines store, claim object."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from toymodel.report import jsonable
from toymodel.result import Result, validate
from toymodel.spec import Spec, TrainConfig
from toymodel.suite import implementations
from toymodel.suite.baselines import BaselineError, BaselineStore
from toymodel.suite.cache import ResultCache, fingerprint
from toymodel.suite.claim import Claim, ClaimFailure

SPEC = Spec(
    model="relu_output",
    n=3,
    m=2,
    importance=[1] * 3,
    density=[0.5] * 3,
    eval_samples=64,
    train=TrainConfig(steps=3),
)


def fake_train(spec: Spec) -> Result:
    i = spec.instances
    return validate(
        {
            "W": np.ones((i, spec.m, spec.n)),
            "b": np.zeros((i, spec.n)),
            "loss_steps": [3.0],
            "loss_curve": np.ones((i, 1)),
            "eval_loss": np.ones(i),
        },
        spec,
        "fake",
    )


def test_registry_resolves_names_and_module_attr(monkeypatch: pytest.MonkeyPatch) -> None:
    assert implementations.resolve("numpy").__module__ == "toymodel.numpy_impl.training"
    assert implementations.resolve("toymodel.reference.training:train").__name__ == "train"
    monkeypatch.setenv("TOYMODEL_IMPL", "numpy")
    assert implementations.selected_name(None) == "numpy"
    assert implementations.selected_name("torch") == "torch"
    monkeypatch.delenv("TOYMODEL_IMPL")
    assert implementations.selected_name(None) == "torch"
    with pytest.raises(implementations.ImplementationError, match="unknown implementation 'tf'"):
        implementations.resolve("tf")


def test_run_wraps_exceptions_and_validates() -> None:
    def bad(spec: Spec) -> Result:
        raise KeyError("x")

    with pytest.raises(implementations.ImplementationError, match="implementation 'mine' raised KeyError"):
        implementations.run("mine", SPEC, bad)
    r = implementations.run("mine", SPEC, fake_train)
    assert r.implementation == "mine" and r.W.dtype == np.float64


def test_cache_trains_once_and_survives_corruption(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    calls = []

    def train(spec: Spec) -> Result:
        calls.append(spec.hash())
        return fake_train(spec)

    code = fingerprint(fake_train)
    a = cache.get_or_train(SPEC, "fake", code, train)
    b = cache.get_or_train(SPEC, "fake", code, train)
    assert len(calls) == 1 and np.array_equal(a.W, b.W) and b.spec == SPEC
    cache.path(cache.key(SPEC, "fake", code)).write_bytes(b"garbage")
    cache.get_or_train(SPEC, "fake", code, train)
    assert len(calls) == 2
    cache.get_or_train(SPEC, "fake", "othercode", train)
    assert len(calls) == 3  # editing the implementation invalidates its entries


def test_cache_is_safe_under_concurrency(tmp_path: Path) -> None:
    calls = []

    def slow_train(spec: Spec) -> Result:
        calls.append(1)
        return fake_train(spec)

    def worker() -> None:
        ResultCache(tmp_path).get_or_train(SPEC, "fake", "c", slow_train)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1


def test_baseline_store(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path, regen=True)
    store.check("c", "loss", [1.0, 2.0], rtol=0.01, atol=0, spec_hashes=["h"], seed=0)
    store.check("c", "count", 5, rtol=0, atol=0, spec_hashes=["h"], seed=0)
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["values"] == {"loss": [1.0, 2.0], "count": 5.0}
    assert data["specs"] == {"loss": ["h"], "count": ["h"]}
    assert store.changes == ["c.json loss: new, [1, 2]", "c.json count: new, 5"]
    reader = BaselineStore(tmp_path)
    assert "within" in reader.check("c", "loss", [1.005, 2.0], rtol=0.01, atol=0, spec_hashes=["h"], seed=0)
    with pytest.raises(BaselineError, match=r"regression: loss\[1\] = 2.1, baseline 2"):
        reader.check("c", "loss", [1.0, 2.1], rtol=0.01, atol=0, spec_hashes=["h"], seed=0)
    with pytest.raises(BaselineError, match="has 2 numbers, the run gave 3"):
        reader.check("c", "loss", [1.0, 2.0, 3.0], rtol=0.01, atol=0, spec_hashes=["h"], seed=0)
    with pytest.raises(BaselineError, match="has no value 'other'"):
        reader.check("c", "other", 1, rtol=0, atol=0, spec_hashes=["h"], seed=0)
    with pytest.raises(BaselineError, match="missing"):
        reader.check("absent", "x", 1, rtol=0, atol=0, spec_hashes=["h"], seed=0)
    with pytest.raises(BaselineError, match=r"loss\[0\] = nan"):
        reader.check("c", "loss", [np.nan, 2.0], rtol=0.01, atol=0, spec_hashes=["h"], seed=0)
    with pytest.raises(BaselineError, match=r"computed from specs \['h'\], this run used \['g'\]"):
        reader.check("c", "loss", [1.0, 2.0], rtol=0.01, atol=0, spec_hashes=["g"], seed=0)
    again = BaselineStore(tmp_path, regen=True)
    again.check("c", "loss", [1.0, 2.5], rtol=0.01, atol=0, spec_hashes=["h"], seed=0)
    again.check("c", "count", 5, rtol=0, atol=0, spec_hashes=["g"], seed=0)
    assert again.changes == ["c.json loss: [1, 2] -> [1, 2.5]", "c.json count: now computed from specs ['g']"]


def test_baseline_regen_of_some_values_keeps_the_others(tmp_path: Path) -> None:
    """Regenerating one of a claim's tests (a parameter, a -k selection) keeps the other values."""
    first = BaselineStore(tmp_path, regen=True)
    first.check("c", "digon", 0.5, rtol=0, atol=0, spec_hashes=[], seed=0)
    first.check("c", "pentagon", 0.4, rtol=0, atol=0, spec_hashes=[], seed=0)
    BaselineStore(tmp_path, regen=True).check(
        "c", "pentagon", 0.41, rtol=0, atol=0, spec_hashes=["h"], seed=0
    )
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["values"] == {"digon": 0.5, "pentagon": 0.41}
    assert data["specs"] == {"digon": [], "pentagon": ["h"]}
    reader = BaselineStore(tmp_path)
    assert "within" in reader.check("c", "digon", 0.5, rtol=0, atol=0, spec_hashes=[], seed=0)


def test_claim_check_message_and_record() -> None:
    c = Claim(id="some_claim", implementation="numpy", seed=2)
    c.check("ok", True, what="ok", measured=1.0, bound="> 0")
    with pytest.raises(
        ClaimFailure,
        match=r"\[some_claim\] count: measured \[1, 2\], expected 3 "
        r"\(implementation 'numpy', claims seed 2\)",
    ) as info:
        c.check("count", False, what="count", measured=np.array([1, 2]), bound=3)
    assert info.value.key == "count"
    with pytest.raises(ValueError, match="snake_case"):
        c.check("Bad Key", True, what="x", measured=1, bound=1)
    c.record("x", np.float32(0.5))
    c.regress("y", 1.0, rtol=0.1)  # not the reference: no baseline needed
    d = c.as_dict()
    assert [k["passed"] for k in d["checks"]] == [True, False]
    assert c.failed_keys == {"count"} and d["tier"] == "implementation"
    collecting = Claim(id="w", implementation="x", seed=0, collect=True)
    collecting.check("a", False, what="a", measured=0, bound=1)
    collecting.check("b", True, what="b", measured=1, bound=1)
    collecting.check("c", False, what="c", measured=0, bound=1)
    assert collecting.failed_keys == {"a", "c"}
    assert d["values"] == {"x": 0.5, "regression:y": 1.0}
    assert jsonable({"a": np.array([np.inf, 1.0]), "b": (np.int64(3), np.bool_(True))}) == {
        "a": ["inf", 1.0],
        "b": [3, True],
    }


def test_claim_figure_is_written_only_with_a_report(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    c = Claim(id="fig", implementation="torch", seed=0, figure_dir=tmp_path / "figs")
    c.figure("line", lambda fig: fig.add_subplot().plot([0, 1], [1, 0]))
    assert (tmp_path / "figs" / "fig-line.png").stat().st_size > 1000
    silent = Claim(id="fig", implementation="torch", seed=0)
    silent.figure("line", lambda fig: fig.add_subplot().plot([0, 1]))
    assert silent.figures == []


def test_installed_claims_run_without_a_checkout(tmp_path: Path) -> None:
    """`toymodel-claims` collects the claims shipped in the package, from any directory."""
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "toymodel.suite.check",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--impl",
            "numpy",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "test_superposition.py::test_linear_top_m" in proc.stdout
    from importlib import resources

    assert resources.files("toymodel.claims").joinpath("test_superposition.py").is_file()
