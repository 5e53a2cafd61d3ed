"""The pytest plugin: options, implementation selection, one-line failures, xfails file,
report, baselines and the slow tier, exercised on a tiny claims file with a fake implementation."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

FAKE_IMPL = """
import numpy as np
from toymodel import models
from toymodel.result import Result

def _result(spec, W):
    b = np.zeros((spec.instances, spec.n))
    params = {"W": W, "b": b}
    return Result(spec=spec, W=W, b=b, loss_steps=np.array([5.0]), loss_curve=np.ones((spec.instances, 1)),
                  eval_loss=models.eval_loss(spec, params), implementation="fake")

def good(spec):
    W = np.zeros((spec.instances, spec.m, spec.n))
    W[:, 0, 0] = 1.0
    return _result(spec, W)

def weak(spec):
    return _result(spec, np.full((spec.instances, spec.m, spec.n), 0.1))

def nan(spec):
    W = np.zeros((spec.instances, spec.m, spec.n)); W[0, 0, 1] = np.nan
    return _result(spec, W)

def boom(spec):
    raise ZeroDivisionError("oops")

def liar(spec):
    r = good(spec)
    return {"W": r.W, "b": r.b, "loss_steps": r.loss_steps, "loss_curve": r.loss_curve,
            "eval_loss": -r.eval_loss}

def short_curve(spec):
    r = good(spec)
    return {"W": r.W, "b": r.b, "loss_steps": [1.0], "loss_curve": r.loss_curve}

not_callable = 3
"""

CLAIMS = '''
import pytest
from toymodel.spec import Spec, TrainConfig
from toymodel.analysis import metrics

SPEC = Spec(model="relu_output", n=3, m=2, importance=[1, 1, 1], density=[0.5] * 3, eval_samples=64,
            train=TrainConfig(steps=5))

def test_first_feature(trained, claim):
    """Feature 0 is represented."""
    r = trained(SPEC)
    norm = float(metrics.feature_norms(r.W)[0, 0])
    claim.check("norm0", norm > 0.5, what="||W_0||", measured=norm, bound="> 0.5", lower=0.5)
    claim.regress("norm0", norm, rtol=1e-6)

@pytest.mark.claim("renamed_claim")
def test_something_else(trained, claim, claims_seed, impl_name):
    r = trained(SPEC)
    claim.record("seed_used", r.spec.seed)
    claim.check("seed", r.spec.seed == claims_seed, what="seed", measured=r.spec.seed, bound=claims_seed)

@pytest.mark.slow
def test_slow_claim(claim):
    claim.check("slow", True, what="slow", measured=1, bound=1)

@pytest.mark.theory
def test_closed_form(claim):
    claim.check("identity", 1 + 1 == 2, what="1 + 1", measured=2, bound=2)

@pytest.mark.xfail(strict=True, reason="known not to reproduce")
def test_known_failure(trained, claim):
    r = trained(SPEC)
    claim.check("never", False, what="never", measured=0, bound=1)
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(fakeimpl=FAKE_IMPL, test_claims=CLAIMS)
    pytester.syspathinsert()
    (pytester.path / "baselines").mkdir()
    return pytester


def test_header_names_the_implementation(suite: pytest.Pytester) -> None:
    res = suite.runpytest("--impl", "fakeimpl:good")
    res.stdout.fnmatch_lines(["*implementation under test = 'fakeimpl:good'*claims seed = 0*"])
    res.assert_outcomes(passed=3, skipped=1, xfailed=1)


def test_failure_is_one_line_with_measured_bound_impl_seed(suite: pytest.Pytester) -> None:
    res = suite.runpytest("--impl", "fakeimpl:weak", "--claims-seed", "3", "-k", "first_feature")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(
        [
            "*[[]first_feature[]] ||W_0||: measured 0.1414, expected > 0.5 "
            "(implementation 'fakeimpl:weak', claims seed 3)*"
        ]
    )
    assert "Traceback" not in res.stdout.str()


@pytest.mark.parametrize(
    ("impl", "message"),
    [
        (
            "fakeimpl:nan",
            "implementation 'fakeimpl:nan': result field 'W' holds a "
            "non-finite value (nan) at index (0, 0, 1)",
        ),
        ("fakeimpl:boom", "implementation 'fakeimpl:boom' raised ZeroDivisionError on spec"),
    ],
)  # one that cannot even be loaded ends the run at its start: tests/test_faults.py
def test_broken_implementations_fail_clearly(suite: pytest.Pytester, impl: str, message: str) -> None:
    res = suite.runpytest("--impl", impl, "-k", "first_feature")
    res.assert_outcomes(failed=1)
    assert message in res.stdout.str(), res.stdout.str()


def test_env_var_selects_the_implementation(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOYMODEL_IMPL", "fakeimpl:weak")
    res = suite.runpytest("-k", "first_feature")
    res.stdout.fnmatch_lines(["*implementation under test = 'fakeimpl:weak'*"])
    res.assert_outcomes(failed=1)


def test_claims_seed_reseeds_specs(suite: pytest.Pytester) -> None:
    res = suite.runpytest("--impl", "fakeimpl:good", "--claims-seed", "4", "-k", "renamed")
    res.assert_outcomes(passed=1)


def test_xfails_file(suite: pytest.Pytester) -> None:
    xf = suite.path / "known.txt"
    xf.write_text("# known failures of fakeimpl:weak\nfirst_feature  # too weak\nno_such_claim\n")
    res = suite.runpytest("--impl", "fakeimpl:weak", "--xfails-file", str(xf), "-k", "first_feature")
    res.assert_outcomes(xfailed=1)
    res.stdout.fnmatch_lines(["*WARNING*no_such_claim*"])
    # a declared failure that passes is reported (strict)
    res = suite.runpytest("--impl", "fakeimpl:good", "--xfails-file", str(xf), "-k", "first_feature")
    res.assert_outcomes(failed=1)


def test_report_json(suite: pytest.Pytester) -> None:
    out = suite.path / "out" / "report.json"
    res = suite.runpytest("--impl", "fakeimpl:weak", "--claims-report", str(out))
    res.assert_outcomes(failed=1, passed=2, skipped=1, xfailed=1)
    data = json.loads(out.read_text())
    assert data["implementation"] == "fakeimpl:weak" and data["claims_seed"] == 0
    by_id = {c["claim"]: c for c in data["claims"]}
    assert by_id["first_feature"]["verdict"] == "failed"
    assert by_id["first_feature"]["checks"][0] == {
        "key": "norm0",
        "what": "||W_0||",
        "passed": False,
        "measured": pytest.approx(0.02**0.5),
        "bound": "> 0.5",
        "value": pytest.approx(0.02**0.5),
        "lower": 0.5,
        "upper": None,
        "trials": None,
    }
    assert by_id["renamed_claim"]["verdict"] == "passed"
    assert by_id["renamed_claim"]["values"]["seed_used"] == 0
    assert len(by_id["first_feature"]["spec_hashes"]) == 1
    assert data["summary"] == {"failed": 1, "passed": 1, "xfailed": 1}
    # the theory tier is reported apart and never counted as a verdict on the implementation
    assert data["theory_summary"] == {"passed": 1}
    assert [c["claim"] for c in data["theory"]] == ["closed_form"]
    assert "closed_form" not in by_id
    res.stdout.fnmatch_lines(
        [
            "*verdicts on the implementation: 1 failed, 1 passed, 1 xfailed*",
            "*theory tier*no implementation involved*: 1 passed*",
        ]
    )


def test_baselines_missing_regen_and_drift(suite: pytest.Pytester) -> None:
    res = suite.runpytest("--impl", "torch", "-k", "first_feature", "-p", "no:cacheprovider")
    res.assert_outcomes(failed=1)
    assert "baseline file" in res.stdout.str() or "||W_0||" in res.stdout.str()
    # the reference implementation's regression tier: write with the flag, then compare
    res = suite.runpytest("--impl", "fakeimpl:good", "-k", "first_feature")
    res.assert_outcomes(passed=1)  # not the reference implementation: regression tier is off
    base = suite.path / "baselines" / "first_feature.json"
    assert not base.exists()


def test_reference_regression_tier(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    import toymodel.suite.implementations as impls

    monkeypatch.setitem(impls.REGISTRY, "torch", "fakeimpl:good")
    res = suite.runpytest("-k", "first_feature")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*baseline file*first_feature.json is missing*--regen-baselines*"])
    res = suite.runpytest("-k", "first_feature", "--regen-baselines")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*--regen-baselines wrote 1 change(s)*", "*first_feature.json norm0: new, 1*"])
    base = suite.path / "baselines" / "first_feature.json"
    data = json.loads(base.read_text())
    assert data["values"] == {"norm0": 1.0}
    assert len(data["specs"]["norm0"]) == 1
    assert {"spec_hashes", "toymodel", "numpy", "torch", "threads", "seed", "date"} <= set(data["provenance"])
    res = suite.runpytest("-k", "first_feature")
    res.assert_outcomes(passed=1)
    data["values"]["norm0"] = 0.9
    base.write_text(json.dumps(data))
    res = suite.runpytest("-k", "first_feature")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*regression: norm0[[]0[]] = 1, baseline 0.9*"])
    # regenerating shows old against new for every value it changes
    res = suite.runpytest("-k", "first_feature", "--regen-baselines")
    res.stdout.fnmatch_lines(["*first_feature.json norm0: 0.9 -> 1*"])
    # a baseline computed from other specs is a failure: the experiment changed
    data = json.loads(base.read_text())
    data["specs"]["norm0"] = ["0123456789abcdef"]
    base.write_text(json.dumps(data))
    res = suite.runpytest("-k", "first_feature")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*from specs [[]'0123456789abcdef'], this run used*experiment changed*"])
    base.write_text("{broken")
    res = suite.runpytest("-k", "first_feature")
    res.stdout.fnmatch_lines(["*first_feature.json is malformed*"])
    # other seeds skip the regression tier
    res = suite.runpytest("-k", "first_feature", "--claims-seed", "1")
    res.assert_outcomes(passed=1)


def test_slow_tier_runs_only_when_selected(suite: pytest.Pytester) -> None:
    res = suite.runpytest("--impl", "fakeimpl:good", "-m", "slow")
    res.assert_outcomes(passed=1, deselected=4)


def test_cache_shares_training_across_sessions(
    suite: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("TOYMODEL_CACHE_DIR", str(cache))
    suite.runpytest("--impl", "fakeimpl:good", "-k", "renamed")
    assert len(list(cache.glob("*.npz"))) == 1
    suite.runpytest("--impl", "fakeimpl:good", "-k", "renamed", "--claims-seed", "2")
    assert len(list(cache.glob("*.npz"))) == 2
    suite.runpytest("--impl", "fakeimpl:good", "-k", "renamed", "--no-cache", "--claims-seed", "5")
    assert len(list(cache.glob("*.npz"))) == 2


def test_a_broken_implementation_fails_even_an_expected_failure(suite: pytest.Pytester) -> None:
    """A claim marked as an expected failure still fails when the implementation is broken: the
    expected failure is the paper's, not the implementation's."""
    for impl in ("fakeimpl:boom", "fakeimpl:nan", "fakeimpl:short_curve"):
        res = suite.runpytest("--impl", impl, "-k", "known_failure")
        res.assert_outcomes(failed=1)
        assert "Traceback" not in res.stdout.str()
    res.stdout.fnmatch_lines(
        [
            "*known_failure: implementation 'fakeimpl:short_curve': result field "
            "'loss_steps' is [[]1.], expected [[]5.]*"
        ]
    )
    res = suite.runpytest("--impl", "fakeimpl:weak", "-k", "known_failure")
    res.assert_outcomes(xfailed=1)


def test_reported_losses_are_never_trusted(suite: pytest.Pytester) -> None:
    """An implementation that negates its held-out losses gets one line and the same verdicts as
    the honest one: the suite ranks and checks with its own recomputation."""
    out = suite.path / "liar.json"
    res = suite.runpytest("--impl", "fakeimpl:liar", "--claims-report", str(out), "-k", "not known")
    res.assert_outcomes(passed=3, skipped=1)
    lines = [ln for ln in res.stdout.lines if "does not confirm" in ln]
    assert len(lines) == 1, res.stdout.str()
    assert "implementation 'fakeimpl:liar'" in lines[0] and "instance 0 reported -" in lines[0]
    assert json.loads(out.read_text())["notices"] == [lines[0].removeprefix("NOTE: ")]
    honest = suite.runpytest("--impl", "fakeimpl:good", "-k", "not known")
    honest.assert_outcomes(passed=3, skipped=1)
    assert "does not confirm" not in honest.stdout.str()
