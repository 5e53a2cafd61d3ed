"""Executors (:mod:`toymodel.suite.executors`) and the discovery pass
(:mod:`toymodel.suite.prefetch`): the specs a run's claims need, trained before the claims run, in
local worker processes or on a Dask cluster, with the same results and verdicts as in process.

Two halves. On a tiny claims file with fake implementations (quick): what the plugin does with an
executor (progress lines, results read from the cache, a spec the discovery pass cannot know,
a failing training said once, an implementation missing on a worker, --train-only at several seeds,
Ctrl-C, option errors, --device), and a worker process killed mid-job. With the real engine (a
``distributed.LocalCluster`` of two worker processes, the reference implementation on one thread):
a handful of the fast tier's claims give bit-identical results and the same verdicts through the
cluster as in process, and a worker killed mid-run loses nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from toymodel.result import load, validate
from toymodel.spec import FeatureGroup, Spec, TrainConfig
from toymodel.suite import executors
from toymodel.suite.executors import ExecutorError, Job, Outcome
from toymodel.suite.prefetch import discover, placeholder
from toymodel.suite.progress import BatchProgress

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]

FAKE_IMPL = """
import os, time
from pathlib import Path
import numpy as np

LOG = Path(__file__).with_name("trainings.log")

def good(spec):
    with open(LOG, "a") as fh:
        fh.write(f"{spec.name} {spec.seed} {spec.device} {os.getpid()}\\n")
    if spec.n == 4:
        time.sleep(float(os.environ.get("FAKE_SLOW_S", "0")))
    W = np.zeros((spec.instances, spec.m, spec.n))
    W[:, 0, 0] = 1.0 + 1e-3 * spec.seed
    return {"W": W, "b": np.zeros((spec.instances, spec.n)), "loss_steps": [5.0],
            "loss_curve": np.ones((spec.instances, 1))}

def raises_on_n4(spec):
    if spec.n == 4:
        with open(LOG, "a") as fh:
            fh.write(f"{spec.name} {spec.seed} {spec.device} {os.getpid()}\\n")
        raise ValueError("no n=4 here")
    return good(spec)
"""

# importable in the process that runs pytest, not in the worker processes it starts
CLIENT_ONLY = """
import multiprocessing
if multiprocessing.parent_process() is not None:
    raise ImportError("clientonly is not installed on this worker")
from fakeimpl import good as train
"""

CLAIMS = '''
import pytest
from toymodel.analysis import metrics
from toymodel.spec import Spec, TrainConfig

SPEC = Spec(model="relu_output", n=3, m=2, importance=[1, 1, 1], density=[0.5] * 3, eval_samples=64,
            train=TrainConfig(steps=5), name="tiny")
N4 = SPEC.replace(n=4, importance=[1] * 4, density=[0.5] * 4, name="tiny-n4")

def test_first_feature(trained, claim):
    norm = float(metrics.feature_norms(trained(SPEC).W)[0, 0])
    claim.check("norm0", norm > 0.5, what="||W_0||", measured=norm, bound="> 0.5", lower=0.5)

def test_two_specs(trained, claim):
    a, b = trained(SPEC), trained(N4)
    ok = a.W.shape[-1] == 3 and b.W.shape[-1] == 4
    claim.check("shapes", ok, what="n", measured=b.W.shape[-1], bound=4)

def test_follow_up(trained, claim):
    """Asks for a second spec only when the first result says so: the discovery pass, on zeros,
    cannot know it."""
    if trained(SPEC).W[0, 0, 0] > 0.5:
        r = trained(SPEC.replace(seed=SPEC.seed + 7, name="follow-up"))
        claim.check("follow", r.W.shape[-1] == 3, what="n", measured=r.W.shape[-1], bound=3)

@pytest.mark.theory
def test_closed_form(claim):
    claim.check("identity", 1 + 1 == 2, what="1 + 1", measured=2, bound=2)
'''


class Suite:
    """The tiny claims file and fake implementations in a folder, with a result cache of its own."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        self.path = pytester.path
        self.cache = pytester.path / "cache"

    def run(self, *args: str, cache: str = "cache") -> pytest.RunResult:
        """A fresh interpreter (worker processes are spawned from it)."""
        self.monkeypatch.setenv("TOYMODEL_CACHE_DIR", str(self.path / cache))
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=180)

    def trainings(self) -> list[list[str]]:
        """(spec name, seed, device, pid) of every training so far."""
        log = self.path / "trainings.log"
        return [line.split() for line in log.read_text().splitlines()] if log.exists() else []

    def results(self, cache: str = "cache") -> dict[str, Any]:
        return {p.name: load(p) for p in sorted((self.path / cache).glob("*.npz"))}


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Suite:
    pytester.makepyfile(fakeimpl=FAKE_IMPL, clientonly=CLIENT_ONLY, test_claims=CLAIMS)
    pytester.makeini("[pytest]\nfilterwarnings = error\n")  # as the project runs: a warning fails
    (pytester.path / "baselines").mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("TOYMODEL_CACHE_DIR", str(pytester.path / "cache"))
    for var in ("TOYMODEL_IMPL", "TOYMODEL_EXECUTOR", "TOYMODEL_DEVICE"):
        monkeypatch.delenv(var, raising=False)
    return Suite(pytester, monkeypatch)


def _verdicts(path: Path) -> dict[str, str]:
    return {c["claim"]: c["verdict"] for c in json.loads(path.read_text())["claims"]}


# ------------------------------------------------------------------------------------------
# the parts on their own
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "named"),
    [
        ("inprocess", executors.InProcess, "inprocess"),
        ("processes:3", executors.Processes, "processes:3"),
        ("dask-local:2", executors.Dask, "dask-local:2"),
        ("dask://10.0.0.5:8786", executors.Dask, "dask://10.0.0.5:8786"),
        ("tcp://10.0.0.5:8786", executors.Dask, "dask://10.0.0.5:8786"),
    ],
)
def test_executors_by_name(text: str, kind: type, named: str) -> None:
    executor = executors.parse(text, threads=2)
    assert isinstance(executor, kind) and executor.text == named
    assert executor.threads == (None if kind is executors.InProcess else 2)
    assert executors.parse("processes").text == f"processes:{os.cpu_count() or 1}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("threads", "unknown executor; use inprocess, processes[:N], dask-local[:N] or dask://HOST:PORT"),
        ("processes:0", "'0' is not a number of workers"),
        ("dask-local:two", "'two' is not a number of workers"),
        ("dask://", "unknown executor"),
    ],
)
def test_a_bad_executor_is_one_line(text: str, message: str) -> None:
    with pytest.raises(ExecutorError, match=message.replace("[", r"\[").replace("]", r"\]")):
        executors.parse(text)


@pytest.mark.parametrize("model", ["linear", "relu_output", "relu_hidden", "abs"])
def test_the_placeholder_has_the_contracts_shapes(model: str) -> None:
    spec = Spec(
        model=model,  # type: ignore[arg-type]
        n=5,
        m=2,
        importance=[1] * 5,
        density=[[1.0] * 5, [0.1] * 5],
        restarts=3,
        eval_samples=64,
        train=TrainConfig(steps=25, log_every=10),
    )
    p = placeholder(spec)
    fields = {"W": p.W, "b": p.b, "loss_steps": p.loss_steps, "loss_curve": p.loss_curve, "W2": p.W2}
    again = validate(fields, spec, "placeholder")
    assert again.W.shape == (6, 2, 5) and list(p.loss_steps) == [10, 20, 25] and not p.W.flags.writeable


def test_a_job_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jobimpl.py").write_text(FAKE_IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = Spec(
        model="relu_output",
        n=4,
        m=2,
        importance=[1] * 4,
        density=[0.5] * 4,
        eval_samples=64,
        train=TrainConfig(steps=5),
    )
    ok = executors.train_job("jobimpl:good", spec.replace(n=3, importance=[1] * 3, density=[0.5] * 3))
    assert ok.kind == "ok" and ok.result is not None and ok.code and str(os.getpid()) in ok.worker
    bad = executors.train_job("jobimpl:raises_on_n4", spec)
    assert (bad.kind, bad.result) == ("implementation", None)
    assert bad.error.startswith("implementation 'jobimpl:raises_on_n4' raised ValueError on spec ")
    missing = executors.train_job("nosuchmodule:train", spec)
    assert missing.kind == "import" and missing.error.endswith(f"(on worker {missing.worker})")


def test_batch_progress_says_each_training_as_it_comes_back(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    for mode in ("lines", "off"):
        progress = BatchProgress(mode, write=lines.append)
        with progress.batch(2, "2 spec(s) on processes:2"):
            progress.finished("toymodel: trained 'a'")
            progress.finished("toymodel: trained 'b'")
    assert lines == ["toymodel: trained 'a' [1 of 2]", "toymodel: trained 'b' [2 of 2]"]
    live = BatchProgress("live", write=lines.append)
    with live.batch(1, "1 spec(s) on processes:2"):
        live.finished("toymodel: trained 'c'")
    assert "toymodel: trained 'c' [1 of 1]" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------
# through the plugin, on fake implementations
# ------------------------------------------------------------------------------------------
def test_worker_processes_give_the_in_process_results_and_verdicts(suite: Suite) -> None:
    here = suite.run("--impl", "fakeimpl:good", "--claims-report", "here.json", cache="here")
    here.assert_outcomes(passed=4)
    res = suite.run("--impl", "fakeimpl:good", "--executor", "processes:2", "--claims-report", "there.json")
    res.assert_outcomes(passed=4)
    res.stdout.fnmatch_lines(
        [
            "toymodel: executor = processes:2, 1 thread(s) per training",
            "toymodel: the claims ask for 2 spec(s) (found in * s); 0 cached, 2 to train on processes:2",
            "toymodel: trained 'tiny*' (1 instances × 5 steps) on * process * in * s [[]1 of 2]",
            "toymodel: 2 of 2 spec(s) trained on processes:2 in * s",
            "toymodel: 1 spec(s) the discovery pass did not find were trained in process when their claims "
            "asked: follow-up",
        ]
    )
    assert _verdicts(suite.path / "here.json") == _verdicts(suite.path / "there.json")
    here_results, there_results = suite.results("here"), suite.results()
    assert sorted(here_results) == sorted(there_results) and len(there_results) == 3
    for name, r in there_results.items():
        assert _same_bits(r, here_results[name])
    pids = {name: pid for name, _, _, pid in suite.trainings()[3:]}  # the executor's run
    assert pids["tiny"] != pids["follow-up"] and pids["tiny-n4"] != pids["follow-up"]
    again = suite.run("--impl", "fakeimpl:good", "--executor", "processes:2")
    again.assert_outcomes(passed=4)
    again.stdout.fnmatch_lines(["toymodel: the claims ask for 2 spec(s) (found in * s); 2 cached, 0 to *"])
    assert len(suite.trainings()) == 6  # nothing trained again


def test_a_failing_training_is_said_once_and_not_retrained(suite: Suite) -> None:
    res = suite.run("--impl", "fakeimpl:raises_on_n4", "--executor", "processes:2")
    res.assert_outcomes(passed=3, failed=1)
    res.stdout.fnmatch_lines(
        [
            "toymodel: FAILED 'tiny-n4': implementation 'fakeimpl:raises_on_n4' raised ValueError on spec * "
            "(tiny-n4): no n=4 here [[]* of 2]",
            "toymodel: 1 of 2 spec(s) trained on processes:2 in * s; 1 "
            "failed (their claims fail with its error)",
            "test_claims.py::test_two_specs: implementation 'fakeimpl:raises_on_n4' "
            "raised ValueError on spec * "
            "(tiny-n4): no n=4 here",
        ]
    )
    assert [t[0] for t in suite.trainings()].count("tiny-n4") == 1


def test_an_implementation_missing_on_a_worker_is_one_line_naming_it(suite: Suite) -> None:
    res = suite.run("--impl", "clientonly:train", "--executor", "processes:1")
    res.assert_outcomes(passed=1, failed=3)  # the theory test, and the follow-up never asked for
    res.stdout.fnmatch_lines(
        [
            "test_claims.py::test_first_feature: implementation "
            "'clientonly:train': cannot import 'clientonly': "
            "ImportError: clientonly is not installed on this worker (on worker * process *)",
        ]
    )
    assert not suite.trainings()


def test_train_only_at_several_seeds_then_the_claims_read_the_cache(suite: Suite) -> None:
    res = suite.run(
        "--impl", "fakeimpl:good", "--executor", "processes:2", "--train-only", "--train-seeds", "0-1"
    )
    assert res.ret == 0
    res.stdout.fnmatch_lines(
        [
            "toymodel: executor = processes:2, 1 thread(s) per training (--train-only: no claim is checked)",
            "toymodel: the claims ask for 4 spec(s) at claims seeds 0-1 "
            "(found in * s); 0 cached, 4 to train *",
        ]
    )
    assert sorted((t[0], t[1]) for t in suite.trainings()) == [
        ("tiny", "0"),
        ("tiny", "1"),
        ("tiny-n4", "0"),
        ("tiny-n4", "1"),
    ]
    suite.run("--impl", "fakeimpl:good", "--claims-seed", "1", "--cache-only").assert_outcomes(
        passed=3, skipped=1
    )
    assert len(suite.trainings()) == 4
    # --train-only alone trains in process
    res = suite.run("--impl", "fakeimpl:good", "--train-only", "--claims-seed", "2")
    assert res.ret == 0 and len(suite.trainings()) == 6


def test_ctrl_c_cancels_the_rest_and_keeps_what_came_back(suite: Suite) -> None:
    env = {**os.environ, "FAKE_SLOW_S": "120", "TOYMODEL_CACHE_DIR": str(suite.cache)}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--impl",
        "fakeimpl:good",
        "--executor",
        "processes:2",
        "test_claims.py",
    ]
    proc = subprocess.Popen(
        cmd, cwd=suite.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list(suite.cache.glob("*.npz")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert len(list(suite.cache.glob("*.npz"))) == 1  # 'tiny' came back; 'tiny-n4' sleeps
        time.sleep(0.5)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert time.monotonic() - stopped < 30  # the sleeping worker was stopped, not waited for
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert (
        "toymodel: interrupted; the 1 result(s) trained in this run are kept in the cache "
        f"{suite.cache}, and a rerun reuses them"
    ) in out
    assert [r.spec.name for r in suite.results().values()] == ["tiny"]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--executor", "threads"], "toymodel: --executor threads: unknown executor; use inprocess, *"),
        (
            ["--executor", "processes:2", "-n", "2"],
            "toymodel: --executor processes:2 trains every spec before the "
            "claims run and -n (pytest-xdist) runs *",
        ),
        (
            ["--executor", "processes:2", "--cache-only"],
            "toymodel: --executor processes:2 trains the claims' specs "
            "and --cache-only trains nothing: give *",
        ),
        (
            ["--train-seeds", "0-3"],
            "toymodel: --train-seeds says which claims seeds --train-only trains for: *",
        ),
        (
            ["--train-only", "--train-seeds", "3-x"],
            "toymodel: --train-seeds 3-x: give claims seeds from 0 to *",
        ),
        (
            ["--executor", "processes", "--worker-threads", "0"],
            "toymodel: --worker-threads 0: must be an integer *",
        ),
    ],
)
def test_executor_options_that_cannot_work_end_the_run_at_its_start(
    suite: Suite, args: list[str], line: str
) -> None:
    res = suite.run("--impl", "fakeimpl:good", *args)
    assert res.ret == 2
    res.stderr.fnmatch_lines([f"Exit: {line}"])
    assert not suite.trainings()


def test_the_executor_from_the_environment_is_named_so(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOYMODEL_EXECUTOR", "cluster")
    res = suite.run("--impl", "fakeimpl:good")
    assert res.ret == 2
    res.stderr.fnmatch_lines(["Exit: toymodel: TOYMODEL_EXECUTOR=cluster: unknown executor; use *"])


def test_device_trains_every_spec_there_with_its_own_cache_key(suite: Suite) -> None:
    res = suite.run("--impl", "fakeimpl:good", "--device", "cuda", "-k", "first_feature or two_specs")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines(["toymodel: every spec trains on device 'cuda'"])
    assert {t[2] for t in suite.trainings()} == {"cuda"}
    assert {r.spec.device for r in suite.results().values()} == {"cuda"}
    suite.run("--impl", "fakeimpl:good", "-k", "first_feature").assert_outcomes(passed=1)
    assert [t[2] for t in suite.trainings()][-1] == "cpu"  # another spec: trained again


def test_a_killed_worker_process_has_its_job_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fakeimpl.py").write_text(FAKE_IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FAKE_SLOW_S", "1.5")
    base = Spec(
        model="relu_output",
        n=4,
        m=2,
        importance=[1] * 4,
        density=[0.5] * 4,
        eval_samples=64,
        train=TrainConfig(steps=5),
        name="slow",
    )
    specs = [base.replace(seed=k) for k in range(3)]
    log = tmp_path / "trainings.log"

    def kill_the_first_to_start() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (log.exists() and log.read_text()):
            time.sleep(0.05)
        os.kill(int(log.read_text().split()[3]), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_first_to_start)
    killer.start()
    with executors.Processes(2) as ex:
        outcomes = list(ex.train(Job("fakeimpl:good", None, None, 1), specs))
    killer.join()
    assert sorted(o.spec.seed for o in outcomes) == [0, 1, 2] and all(o.kind == "ok" for o in outcomes)
    assert len(log.read_text().splitlines()) >= 4  # the killed job started again


# ------------------------------------------------------------------------------------------
# the real engine: a distributed.LocalCluster, the reference implementation, real claims
# ------------------------------------------------------------------------------------------
#: a handful of the fast tier's claims (3 specs, ~12 s of training on one unloaded core)
REAL_CLAIMS = "abs_value_basic or intro_pentagon or (antipodal_first and n5m2)"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes, as ``--executor dask-local:2`` starts them."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=40,
        env={"OMP_NUM_THREADS": "1"},
    ) as lc:
        yield lc


def _claims_run(tmp: Path, cache: str, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    env = {**os.environ, "TOYMODEL_CACHE_DIR": str(tmp / cache), "OMP_NUM_THREADS": "1"}
    for var in ("TOYMODEL_IMPL", "TOYMODEL_EXECUTOR", "TOYMODEL_DEVICE", "PYTEST_ADDOPTS"):
        env.pop(var, None)
    report = tmp / f"{cache}.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "claims"),
            "-p",
            "no:cacheprovider",
            "-m",
            "not slow and not theory",
            "-k",
            REAL_CLAIMS,
            "--impl",
            "torch",
            "--baselines-dir",
            str(ROOT / "baselines"),
            "--claims-report",
            str(report),
            *args,
        ],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, _verdicts(report)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The handful of claims run the ordinary way: each claim trains in process, on one thread."""
    tmp = tmp_path_factory.mktemp("real")
    proc, verdicts = _claims_run(tmp, "here")
    assert proc.returncode == 0, proc.stdout[-3000:]
    return tmp, verdicts


def _same_bits(a: Any, b: Any) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("W", "b", "loss_curve", "eval_loss"))


def test_a_dask_cluster_gives_the_in_process_bits_and_verdicts(
    cluster: Any, in_process: tuple[Path, dict[str, str]]
) -> None:
    tmp, here = in_process
    address = cluster.scheduler_address.split("://")[1]
    proc, there = _claims_run(tmp, "there", "--executor", f"dask://{address}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "3 of 3 spec(s) trained on dask://" in proc.stdout
    assert "did not find" not in proc.stdout and "other code" not in proc.stdout
    assert there == here and len(here) == 3 and set(here.values()) == {"passed"}
    a = {p.name: load(p) for p in (tmp / "here").glob("*.npz")}
    b = {p.name: load(p) for p in (tmp / "there").glob("*.npz")}
    assert sorted(a) == sorted(b) and len(a) == 3  # the same cache keys: same spec, implementation, code
    assert all(_same_bits(a[k], b[k]) for k in a)


def test_a_worker_killed_mid_run_loses_nothing(cluster: Any, in_process: tuple[Path, dict[str, str]]) -> None:
    from distributed import Client

    tmp, _ = in_process
    expected = {r.spec.hash(): r for r in (load(p) for p in (tmp / "here").glob("*.npz"))}
    specs = [r.spec for r in expected.values()]
    executor = executors.parse(f"dask://{cluster.scheduler_address.split('://')[1]}")
    killed: list[str] = []

    with Client(cluster.scheduler_address, set_as_default=False) as watcher:

        def kill_a_busy_worker() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                busy = [w for w, tasks in watcher.processing().items() if tasks]
                if busy:
                    time.sleep(0.5)  # well into its job
                    pid = watcher.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(busy[0])
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_busy_worker)
        with executor:
            killer.start()
            outcomes: list[Outcome] = list(executor.train(Job("torch", None, None, 1), specs))
        killer.join()
    assert killed, "no worker was busy"
    assert sorted(o.spec.hash() for o in outcomes) == sorted(expected)
    assert [o.error for o in outcomes if o.kind != "ok"] == []
    assert all(_same_bits(o.result, expected[o.spec.hash()]) for o in outcomes)


# ------------------------------------------------------------------------------------------
# the discovery pass on the real claims, and CUDA
# ------------------------------------------------------------------------------------------
def test_the_discovery_pass_asks_each_claim_for_its_specs(pytester: pytest.Pytester) -> None:
    """Every training claim of a few sections is called and asks for at least one spec; the
    correlated claims each ask for their control too (the whole fast tier was checked against a
    normal run: every test asked for exactly the specs it trains, 26 in all)."""
    items, _ = pytester.inline_genitems(
        str(ROOT / "claims" / "test_correlated.py"),
        str(ROOT / "claims" / "test_superposition.py"),
        "-m",
        "not slow",
        "-p",
        "no:cacheprovider",
    )
    found = discover([i for i in items if "slow" not in i.keywords], impl_name="torch", seed=0)
    assert not found.not_called
    trains = {
        i.nodeid for i in items if "trained" in getattr(i, "fixturenames", ()) and "slow" not in i.keywords
    }
    assert set(found.per_test) == trains and all(found.per_test[t] for t in trains)
    correlated = [t for t in trains if "test_correlated" in t]
    assert len(correlated) == 5 and all(len(found.per_test[t]) == 2 for t in correlated)
    assert {s.device for s in found.specs} == {"cpu"}


@pytest.mark.gpu
def test_the_reference_trains_on_cuda_through_an_executor() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    spec = Spec(
        model="relu_output",
        n=6,
        m=2,
        importance=[1] * 6,
        density=[0.1] * 6,
        restarts=8,
        groups=(FeatureGroup("correlated", (0, 1)),),
        eval_samples=1024,
        train=TrainConfig(steps=300),
    )
    out = executors.train_job("torch", spec.replace(device="cuda"))
    assert out.kind == "ok" and out.result is not None, out.error
    assert out.result.meta.get("device") == "cuda" and out.result.spec.device == "cuda"
    curve = out.result.loss_curve.mean(axis=0)
    assert np.all(np.isfinite(out.result.eval_loss)) and curve[-1] < curve[0]  # it learned
