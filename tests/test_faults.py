"""Fault injection through the real plugin: every bad option, broken implementation, damaged cache
and malformed spec of issue 16, each with the one line a user sees.

- a bad option or setting ends the run before any test with one line and exit status 2 (run as a
  subprocess: the real command line, its exit status and its stderr);
- a broken implementation (an exception, ``sys.exit``, another ``BaseException``, a hang, a result
  that breaks the contract) fails each claim that needs it with one line, once;
- a damaged cache (truncated, garbage, foreign files; a write that fails; a lock left by a killed
  process) costs a retraining and one warning line, never a failure;
- and nothing in the result cache or the baselines is lost or corrupted on the way.
Plus a property test: ``Spec.from_json`` of a mutated valid spec builds an equal spec or raises
SpecError, never anything else.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toymodel.spec import FeatureGroup, Spec, SpecError, TrainConfig

pytest_plugins = ["pytester"]

FAKE_IMPL = """
import os, sys, time
import numpy as np

def _log():
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainings.log"), "a") as fh:
        fh.write("trained\\n")

def good(spec):
    _log()
    W = np.zeros((spec.instances, spec.m, spec.n))
    W[:, 0, 0] = 1.0
    k = -(-spec.train.steps // spec.train.log_every)
    steps = np.minimum((np.arange(k) + 1) * spec.train.log_every, spec.train.steps)
    return {"W": W, "b": np.zeros((spec.instances, spec.n)), "loss_steps": steps,
            "loss_curve": np.ones((spec.instances, k))}

also_good = good

def exits(spec):
    sys.exit(3)

class Stop(BaseException):
    pass

def stops(spec):
    raise Stop("a BaseException of its own")

def interrupted(spec):
    raise KeyboardInterrupt

def boom(spec):
    raise ZeroDivisionError("oops\\nsecond line")

def hangs(spec):
    time.sleep(3600)

def spins(spec):
    while True:
        pass

def stubborn(spec):
    try:
        time.sleep(3600)
    except BaseException:
        pass
    return good(spec)

def bad_steps(spec):
    return {**good(spec), "loss_steps": [10.0]}

def negative_loss(spec):
    return {**good(spec), "eval_loss": -np.ones(spec.instances)}

def nan_loss(spec):
    return {**good(spec), "eval_loss": np.full(spec.instances, np.nan)}

def stray_w2(spec):
    return {**good(spec), "W2": np.zeros((spec.instances, spec.n, spec.m))}

not_callable = 3
"""

CLAIMS = """
import pytest
from toymodel.analysis import metrics
from toymodel.spec import Spec, TrainConfig

SPEC = Spec(model="relu_output", n=3, m=2, importance=[1, 1, 1], density=[0.5] * 3, eval_samples=64,
            train=TrainConfig(steps=5, log_every=5))

def test_first_feature(trained, claim):
    norm = float(metrics.feature_norms(trained(SPEC).W)[0, 0])
    claim.check("norm0", norm > 0.5, what="||W_0||", measured=norm, bound="> 0.5")

def test_shares_the_training(trained, claim):
    r = trained(SPEC)
    claim.check("instances", r.W.shape[0] == 1, what="instances", measured=r.W.shape[0], bound=1)

@pytest.mark.theory
def test_closed_form(claim):
    claim.check("identity", 1 + 1 == 2, what="1 + 1", measured=2, bound=2)
"""

BASELINE = {
    "claim": "first_feature",
    "values": {"norm0": 1.0},
    "specs": {"norm0": ["0123456789abcdef"]},
    "provenance": {"seed": 0},
}


class Suite:
    """A folder with the tiny claims file, fake implementations, a baseline and a result cache."""

    def __init__(self, pytester: pytest.Pytester, cache: Path):
        self.pytester = pytester
        self.path = pytester.path
        self.cache = cache
        self.baselines = pytester.path / "baselines"

    def run(self, *args: str) -> pytest.RunResult:
        """In process: quick, for runs that get past the start."""
        return self.pytester.runpytest("-p", "no:cacheprovider", *args)

    def run_cli(self, *args: str, timeout: float = 120) -> pytest.RunResult:
        """A fresh interpreter: the real exit status and stderr of a run that ends at its start."""
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)

    def files(self) -> dict[str, bytes]:
        """Every file of the cache and the baselines, with its bytes (not the cache's lock files:
        empty, made by any run that trains)."""
        return {
            str(p): p.read_bytes()
            for folder in (self.cache, self.baselines)
            if folder.is_dir()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".lock"
        }

    def trainings(self) -> int:
        log = self.path / "trainings.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def results(self) -> list[Path]:
        return sorted(self.cache.glob("*.npz"))


@pytest.fixture
def suite(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Suite:
    pytester.makepyfile(
        fakeimpl=FAKE_IMPL,
        test_claims=CLAIMS,
        broken_import="raise RuntimeError('my module is broken')\n",
        exits_on_import="import sys\nsys.exit(3)\n",
    )
    pytester.makeini("[pytest]\nfilterwarnings = error\n")  # as the project runs: a warning fails
    pytester.syspathinsert()
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "first_feature.json").write_text(json.dumps(BASELINE))
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("TOYMODEL_CACHE_DIR", str(cache))
    monkeypatch.delenv("TOYMODEL_IMPL", raising=False)
    return Suite(pytester, cache)


@pytest.fixture
def filled(suite: Suite) -> Suite:
    """The suite with one result already cached (claims seed 1), which no run may lose."""
    suite.run("--impl", "fakeimpl:good", "--claims-seed", "1").assert_outcomes(passed=3)
    assert len(suite.results()) == 1
    return suite


def only_line(res: pytest.RunResult) -> str:
    """The single line a run that ends at its start prints, without pytest's ``Exit: `` and our
    ``toymodel: `` prefix; fails unless that is all it printed and it exited with status 2."""
    lines = [line for line in res.outlines + res.errlines if line.strip()]
    assert res.ret == 2, (res.ret, lines)
    assert len(lines) == 1 and lines[0].startswith("Exit: toymodel: "), lines
    return lines[0].removeprefix("Exit: toymodel: ")


# ----- options and settings: one line, exit status 2, before any test --------------------------
@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--impl", "numpy_typo"],
            "--impl numpy_typo: unknown implementation 'numpy_typo' (did you mean 'numpy'?): use one of "
            "['numpy', 'torch', 'torch-plain'] or 'module:attr'",
        ),
        (["--impl", "fakeimpl:missing"], "--impl fakeimpl:missing: 'fakeimpl' has no attribute 'missing'"),
        (
            ["--impl", "fakeimpl:not_callable"],
            "--impl fakeimpl:not_callable: 'fakeimpl:not_callable' is not callable (type int)",
        ),
        (
            ["--impl", "nosuchmodule:train"],
            "--impl nosuchmodule:train: cannot import 'nosuchmodule': ModuleNotFoundError: No module named "
            "'nosuchmodule'",
        ),
        (
            ["--impl", "broken_import:train"],
            "--impl broken_import:train: cannot import 'broken_import': RuntimeError: my module is broken",
        ),
        (
            ["--impl", "exits_on_import:train"],
            "--impl exits_on_import:train: cannot import 'exits_on_import': called sys.exit(3)",
        ),
        (
            ["--claims-seed", "-1"],
            "--claims-seed -1: must be an integer from 0 to 2147483647 (the base seed added to every claim's "
            "spec seeds)",
        ),
        (
            ["--claims-seed", "1.5"],
            "--claims-seed 1.5: must be an integer from 0 to 2147483647 "
            "(the base seed added to every claim's "
            "spec seeds)",
        ),
        (
            ["--claims-seed", str(2**31)],
            "--claims-seed 2147483648: must be an integer from 0 to 2147483647 (the base seed added to every "
            "claim's spec seeds)",
        ),
        (["--train-timeout", "-5"], "--train-timeout -5: must be a number of seconds >= 0 (0: no limit)"),
        (["--train-timeout", "nan"], "--train-timeout nan: must be a number of seconds >= 0 (0: no limit)"),
        (
            ["--xfails-file", "absent.txt"],
            "--xfails-file absent.txt: cannot read it (No such file or directory)",
        ),
        (["--xfails-file", "baselines"], "--xfails-file baselines: cannot read it (Is a directory)"),
        (
            ["--claims-report", "baselines"],
            "--claims-report baselines: is a folder; give a file name, e.g. baselines/report.json",
        ),
        (
            ["--claims-report", "/proc/x/report.json"],
            "--claims-report /proc/x/report.json: its folder cannot be created (No such file or directory)",
        ),
        (
            ["--baselines-dir", "absent"],
            "--baselines-dir absent: no such folder (--regen-baselines creates it)",
        ),
        (
            ["--impl", "fakeimpl:good", "--regen-baselines"],
            "--regen-baselines rewrites the reference implementation's own numbers ('torch', claims seed 0), "
            "and this run tests implementation 'fakeimpl:good' (--impl fakeimpl:good): nothing would be "
            "written; drop --regen-baselines, or regenerate with the reference at seed 0",
        ),
        (
            ["--claims-seed", "2", "--regen-baselines"],
            "--regen-baselines rewrites the reference implementation's own numbers ('torch', claims seed 0), "
            "and --claims-seed is 2: nothing would be written; drop "
            "--regen-baselines, or regenerate with the "
            "reference at seed 0",
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_bad_option_ends_the_run_at_its_start(filled: Suite, args: list[str], line: str) -> None:
    """Found once, before collection and training (nothing trained, no result or baseline touched),
    instead of one failure per claim beside passing theory checks or a traceback per claim."""
    before = filled.files()
    assert only_line(filled.run_cli(*args)) == line
    assert filled.files() == before and filled.trainings() == 1


def test_an_implementation_from_the_environment_is_named_so(
    filled: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOYMODEL_IMPL", "numpy_typo")
    assert only_line(filled.run_cli()).startswith("TOYMODEL_IMPL=numpy_typo: unknown implementation")


def test_the_full_import_traceback_with_v(suite: Suite) -> None:
    res = suite.run_cli("--impl", "broken_import:train", "-v")
    assert res.ret == 2
    res.stderr.fnmatch_lines(
        [
            "Traceback*",
            "*raise RuntimeError('my module is broken')*",
            "RuntimeError: my module is broken",
            "Exit: toymodel: --impl broken_import:train: cannot import*",
        ]
    )


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder no file can be created in, for root too (``chattr +i``) where it can be made."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode
    ):
        pytest.skip("running as root, and chattr +i cannot make a read-only folder here")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("case", ["pseudo-filesystem", "a file", "read-only", "xdg", "home"])
def test_an_unusable_cache_folder_is_named_with_what_chose_it(
    suite: Suite,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    case: str,
) -> None:
    env, folder, reason = "TOYMODEL_CACHE_DIR", "", "cannot be created (No such file or directory)"
    if case == "pseudo-filesystem":
        folder = "/proc/x"
    elif case == "a file":
        folder = str(tmp_path / "a-file")
        Path(folder).write_text("not a folder")
        reason = "is a file, not a folder"
    elif case == "read-only":
        folder = str(request.getfixturevalue("read_only_dir"))
        reason = "is not writable ("
    else:
        monkeypatch.delenv("TOYMODEL_CACHE_DIR")
        env = "XDG_CACHE_HOME" if case == "xdg" else "HOME"
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        monkeypatch.setenv(env, "/proc/x")
    if env == "TOYMODEL_CACHE_DIR":
        monkeypatch.setenv(env, folder)
    line = only_line(suite.run_cli("--impl", "fakeimpl:good"))
    source = {
        "TOYMODEL_CACHE_DIR": f"TOYMODEL_CACHE_DIR={folder}",
        "XDG_CACHE_HOME": "XDG_CACHE_HOME=/proc/x",
        "HOME": "the default, ~/.cache/toymodel/results",
    }[env]
    shown = {"xdg": "/proc/x/toymodel/results", "home": "/proc/x/.cache/toymodel/results"}.get(case, folder)
    assert line.startswith(f"result cache folder {shown} (from {source}) {reason}"), line
    assert line.endswith("; set TOYMODEL_CACHE_DIR to a writable folder, or pass --no-cache"), line
    # --no-cache needs no folder
    monkeypatch.setenv("TOYMODEL_CACHE_DIR", "/proc/x")
    suite.run("--impl", "fakeimpl:good", "--no-cache").assert_outcomes(passed=3)


def test_the_default_implementation_is_loaded_only_when_a_test_trains(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pytest tests`` loads the plugin too: without a claim that trains, a default implementation
    that cannot be loaded (torch not installed) is no error; with one, the run ends after collection."""
    import toymodel.suite.implementations as impls

    monkeypatch.setitem(impls.REGISTRY, "torch", "nosuchmodule:train")
    suite.run("-k", "closed_form").assert_outcomes(passed=1)
    res = suite.run()
    assert res.ret == 2
    lines = [line for line in res.outlines if "Exit" in line]
    assert (
        len(lines) == 1
        and (
            "toymodel: the default implementation 'torch': cannot import 'nosuchmodule': "
            "ModuleNotFoundError: No module named 'nosuchmodule'"
        )
        in lines[0]
    ), lines
    assert "passed" not in res.stdout.str() and suite.trainings() == 0


# ----- broken implementations: one line per failure, once --------------------------------------
@pytest.mark.parametrize(
    ("impl", "message"),
    [
        ("exits", "implementation 'fakeimpl:exits' called sys.exit(3) on spec {spec} (relu_output)"),
        (
            "stops",
            "implementation 'fakeimpl:stops' raised Stop on spec {spec} (relu_output): a BaseException "
            "of its own",
        ),
        (
            "boom",
            "implementation 'fakeimpl:boom' raised ZeroDivisionError on spec {spec} (relu_output): oops "
            "second line",
        ),
        (
            "bad_steps",
            "implementation 'fakeimpl:bad_steps': result field 'loss_steps' is [10.], expected [5.] "
            "(the end of every train.log_every = 5 window of train.steps = 5)",
        ),
        (
            "stray_w2",
            "implementation 'fakeimpl:stray_w2': result field 'W2' is only for 'abs' models, not "
            "'relu_output'",
        ),
    ],
)
def test_a_broken_implementation_is_one_line_per_claim(filled: Suite, impl: str, message: str) -> None:
    before = filled.files()
    res = filled.run("--impl", f"fakeimpl:{impl}")
    res.assert_outcomes(failed=2, passed=1)  # the theory check needs no implementation
    spec = _spec_hash()
    text = res.stdout.str()
    for test in ("test_first_feature", "test_shares_the_training"):
        assert text.count(f"test_claims.py::{test}: {message.format(spec=spec)}") == 1, text
    assert text.count(message.format(spec=spec)) == 2, text  # the short summary does not repeat it
    for noise in ("Traceback", "During handling", "direct cause", "SystemExit: 3"):
        assert noise not in text, text
    assert filled.files() == before  # nothing cached for a broken implementation, nothing lost


def test_v_shows_the_implementation_traceback(suite: Suite) -> None:
    res = suite.run("--impl", "fakeimpl:exits", "-v", "-k", "first_feature")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(
        [
            "*sys.exit(3)*",
            "E*SystemExit: 3",
            "*direct cause*",
            "E*ImplementationFailure: implementation 'fakeimpl:exits' called sys.exit(3)*",
        ]
    )


def test_keyboard_interrupt_still_interrupts(suite: Suite) -> None:
    res = suite.run_cli("--impl", "fakeimpl:interrupted")
    assert res.ret == 2 and "KeyboardInterrupt" in res.stdout.str()
    assert "implementation 'fakeimpl:interrupted' raised" not in res.stdout.str()


@pytest.mark.parametrize(("impl", "stopped"), [("hangs", True), ("spins", True), ("stubborn", False)])
def test_a_hung_implementation_is_stopped_by_the_time_limit(suite: Suite, impl: str, stopped: bool) -> None:
    """A sleep, a busy loop, and one that swallows the alarm and returns late: one line naming the
    implementation and the spec, and the run goes on."""
    start = time.monotonic()
    res = suite.run("--impl", f"fakeimpl:{impl}", "--train-timeout", "0.5", "-k", "first_feature or closed")
    assert time.monotonic() - start < 60
    res.assert_outcomes(failed=1, passed=1)
    line = (
        f"test_claims.py::test_first_feature: implementation 'fakeimpl:{impl}' did not finish training "
        f"spec {_spec_hash()} (relu_output) within 0.5 s (--train-timeout)"
    )
    line += "; stopped it" if stopped else ""
    assert line in res.outlines, res.stdout.str()
    assert "Traceback" not in res.stdout.str()


def test_the_time_limit_default(suite: Suite) -> None:
    res = suite.run("--impl", "fakeimpl:good", "-k", "closed")
    res.stdout.fnmatch_lines(["*time limit per training = 1800 s*"])
    res = suite.run("--impl", "fakeimpl:good", "-m", "slow")
    res.stdout.fnmatch_lines(["*time limit per training = none*"])
    res = suite.run("--impl", "fakeimpl:good", "--train-timeout", "0", "-k", "closed")
    res.stdout.fnmatch_lines(["*time limit per training = none*"])


@pytest.mark.parametrize("impl", ["negative_loss", "nan_loss"])
def test_impossible_reported_losses_are_one_note(suite: Suite, impl: str) -> None:
    """The suite recomputes every held-out loss: an impossible reported one is one NOTE line and the
    claims are judged on the suite's own numbers."""
    res = suite.run("--impl", f"fakeimpl:{impl}")
    res.assert_outcomes(passed=3)
    notes = [line for line in res.outlines if line.startswith("NOTE: ")]
    assert len(notes) == 1 and "reported held-out losses the suite does not confirm" in notes[0], notes


# ----- cache faults: retrained with one warning, no failure, nothing lost ----------------------
@pytest.mark.parametrize(
    "damage", ["truncated", "garbage", "empty", "other spec", "other implementation", "foreign npz"]
)
def test_a_damaged_cache_file_is_retrained_with_one_warning(filled: Suite, damage: str) -> None:
    filled.run("--impl", "fakeimpl:good").assert_outcomes(passed=3)
    (path,) = [p for p in filled.results() if p.name.startswith(_spec_hash())]  # the other: seed 1
    good, other = path.read_bytes(), next(p for p in filled.results() if p != path).read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage\xff" * 50)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other spec":
        path.write_bytes(other)
    elif damage == "foreign npz":
        import numpy as np

        with path.open("wb") as fh:
            np.savez(fh, W=np.zeros(3))
    else:
        filled.run("--impl", "fakeimpl:also_good", "-k", "first").assert_outcomes(passed=1)
        path.write_bytes(next(p for p in filled.results() if "also_good" in p.name).read_bytes())
    before = {k: v for k, v in filled.files().items() if k != str(path)}
    trained = filled.trainings()
    res = filled.run("--impl", "fakeimpl:good")
    res.assert_outcomes(passed=3)
    warnings = [line for line in res.outlines if "WARNING" in line]
    assert len(warnings) == 1, res.stdout.str()
    assert warnings[0].startswith(f"toymodel WARNING: cached result {path} could not be used (")
    assert warnings[0].endswith("); retrained it")
    assert filled.trainings() == trained + 1
    assert path.read_bytes() == good  # retrained and rewritten, whole
    assert {k: v for k, v in filled.files().items() if k != str(path)} == before
    res = filled.run("--impl", "fakeimpl:good")  # and read back without a word
    res.assert_outcomes(passed=3)
    assert "WARNING" not in res.stdout.str() and filled.trainings() == trained + 1


def test_a_failed_write_keeps_the_result_for_the_run_and_says_so_once(filled: Suite) -> None:
    """A real failed write: a file size limit (EFBIG, as a full disk gives ENOSPC) below a result's
    size. Both claims pass on one training, one line says it was not cached, no partial file is
    left and the result cached before is intact."""
    before = filled.files()
    limit = min(len(p.read_bytes()) for p in filled.results()) // 2

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--impl", "fakeimpl:good"]
    proc = subprocess.run(
        command,
        cwd=filled.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=small_files,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].strip("= ").startswith("3 passed in"), proc.stdout
    warnings = [line for line in proc.stdout.splitlines() if "WARNING" in line]
    assert warnings == [
        f"toymodel WARNING: could not write trained results to the cache {filled.cache} "
        "(OSError: [Errno 27] File too large); they are kept for this run only"
    ], proc.stdout
    assert filled.trainings() == 2  # the filled one, and one for both claims here
    after = filled.files()
    assert after == before, set(after) - set(before)  # no partial result, no temporary file, nothing lost


def _hold_lock(lock: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\nfh = open(sys.argv[1], 'a+b')\n"
            "fcntl.flock(fh, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)\n",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.stdout.close()
    return holder


@pytest.mark.skipif(sys.platform == "win32", reason="flock locks are POSIX")
def test_a_lock_left_by_a_killed_process_does_not_block(suite: Suite) -> None:
    """flock locks vanish with their process: a run killed while it held one (its lock file is
    still there) does not block the next run; a live holder is waited for up to the time limit,
    then trained without (one warning)."""
    suite.run("--impl", "fakeimpl:good").assert_outcomes(passed=3)
    (result,) = suite.results()
    lock = result.with_suffix(".lock")
    result.unlink()
    holder = _hold_lock(lock)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock.exists()
    start = time.monotonic()
    res = suite.run("--impl", "fakeimpl:good", "--train-timeout", "30")
    res.assert_outcomes(passed=3)
    assert time.monotonic() - start < 25 and "WARNING" not in res.stdout.str(), res.stdout.str()
    assert result.exists() and suite.trainings() == 2

    result.unlink()
    holder = _hold_lock(lock)
    try:
        res = suite.run("--impl", "fakeimpl:good", "--train-timeout", "0.5")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    res.assert_outcomes(passed=3)
    warnings = [line for line in res.outlines if "WARNING" in line]
    assert warnings == [
        f"toymodel WARNING: waited 0.5 s for {lock}, which another process holds (training "
        "the same spec, or hung); trained without it"
    ], res.stdout.str()
    assert result.exists()


def _spec_hash() -> str:
    return Spec(
        model="relu_output",
        n=3,
        m=2,
        importance=[1, 1, 1],
        density=[0.5] * 3,
        eval_samples=64,
        train=TrainConfig(steps=5, log_every=5),
    ).hash()


# ----- specs: every field error is a SpecError naming the field --------------------------------
BASE: dict[str, Any] = dict(model="relu_output", n=4, m=2, importance=[1.0] * 4, density=[0.1] * 4)


def test_float_feature_indices_are_rejected_not_truncated() -> None:
    msg = "'groups.features' = [0.7, 1.2]: feature indices must be integers; 0.7 is a float"
    with pytest.raises(SpecError, match=re.escape(msg)):
        FeatureGroup("correlated", [0.7, 1.2])  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"'groups\[0\]\.features' = \[0\.7, 1\.2\]: feature indices must be"):
        Spec.from_json(json.dumps({**BASE, "groups": [{"kind": "correlated", "features": [0.7, 1.2]}]}))
    with pytest.raises(SpecError, match="True is a bool"):
        FeatureGroup("correlated", [True, False])  # type: ignore[arg-type]
    import numpy as np

    group = FeatureGroup("correlated", np.array([0, 1]))  # type: ignore[arg-type]
    assert group.features == (0, 1) and all(type(f) is int for f in group.features)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Spec(**BASE, train={"stpes": 100}),  # type: ignore[arg-type]
            "invalid spec field 'train.stpes' = 100: unknown train field (did you mean 'steps'? known: ",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "train": {"stpes": 100}})),
            "invalid spec field 'train.stpes' = 100: unknown train field (did you mean 'steps'? known: ",
        ),
        (
            lambda: Spec(**BASE).replace(train={"stpes": 100}),
            "invalid spec field 'train.stpes' = 100: unknown train field (did you mean 'steps'? known: ",
        ),
        (
            lambda: TrainConfig(stpes=100),  # type: ignore[call-arg]
            "invalid spec field 'train.stpes' = 100: unknown train field (did you mean 'steps'? known: ",
        ),
        (
            lambda: Spec(**BASE, steps=100),  # type: ignore[call-arg]
            "invalid spec field 'steps' = 100: unknown spec field (a training setting belongs in train: "
            "train={'steps': ...}; known: ",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "sed": 3})),
            "invalid spec field 'sed' = 3: unknown spec field (did you mean 'seed'? known: ",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "groups": 5})),
            "invalid spec field 'groups' = 5: must be a list of groups",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "groups": [{"kind": "correlated"}]})),
            "missing spec field 'groups[0].features': it is required",
        ),
        (
            lambda: Spec.from_json(
                json.dumps({**BASE, "groups": [{"kind": "correlated", "feature": [0, 1]}]})
            ),
            "invalid spec field 'groups[0].feature' = [0, 1]: unknown group field (did you mean 'features'?",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "groups": [[0, 1]]})),
            "invalid spec field 'groups[0]' = [0, 1]: must be a group",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "train": {"betas": 0.9}})),
            "invalid spec field 'train.betas' = 0.9: must be a pair (beta1, beta2)",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "train": 5})),
            "invalid spec field 'train' = 5: must be a TrainConfig or a mapping of its fields",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "importance": ["1", "1", "1", "1"]})),
            "invalid spec field 'importance' = ['1', '1', '1', '1']: must hold numbers only; '1' is a str",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "n": True})),
            "invalid spec field 'n' = True: must be a positive",
        ),
        (
            lambda: Spec.from_json(json.dumps({**BASE, "train": {"lr": 10**400}})),
            "invalid spec field 'train.lr' = 1000",
        ),
        (lambda: Spec.from_json("[" * 100_000), "spec JSON does not parse: maximum recursion depth exceeded"),
        (lambda: Spec(model="linear"), "missing spec field 'n': it is required"),  # type: ignore[call-arg]
    ],
)
def test_every_field_error_is_a_spec_error_naming_the_field(build: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        build()
    assert str(info.value).startswith(message), str(info.value)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def valid_specs(draw: st.DrawFn) -> Spec:
    n, settings = draw(st.integers(2, 5)), draw(st.integers(1, 3))
    density = draw(
        st.lists(st.lists(st.floats(0, 1), min_size=n, max_size=n), min_size=settings, max_size=settings)
    )
    groups = []
    if draw(st.booleans()):
        for row in density:
            row[1] = row[0]
        groups = [{"kind": draw(st.sampled_from(["correlated", "anticorrelated"])), "features": [0, 1]}]
    importance = draw(st.lists(st.floats(0, 10), min_size=n, max_size=n))
    return Spec(
        model=draw(st.sampled_from(["linear", "relu_output", "relu_hidden", "abs"])),
        n=n,
        m=draw(st.integers(1, 4)),
        importance=importance,
        density=density,
        groups=groups,  # type: ignore[arg-type]
        restarts=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**40)),
        hidden_l1=draw(st.none() | st.just((0.1,) * settings)),
        train=TrainConfig(steps=draw(st.integers(1, 10**5)), lr=draw(st.floats(1e-4, 1.0))),
    )


def _mutate(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with at most one change somewhere inside it: a value replaced by any JSON, a key
    deleted, added or misspelt, a list item changed, dropped or appended."""
    op = draw(st.sampled_from(["keep", "replace"] + (["descend"] * 3 if depth < 4 else [])))
    if op == "replace":
        return draw(JSON_VALUES)
    if op == "descend" and isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        out = dict(value)
        action = draw(st.sampled_from(["into", "delete", "add", "misspell"]))
        if action == "into":
            out[key] = _mutate(draw, value[key], depth + 1)
        elif action == "delete":
            del out[key]
        elif action == "add":
            out[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        else:
            out[key[:-1] + key[-1:].upper() + draw(st.sampled_from(["", "s", "_"]))] = out.pop(key)
        return out
    if op == "descend" and isinstance(value, list) and value:
        i = draw(st.integers(0, len(value) - 1))
        out_list = list(value)
        action = draw(st.sampled_from(["into", "delete", "append"]))
        if action == "into":
            out_list[i] = _mutate(draw, value[i], depth + 1)
        elif action == "delete":
            del out_list[i]
        else:
            out_list.append(draw(JSON_VALUES))
        return out_list
    return value


@given(base=valid_specs(), data=st.data())
def test_from_json_builds_an_equal_spec_or_raises_spec_error(base: Spec, data: st.DataObject) -> None:
    """Mutated valid specs (and mangled JSON text): a SpecError, or a spec that survives its own
    round trip, equal to the original when the mutation changed nothing; never another exception."""
    original = json.loads(base.to_json())
    text = json.dumps(_mutate(data.draw, original))  # type: ignore[arg-type]
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(text)))
        text = text[:cut] + data.draw(st.text(max_size=3)) + text[cut + data.draw(st.integers(0, 3)) :]
    try:
        spec = Spec.from_json(text)
    except SpecError:
        return
    again = Spec.from_json(spec.to_json())
    assert again == spec and again.hash() == spec.hash()
    if json.loads(text) == original:
        assert spec == base and spec.hash() == base.hash()
