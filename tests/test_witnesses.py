"""Every check of every claim can fail, and is shown to.

For each check key in ``claims/`` there is a witness (``tests/witnesses_*.py``) that the check
rejects: a result of the reference implementation broken in one way, or a broken theory function.
The registry is complete by construction: a check key found in a claim module, or one that a
claim records when it runs on the reference's results, without a witness fails this module; so
does a witness whose check no longer exists.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
import toymodel.claims
from witness_kit import Witness, claim_function, claim_id, is_theory, reference, run_claim
from witnesses_adversarial import WITNESSES as ADVERSARIAL
from witnesses_computation import WITNESSES as COMPUTATION
from witnesses_correlated import WITNESSES as CORRELATED
from witnesses_dynamics import WITNESSES as DYNAMICS
from witnesses_geometry import WITNESSES as GEOMETRY
from witnesses_nonuniform import WITNESSES as NONUNIFORM
from witnesses_phase import WITNESSES as PHASE
from witnesses_privileged import WITNESSES as PRIVILEGED
from witnesses_superposition import WITNESSES as SUPERPOSITION

from toymodel.result import Result
from toymodel.spec import Spec
from toymodel.suite.cache import DERIVED_ENV

WITNESSES: list[Witness] = [
    *SUPERPOSITION,
    *PHASE,
    *GEOMETRY,
    *NONUNIFORM,
    *CORRELATED,
    *DYNAMICS,
    *PRIVILEGED,
    *COMPUTATION,
    *ADVERSARIAL,
]
CLAIMS_DIR = Path(toymodel.claims.__file__).parent


def _literal_keys() -> dict[str, set[str]]:
    """Per claims module: the keys of every ``claim.check("key", ...)`` written in it."""
    found: dict[str, set[str]] = {}
    for path in sorted(CLAIMS_DIR.glob("test_*.py")):
        keys = found.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "check"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "claim"
            ):
                first = node.args[0] if node.args else None
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    keys.add(f"<non-literal key at {path.name}:{node.lineno}>")
                else:
                    keys.add(first.value)
    return found


def test_every_check_written_in_a_claim_module_has_a_witness() -> None:
    witnessed: dict[str, set[str]] = {}
    for w in WITNESSES:
        witnessed.setdefault(w.test.split("::")[0], set()).add(w.key)
    missing = {
        module: sorted(keys - witnessed.get(module, set()))
        for module, keys in _literal_keys().items()
        if keys - witnessed.get(module, set())
    }
    assert not missing, f"checks without a witness (add one to tests/witnesses_*.py): {missing}"


def test_every_witness_names_a_check_that_exists() -> None:
    keys = _literal_keys()
    stale = [w.id for w in WITNESSES if w.key not in keys.get(w.test.split("::")[0], set())]
    assert not stale, f"witnesses of checks no claim has: {stale}"
    ids = [w.id for w in WITNESSES]
    assert len(ids) == len(set(ids)), "two witnesses with one id"


def _slow(test: str) -> bool:
    return any(m.name == "slow" for m in getattr(claim_function(test), "pytestmark", []))


def _trained_cases() -> list[tuple[str, tuple[tuple[str, object], ...]]]:
    """(test, params) of every fast-tier claim test that the witnesses exercise (the paper tier's
    results are not trained for the package's tests; its witnesses are synthetic)."""
    seen = {
        (w.test, tuple(w.params.items()))
        for w in WITNESSES
        if not is_theory(w.test) and not _slow(w.test) and w.params.get("tier", "fast") == "fast"
    }
    return sorted(seen, key=str)


@functools.cache
def _reference_run(test: str, params: tuple[tuple[str, object], ...]) -> frozenset[tuple[str, bool]]:
    claim = run_claim(test, dict(params), None)
    stopped = claim.values.get("witness_stopped_by")
    assert stopped is None, f"{test}{dict(params)} stopped on the reference's results: {stopped}"
    return frozenset((c["key"], c["passed"]) for c in claim.checks)


@pytest.mark.parametrize(
    ("test", "params"), _trained_cases(), ids=lambda v: str(v) if isinstance(v, str) else ""
)
def test_the_reference_passes_and_every_recorded_check_has_a_witness(
    test: str, params: tuple[tuple[str, object], ...]
) -> None:
    """The unbroken input passes every check (so a witness's failure is its own doing), and every
    check the claim evaluates has a witness for this claim."""
    checks = _reference_run(test, params)
    failed = sorted(k for k, ok in checks if not ok)
    assert not failed, f"{test}{dict(params)}: the reference's own results fail {failed}"
    witnessed = {w.key for w in WITNESSES if w.test == test and tuple(w.params.items()) == params}
    missing = sorted({k for k, _ in checks} - witnessed)
    assert not missing, f"{test}{dict(params)} ({claim_id(test)}): checks without a witness: {missing}"


@pytest.mark.parametrize("witness", WITNESSES, ids=lambda w: w.id)
def test_witness_fails_its_check(witness: Witness, monkeypatch: pytest.MonkeyPatch) -> None:
    claim_function(witness.test)  # the test exists
    if witness.patch is not None:
        monkeypatch.setenv(DERIVED_ENV, "0")  # a broken theory function must not be stored as derived data
        witness.patch(monkeypatch)
    serve = witness.serve
    trained = None
    if serve is not None:

        def trained(spec: Spec) -> Result:
            return serve(spec, reference)

    claim = run_claim(witness.test, witness.params, trained)
    failed = claim.failed_keys
    assert witness.key in failed, (
        f"{witness.id}: the check passed on its witness ({witness.why}); "
        f"checks: {claim.checks}; stopped: {claim.values.get('witness_stopped_by')}"
    )
    extra = failed - {witness.key} - set(witness.also)
    assert not extra, (
        f"{witness.id} ({witness.why}) also fails {sorted(extra)}: break less, or list them in also"
    )
