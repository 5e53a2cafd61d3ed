"""The command line (``toymodel check/train/report/compare``) and what the plugin adds for it: the
HTML report, one report across pytest-xdist workers, declared failures that pass, cached-only
runs, progress lines and Ctrl-C. Exercised on a tiny claims file with fake implementations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from report_kit import fake_report

from toymodel import cli
from toymodel.spec import Spec, TrainConfig
from toymodel.suite.progress import TrainingProgress, describe

pytest_plugins = ["pytester"]

FAKE_IMPL = """
import numpy as np
from toymodel import models
from toymodel.result import Result

def good(spec):
    W = np.zeros((spec.instances, spec.m, spec.n))
    W[:, 0, 0] = 1.0
    b = np.zeros((spec.instances, spec.n))
    return Result(spec=spec, W=W, b=b, loss_steps=np.array([5.0]), loss_curve=np.ones((spec.instances, 1)),
                  eval_loss=models.eval_loss(spec, {"W": W, "b": b}), implementation="fake")

def weak(spec):
    r = good(spec)
    return {"W": np.full_like(r.W, 0.1), "b": r.b, "loss_steps": r.loss_steps, "loss_curve": r.loss_curve}

def interrupted_at_n4(spec):
    if spec.n == 4:
        raise KeyboardInterrupt
    return good(spec)
"""

CLAIMS = '''
import pytest
from toymodel.spec import Spec, TrainConfig
from toymodel.analysis import metrics

pytestmark = pytest.mark.superposition

SPEC = Spec(model="relu_output", n=3, m=2, importance=[1, 1, 1], density=[0.5] * 3, eval_samples=64,
            train=TrainConfig(steps=5), name="tiny")

def test_first_feature(trained, claim):
    """Feature 0 is represented."""
    r = trained(SPEC)
    norm = float(metrics.feature_norms(r.W)[0, 0])
    claim.figure("norms", lambda fig: fig.add_subplot().bar(range(3), metrics.feature_norms(r.W)[0]))
    claim.check("norm0", norm > 0.5, what="||W_0||", measured=norm, bound="> 0.5", lower=0.5)

def test_second(trained, claim):
    r = trained(SPEC.replace(n=4, importance=[1] * 4, density=[0.5] * 4))
    claim.check("shape", r.W.shape[-1] == 4, what="n", measured=r.W.shape[-1], bound=4)

@pytest.mark.theory
def test_closed_form(claim):
    claim.check("identity", 1 + 1 == 2, what="1 + 1", measured=2, bound=2)
'''


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(fakeimpl=FAKE_IMPL, test_claims=CLAIMS)
    pytester.syspathinsert()
    (pytester.path / "baselines").mkdir()
    monkeypatch.setenv("TOYMODEL_CACHE_DIR", str(pytester.path / "cache"))
    return pytester


def test_html_report_with_the_json_beside_it(suite: pytest.Pytester) -> None:
    out = suite.path / "out" / "report.html"
    res = suite.runpytest("--impl", "fakeimpl:weak", "--claims-report", str(out), "--claims-table")
    res.assert_outcomes(failed=1, passed=2)
    html = out.read_text()
    data = json.loads(out.with_suffix(".json").read_text())
    first = next(c for c in data["claims"] if c["claim"] == "first_feature")
    assert first["section"] == "superposition" and first["statement"] == "Feature 0 is represented."
    assert first["figures"] == ["report-figures/first_feature-norms.png"]  # relative to the report
    assert first["specs"][first["spec_hashes"][0]]["name"] == "tiny"
    assert 'data-claim="first_feature" data-verdict="failed" class="failing"' in html
    assert "data:image/png;base64," in html and "Feature 0 is represented." in html
    res.stdout.fnmatch_lines(
        ["claim * verdict * key check", "first_feature * failed * norm0: value 0.141, bound ≥ 0.5"]
    )


def test_a_declared_failure_that_passes_has_its_own_verdict(suite: pytest.Pytester) -> None:
    known = suite.path / "known.txt"
    known.write_text("first_feature\n")
    out = suite.path / "r.json"
    res = suite.runpytest(
        "--impl",
        "fakeimpl:good",
        "--xfails-file",
        str(known),
        "-k",
        "first_feature",
        "--claims-report",
        str(out),
    )
    res.assert_outcomes(failed=1)
    (record,) = json.loads(out.read_text())["claims"]
    assert record["verdict"] == "xpassed-declared"
    assert record["message"] == (
        f"[first_feature] passed, but it is declared as a known failure in {known}: "
        "remove it from that file (implementation 'fakeimpl:good', claims seed 0)"
    )
    assert f"test_claims.py::test_first_feature: {record['message']}" in res.stdout.str()


def test_cache_only_trains_nothing(suite: pytest.Pytester) -> None:
    res = suite.runpytest("--impl", "fakeimpl:good", "--cache-only", "-rs")
    res.assert_outcomes(passed=1, skipped=2)
    res.stdout.fnmatch_lines(["*not in the result cache*--cache-only trains nothing*"])
    suite.runpytest("--impl", "fakeimpl:good", "-k", "first_feature").assert_outcomes(passed=1)
    suite.runpytest("--impl", "fakeimpl:good", "--cache-only").assert_outcomes(passed=2, skipped=1)
    res = suite.runpytest_subprocess("--impl", "fakeimpl:good", "--cache-only", "--no-cache")
    assert res.ret == 2
    res.stderr.fnmatch_lines(["*--cache-only reads results from the cache and --no-cache ignores it*"])


def test_one_report_across_xdist_workers(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(suite.path), os.environ.get("PYTHONPATH", "")]))
    out = suite.path / "merged.json"
    res = suite.runpytest_subprocess(
        "--impl", "fakeimpl:weak", "-n", "2", "--claims-report", str(out), "-p", "no:cacheprovider"
    )
    res.assert_outcomes(failed=1, passed=2)
    data = json.loads(out.read_text())
    assert sorted(c["claim"] for c in data["claims"]) == ["first_feature", "second"]
    assert [c["claim"] for c in data["theory"]] == ["closed_form"]
    assert data["summary"] == {"failed": 1, "passed": 1}
    assert not list(suite.path.glob("merged.gw*.json"))
    res.stdout.fnmatch_lines(["*verdicts on the implementation: 1 failed, 1 passed*"])


def test_ctrl_c_keeps_what_was_trained(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(suite.path), os.environ.get("PYTHONPATH", "")]))
    out = suite.path / "partial.json"
    res = suite.runpytest_subprocess(
        "--impl", "fakeimpl:interrupted_at_n4", "--claims-report", str(out), "-p", "no:cacheprovider"
    )
    assert res.ret == pytest.ExitCode.INTERRUPTED
    res.stdout.fnmatch_lines(
        [
            "toymodel: interrupted while training 'tiny' after * s; 1 result(s) trained before it in this "
            f"run are kept in the cache {suite.path / 'cache'}, and a rerun reuses them",
            f"toymodel: the report {out} holds the claims finished before the interrupt",
        ]
    )
    assert len(list((suite.path / "cache").glob("*.npz"))) == 1
    data = json.loads(out.read_text())
    assert data["interrupted"] is True and [c["claim"] for c in data["claims"]] == ["first_feature"]


def _spec(n: int = 3) -> Spec:
    return Spec(
        model="relu_output",
        n=n,
        m=2,
        importance=[1] * n,
        density=[0.5] * n,
        eval_samples=64,
        train=TrainConfig(steps=5),
        name="tiny",
    )


def test_progress_lines_estimate_and_interrupt() -> None:
    lines: list[str] = []
    progress = TrainingProgress("lines", write=lines.append, kept="are kept in the cache C", min_seconds=0.0)
    progress.tests_total = 3
    progress.next_test()
    assert progress.estimate(_spec()) is None  # no pace yet
    with progress.training(_spec()):
        pass
    assert lines[-1].startswith("toymodel: trained 'tiny' (1 instances × 5 steps) in ")
    assert lines[-1].endswith("; 1 trained so far, claim test 1 of 3")
    assert progress.estimate(_spec()) is not None
    with pytest.raises(KeyboardInterrupt), progress.training(_spec(4)):
        raise KeyboardInterrupt
    assert progress.interrupted == "tiny"
    assert lines[-1].endswith("1 result(s) trained before it in this run are kept in the cache C")
    quiet: list[str] = []
    off = TrainingProgress("off", write=quiet.append, min_seconds=0.0)
    with off.training(_spec()):
        pass
    assert quiet == [] and describe(_spec().replace(name="")) == "relu_output n=3 m=2"


def test_progress_live_draws_and_clears(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws as on a terminal
    lines: list[str] = []
    progress = TrainingProgress("live", write=lines.append, delay=0.05, min_seconds=0.0)
    with progress.training(_spec()):
        time.sleep(1.0)
    assert lines[0] == "" and lines[-1].startswith(
        "toymodel: trained 'tiny'"
    )  # a fresh line, then the record
    assert "tiny" in capsys.readouterr().out  # drawn by rich (transient: erased when done)


def _main(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.chdir(cwd)
    return cli.main(args)


def test_train_one_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fakeimpl.py").write_text(FAKE_IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "spec.json").write_text(_spec().to_json())
    assert (
        _main(["train", "spec.json", "-o", "out/r.npz", "--impl", "fakeimpl:good"], tmp_path, monkeypatch)
        == 0
    )
    from toymodel.result import load

    result = load(tmp_path / "out" / "r.npz")
    assert result.spec == _spec() and np.allclose(result.W[0, 0, 0], 1.0)
    assert "trained spec" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text('{"model": "nope"}')
    assert _main(["train", "bad.json", "-o", "r.npz", "--impl", "fakeimpl:good"], tmp_path, monkeypatch) == 2
    assert (
        _main(["train", "spec.json", "-o", "r.npz", "--impl", "fakeimpl:absent"], tmp_path, monkeypatch) == 2
    )
    assert "has no attribute 'absent'" in capsys.readouterr().err
    assert _main(["train", "spec.json", "-o", "r.npz", "--impl", "fakeimpl:weak"], tmp_path, monkeypatch) == 0


def test_report_and_compare_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a = fake_report(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps(a))
    b = dict(a, implementation="other")
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert _main(["report", "a.json"], tmp_path, monkeypatch) == 0
    assert 'data-claim="bad_claim"' in (tmp_path / "a.html").read_text()
    assert _main(["report", "a.json", "-o", "a.json"], tmp_path, monkeypatch) == 2
    assert _main(["report", "a.json", "-k", "x"], tmp_path, monkeypatch) == 2
    assert _main(["compare", "a.json", "b.json", "-o", "c.html"], tmp_path, monkeypatch) == 0
    page = (tmp_path / "c.html").read_text()
    assert "fake (seed 0)" in page and "other (seed 0)" in page
    (tmp_path / "seeds.json").write_text(json.dumps({"implementation": "x", "seeds": [0], "claims": []}))
    assert _main(["compare", "a.json", "seeds.json"], tmp_path, monkeypatch) == 2
    assert "multi-seed verdict table" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for args in (
        ["check", "--seeds", "3", "-n", "2"],
        ["check", "--seeds", "3", "--report", "x.html"],
        ["report"],
        ["report", "--from-cache"],
    ):
        assert _main(args, tmp_path, monkeypatch) == 2, args
    with pytest.raises(SystemExit) as info:
        _main(["frobnicate"], tmp_path, monkeypatch)
    assert info.value.code == 2


def test_python_m_toymodel_check_from_the_adapters_folder(tmp_path: Path) -> None:
    """``python -m toymodel check`` runs the installed claims from any folder, finds a module
    there, and ends with the verdict table; a selection that matches nothing is a usage error."""
    (tmp_path / "fakeimpl.py").write_text(FAKE_IMPL)
    env = {**os.environ, "TOYMODEL_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [
        sys.executable,
        "-m",
        "toymodel",
        "check",
        "--impl",
        "fakeimpl:weak",
        "-k",
        "math_identities",
        "-p",
        "no:cacheprovider",
        "--report",
        "r.html",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "math_identities" in (tmp_path / "r.html").read_text() and (tmp_path / "r.json").exists()
    assert "report: r.html (and r.json)" in proc.stdout
    proc = subprocess.run(
        [*cmd[:7], "no_claim_has_this_name"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stdout[-3000:]
