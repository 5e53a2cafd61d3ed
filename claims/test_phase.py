"""Section "superposition as a phase change" (n=2, m=1 and n=3, m=2; extra feature of relative
importance r, every density s).

The trained maps label each (r, s) cell from its selected model's extra feature
(:mod:`toymodel.analysis.phasemap`) and are compared with the optimised-candidate theory: the paper's
candidate configurations with their norms and biases minimised on the deterministic expected loss
(:func:`toymodel.theory.optimised_phase_map`), since trained models optimise norms and biases
freely; the closed-form map (norms 1, biases as in the paper) is reported beside it. Free norms
and biases move the n=2 boundary up (0.18 rather than 0.16 at r=0.1 and r=10).

Selection: per cell, the restart with the lowest *deterministic expected* loss
(:func:`toymodel.analysis.phasemap.best_by_expected_loss`), the held-out loss of an infinite sample: at
density 0.01 the n=3 configurations differ only on inputs with two active features, too rare in
a finite sample to rank restarts. The paper trained 10 models per point and discarded the worst;
keeping the best is stricter. Known departures, reported not asserted: beside the triple point the
transition softens (the antipodal candidate degenerates into a weak extra feature); for n=3, r>1
the excluded triangle competes and the extra feature can stick antipodal to a unit feature.

Training: :data:`toymodel.experiments.phase.PHASE_TRAIN` (AdamW lr 1e-2 decayed linearly over
1000 steps, batch 512; 8 restarts per cell); that module's docstring says why it departs from the
notebook's settings.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import numpy as np
import pytest

from toymodel import theory
from toymodel.analysis import phasemap, select
from toymodel.experiments import phase as ex
from toymodel.report import figures
from toymodel.result import Result
from toymodel.spec import Spec
from toymodel.suite.cache import derived, source_hash
from toymodel.suite.claim import Claim, Trained

pytestmark = pytest.mark.phase


TIER_PARAMS = [pytest.param("fast", id="fast"), pytest.param("paper", id="paper", marks=pytest.mark.slow)]
#: (r, s) points where the closed forms are checked against Monte Carlo, on both sides of both
#: boundaries and near the triple point
MC_POINTS = ((0.1, 0.05), (0.1, 0.5), (0.5, 0.3), (1.0, 4 / 7), (3.0, 0.2), (10.0, 0.8))
#: rows (values of r) where boundaries and derivative jumps are checked exactly
R_ROWS = (0.1, 0.3, 0.7, 1.0, 1.5, 3.0, 10.0)


def _spec(n: int, tier: ex.Tier) -> Spec:
    return ex.phase_grid(n, tier)


@functools.lru_cache(maxsize=4)
def _theory_maps(n: int, tier: ex.Tier) -> theory.OptimisedPhaseMap:
    """Closed-form and optimised-candidate maps of a tier's grid (deterministic, shared; kept in the
    cache folder, keyed by the grid and the theory's source, since they take ~10-30 s to compute)."""
    r, s = ex.grid(tier)
    key = hashlib.sha256(f"{n}|{r.tobytes().hex()}|{s.tobytes().hex()}|{source_hash(theory)}".encode())

    def build() -> dict[str, np.ndarray]:
        pm = theory.optimised_phase_map(n, r, s)
        return {f: np.asarray(getattr(pm, f)) for f in theory.OptimisedPhaseMap.__dataclass_fields__}

    a = derived(f"phase-map-n{n}", key.hexdigest()[:16], build)
    return theory.OptimisedPhaseMap(
        n=int(a["n"]),
        names=tuple(str(x) for x in a["names"]),
        r=a["r"],
        s=a["s"],
        losses=a["losses"],
        collapsed=a["collapsed"],
        labels=a["labels"],
        closed_form=a["closed_form"],
        closed_form_labels=a["closed_form_labels"],
    )


def _best(result: Result, tier: ex.Tier) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell (R, S): the selected restart's weights (R, S, m, n) and expected loss (R, S), and
    the weights the held-out-sample selection would pick (R, S, m, n), for the report."""
    r, s = ex.grid(tier)
    _, W, loss = phasemap.best_by_expected_loss(result)
    held_out = select.best_of(result).W
    shape = (len(r), len(s))
    return W.reshape(*shape, *W.shape[1:]), loss.reshape(shape), held_out.reshape(*shape, *W.shape[1:])


def _mc_matches(claim: Claim, n: int) -> None:
    """Closed forms vs Monte Carlo (z within 4 SE) and vs the deterministic expected loss."""
    names, params_of = (
        (theory.N2_CANDIDATES, theory.candidate_params_n2)
        if n == 2
        else (theory.N3_CANDIDATES, theory.candidate_params_n3)
    )
    closed_of = theory.closed_form_losses_n2 if n == 2 else theory.closed_form_losses_n3
    rng = np.random.default_rng(1000 + claim.seed)
    worst_z, worst_exact = 0.0, 0.0
    for r, s in MC_POINTS:
        cands = params_of(s)
        imp = np.ones((len(names), n))
        imp[:, -1] = r
        params = {"W": np.stack([cands[k][0] for k in names]), "b": np.stack([cands[k][1] for k in names])}
        mean, se = theory.mc_loss("relu_output", params, imp, np.full((len(names), n), s), 200_000, rng)
        closed = closed_of(r, s)
        worst_z = max(worst_z, float(np.max(np.abs(mean - closed) / se)))
        exact = np.array([theory.expected_loss(cands[k][0], cands[k][1], imp[0], s)[0] for k in names])
        worst_exact = max(worst_exact, float(np.max(np.abs(exact - closed) / closed)))
    claim.check(
        "closed_forms_vs_monte_carlo",
        worst_z < 4.0,
        what=f"closed forms vs 200k-sample Monte Carlo at {len(MC_POINTS)} (r, s) "
        "points, every candidate (largest |z|)",
        measured=worst_z,
        bound="< 4 standard errors",
        upper=4.0,
    )
    claim.check(
        "closed_forms_vs_expected_loss",
        worst_exact < 1e-9,
        what="closed forms vs the deterministic expected loss (largest relative difference)",
        measured=worst_exact,
        bound="< 1e-9",
        upper=1e-9,
    )


@pytest.mark.theory
def test_phase_n2_theory(claim: Claim) -> None:
    """n=2, m=1: "ignore a unit feature s/3 − s²/4; ignore the extra r(s/3 − s²/4); antipodal
    (1+r)s²/6"; superposition wins iff s < 4r/(2+5r) (r<1) or s < 4/(5+2r) (r>1), triple point
    (1, 4/7), boundary 0.16 at r=0.1 and r=10 (derived)."""
    _mc_matches(claim, 2)
    r = np.array(R_ROWS)
    sb = theory.boundary_n2(r)
    L = theory.closed_form_losses_n2(r, sb)
    rival = np.where(r < 1, L[0], L[1])
    gap = float(np.max(np.abs(L[2] - rival) / rival))
    claim.check(
        "boundary_tie",
        gap < 1e-12,
        what="antipodal loss = its rival's at the boundary (largest relative gap)",
        measured=gap,
        bound="< 1e-12",
        upper=1e-12,
    )
    eps = 1e-6
    below = theory.phase_map_n2(r, sb * (1 - eps))
    above = theory.phase_map_n2(r, sb * (1 + eps))
    # at r=1 the two rivals tie above the boundary (the lowest index, 0, is reported)
    above_ok = np.where(r < 1, above == 0, np.where(r > 1, above == 1, np.isin(above, (0, 1))))
    claim.check(
        "boundary_winners",
        np.all(below == 2) & np.all(above_ok),
        what="winner just below / above the boundary",
        measured={"below": below, "above": above},
        bound="antipodal (2) below; not represented (0) above for r<1, dedicated (1) for r>1",
    )
    tp = theory.closed_form_losses_n2(*theory.TRIPLE_POINT)
    claim.check(
        "triple_point",
        np.ptp(tp) < 1e-15,
        what="the three losses at the triple point (1, 4/7)",
        measured=tp,
        bound="equal",
    )
    edge = theory.boundary_n2([0.1, 10.0])
    claim.check(
        "edge_boundary",
        np.allclose(edge, 0.16, rtol=1e-14, atol=0.0),
        what="boundary at r=0.1 and r=10",
        measured=edge,
        bound="0.16 (derived)",
    )
    # Free norms and biases move the boundary (reported, not asserted: the paper fixed them).
    moved = {
        f"r={rv:g}": {
            "closed_form": float(theory.boundary_n2(rv)),
            "optimised": theory.optimised_boundary(2, rv),
        }
        for rv in (0.1, 0.3, 3.0, 10.0)
    }
    claim.record("boundary_closed_vs_optimised", moved)
    pm = _theory_maps(2, "fast")
    claim.record("fast_cells_optimised_map_differs", int(np.sum(pm.labels != pm.closed_form_labels)))
    claim.regress("optimised_boundary", [v["optimised"] for v in moved.values()], rtol=1e-4)


@pytest.mark.theory
@pytest.mark.claim("phase_n2_first_order")
def test_phase_n2_first_order_theory(claim: Claim) -> None:
    """ "A first-order phase change", in the closed forms: the optimal loss is continuous across
    the boundary but its derivative jumps."""
    h = 1e-7
    jumps, steps = [], []
    for rv in R_ROWS:
        sb = float(theory.boundary_n2(rv))
        opt = [float(theory.closed_form_losses_n2(rv, sv).min()) for sv in (sb - h, sb, sb + h)]
        left, right = (opt[1] - opt[0]) / h, (opt[2] - opt[1]) / h
        jumps.append((left - right) / max(abs(left), abs(right)))
        steps.append(abs(opt[2] - opt[0]) / opt[1])
    claim.record("theory_relative_derivative_jump", dict(zip(map(str, R_ROWS), jumps, strict=True)))
    claim.check(
        "continuous",
        max(steps) < 1e-5,
        what="change of the optimal loss across the boundary over ±1e-7 (relative; continuity)",
        measured=max(steps),
        bound="< 1e-5",
        upper=1e-5,
    )
    # antipodal side steeper: (1+r)s/3 vs r(1/3 - s/2) (r<1) or 1/3 - s/2 (r>1); smallest at the edges
    claim.check(
        "derivative_jump",
        min(jumps) > 0.5,
        what="relative jump of dL/ds at the boundary, (left - right) / max",
        measured=min(jumps),
        bound="> 0.5 in every row",
        value=min(jumps),
        lower=0.5,
    )


def test_phase_n2_first_order(trained: Trained, claim: Claim) -> None:
    """ "A first-order phase change" in trained models: the log-log slope of the best loss jumps
    across each row's trained boundary, as much as the optimised-candidate theory's does."""
    # Trained: log-log slope of the best held-out loss on the last full segment above each row's
    # trained boundary vs the first full segment below it.
    tier: ex.Tier = "fast"
    result = trained(_spec(2, tier))
    W, loss, _ = _best(result, tier)
    r, s = ex.grid(tier)
    labels = phasemap.extra_feature_labels(W)
    slopes = phasemap.loglog_slopes(s, loss)
    th_loss = _theory_maps(2, tier).losses.min(axis=0)
    th_slopes = phasemap.loglog_slopes(s, th_loss)
    trained_jump, theory_jump = [], []
    for a in range(len(r)):
        sup = labels[a] == 2
        if not sup.any():
            continue
        c = int(np.argmax(sup))
        if c < 2 or c + 1 >= len(s) or not np.all(sup[c:]):
            continue  # needs one clean boundary with a full segment on each side
        trained_jump.append(slopes[a, c] - slopes[a, c - 2])
        theory_jump.append(th_slopes[a, c] - th_slopes[a, c - 2])
    tj = np.array(trained_jump)
    claim.record("trained_slope_jumps", tj)
    claim.record("optimised_theory_slope_jumps_same_cells", np.array(theory_jump))
    claim.check(
        "clean_rows",
        len(tj) >= len(r) // 2,
        what="rows with a clean trained boundary",
        measured=len(tj),
        bound=f">= {len(r) // 2}",
        lower=len(r) // 2,
    )
    # jumps measured 1.1-2.6 per row (the theory's 1.1-2.6); a model without the antipodal phase has none
    claim.check(
        "trained_jump",
        tj.size > 0 and np.min(tj) > 0.5,
        what="trained: jump of d log L / d log s across the boundary (below minus above)",
        measured=tj,
        bound="> 0.5 in every clean row",
        value=float(np.min(tj)) if tj.size else float("nan"),
        lower=0.5,
    )
    # against the same segments of the optimised-candidate theory (the median: a row whose trained
    # boundary sits one cell off the theory's compares different segments). Measured ~1e-4 for
    # correct implementations, ~0.1 with the bias frozen or the importance ignored
    dev = float(np.median(np.abs(tj - np.array(theory_jump)))) if tj.size else float("inf")
    claim.check(
        "jump_matches_theory",
        dev < 0.02,
        what="median |trained - theory| slope jump over the clean rows",
        measured=dev,
        bound="< 0.02",
        upper=0.02,
    )
    claim.regress("median_trained_slope_jump", float(np.median(tj)), rtol=0.03)


def _draw_maps(
    n: int, r: np.ndarray, s: np.ndarray, maps: dict[str, np.ndarray], names: tuple[str, ...]
) -> Callable[[object], None]:
    boundary = theory.boundary_n2(r) if n == 2 else theory.boundary_n3(r)
    title = (
        "n=2, m=1: what the extra feature gets"
        if n == 2
        else "n=3, m=2: the configuration of the three features"
    )
    return lambda fig: figures.phase_diagram(fig, r, s, maps, names, boundary=boundary, title=title)


@pytest.mark.parametrize("tier", TIER_PARAMS)
def test_phase_n2_empirical(trained: Trained, claim: Claim, tier: ex.Tier) -> None:
    """Trained n=2, m=1 models "show the same three phases" as the theory (the paper: 10 runs per
    point, discarding the worst; here the lowest expected loss of 8). Agreement on the cells at
    least two cells from a boundary, and on all cells (reported)."""
    result = trained(_spec(2, tier))
    W, _, W_held_out = _best(result, tier)
    r, s = ex.grid(tier)
    labels = phasemap.extra_feature_labels(W)
    pm = _theory_maps(2, tier)
    agree = {}
    for name, th in (("optimised", pm.labels), ("closed_form", pm.closed_form_labels)):
        away = phasemap.away_from_boundary(th)
        agree[name] = {
            "away": phasemap.agreement(labels, th, away),
            "all": phasemap.agreement(labels, th),
            "away_cells": int(away.sum()),
        }
    claim.record("agreement", agree)
    held_out = phasemap.extra_feature_labels(W_held_out)
    claim.record(
        "agreement_away_held_out_selection",
        phasemap.agreement(held_out, pm.labels, phasemap.away_from_boundary(pm.labels)),
    )
    claim.record("trained_labels", labels)
    claim.record("other_cells", int(np.sum(labels == 3)))
    claim.figure(
        f"maps-{tier}",
        _draw_maps(
            2,
            r,
            s,
            {
                "closed-form theory": pm.closed_form_labels,
                "optimised-candidate theory": pm.labels,
                f"trained (best of {result.spec.restarts})": labels,
            },
            phasemap.EXTRA_LABELS,
        ),
    )
    # measured 0.99-1.00 away from the boundary (the misses: the cells beside the triple point)
    claim.check(
        "agreement_away",
        agree["optimised"]["away"] >= 0.95,
        what="agreement with the optimised-candidate map on cells >= 2 cells from its boundary",
        measured=agree["optimised"]["away"],
        bound=">= 0.95",
        lower=0.95,
    )
    if tier == "fast":
        values = [agree[k][w] for k in ("optimised", "closed_form") for w in ("away", "all")]
        claim.regress("agreement", values, rtol=0.0, atol=0.021)  # 3 of 144 cells may flip


@pytest.mark.theory
def test_phase_n3_theory(claim: Claim) -> None:
    """n=3, m=2 (extra feature 3; the all-three triangle excluded, as the paper): for r<1 the same
    boundary as n=2; for r>1 the extra feature always gets a dedicated dimension and the other
    two form an antipodal pair below s=4/7 (derived)."""
    _mc_matches(claim, 3)
    r = np.array(R_ROWS)
    sb = theory.boundary_n3(r)
    low = r < 1
    claim.check(
        "boundary",
        np.allclose(sb[low], theory.boundary_n2(r[low]), rtol=1e-14) and np.allclose(sb[~low], 4 / 7),
        what="boundary_n3",
        measured=sb,
        bound="4r/(2+5r) for r<1, 4/7 for r>=1",
    )
    L = theory.closed_form_losses_n3(r, sb)
    gap = np.where(low, np.abs(L[3] - L[0]) / L[0], np.abs(L[2] - L[1]) / L[1])
    claim.check(
        "boundary_tie",
        float(gap.max()) < 1e-12,
        what="the two competing losses at the boundary (relative gap)",
        measured=float(gap.max()),
        bound="< 1e-12",
        upper=1e-12,
    )
    eps = 1e-6
    below, above = theory.phase_map_n3(r, sb * (1 - eps)), theory.phase_map_n3(r, sb * (1 + eps))
    # at r=1 all four candidates tie at s=4/7, and pairs of them tie on either side (lowest index wins)
    want_below, want_above = np.where(low, 3, 2), np.where(low | (r == 1), 0, 1)
    claim.check(
        "boundary_winners",
        np.all(below == want_below) and np.all(above == want_above),
        what="winner just below / above the boundary",
        measured={"below": below, "above": above},
        bound={"below": want_below, "above": want_above},
    )
    rr, ss = np.meshgrid(np.geomspace(1.001, 10, 40), np.geomspace(0.01, 1, 60), indexing="ij")
    hi_r = theory.phase_map_n3(rr, ss)
    claim.check(
        "extra_dedicated",
        bool(np.all(np.isin(hi_r, (1, 2)))),
        what="r>1: the extra feature is dedicated (perp_100 or perp_110) everywhere",
        measured=np.unique(hi_r),
        bound="labels in {1, 2}",
    )
    pm = _theory_maps(3, "fast")
    claim.record("fast_cells_optimised_map_differs", int(np.sum(pm.labels != pm.closed_form_labels)))
    # The excluded candidate: a triangle (W ⊥ [1,1,1]) with its norms and biases optimised, against
    # the best optimised paper candidate, at r>1 and low density (reported).
    tri = {}
    for rv in (2.0, 10.0):
        imp = np.array([1.0, 1.0, rv])
        for sv in (0.01, 0.1):
            t = theory.optimise_candidate(theory.regular_polygon(3, 3), np.zeros(3), imp, sv)
            cands = theory.candidate_params_n3(sv)
            best = min(theory.optimise_candidate(*cands[k], imp, sv).loss for k in theory.N3_CANDIDATES)
            tri[f"r={rv:g},s={sv:g}"] = t.loss / best
    claim.record("regular_triangle_loss_over_best_candidate", tri)
    claim.regress("regular_triangle_loss_over_best_candidate", list(tri.values()), rtol=1e-4)


@pytest.mark.parametrize("tier", TIER_PARAMS)
def test_phase_n3_empirical(trained: Trained, claim: Claim, tier: ex.Tier) -> None:
    """Trained n=3, m=2 models match the theory "where the theory's candidate set is complete"
    (r<1); r>1 at low density, where the excluded triangle competes, is measured and reported."""
    result = trained(_spec(3, tier))
    W, _, W_held_out = _best(result, tier)
    r, s = ex.grid(tier)
    config = phasemap.configuration_n3(W)
    pm = _theory_maps(3, tier)
    low = (r < 1)[:, None] & np.ones(len(s), dtype=bool)[None, :]
    agree = {}
    for name, th in (("optimised", pm.labels), ("closed_form", pm.closed_form_labels)):
        away = phasemap.away_from_boundary(th)
        extra = phasemap.extra_label_of_n3(config)
        agree[name] = {
            "r<1_away": phasemap.agreement(config, th, away & low),
            "r<1_all": phasemap.agreement(config, th, low),
            "r>1_away": phasemap.agreement(config, th, away & ~low),
            "r>1_all": phasemap.agreement(config, th, ~low),
            "extra_label_all": phasemap.agreement(extra, phasemap.extra_label_of_n3(th)),
        }
    claim.record("agreement", agree)
    claim.record(
        "agreement_held_out_selection_r<1_away",
        phasemap.agreement(
            phasemap.configuration_n3(W_held_out), pm.labels, phasemap.away_from_boundary(pm.labels) & low
        ),
    )
    claim.record("configurations", config)
    counts = {nm: int(np.sum(config == i)) for i, nm in enumerate(phasemap.N3_LABELS)}
    claim.record("configuration_counts", counts)
    sparse_hi = (~low) & (s < 0.1)[None, :]
    claim.record(
        "r>1_s<0.1_labels",
        {nm: int(np.sum(config[sparse_hi] == i)) for i, nm in enumerate(phasemap.N3_LABELS)},
    )
    claim.figure(
        f"maps-{tier}",
        _draw_maps(
            3,
            r,
            s,
            {
                "closed-form theory": pm.closed_form_labels,
                "optimised-candidate theory": pm.labels,
                f"trained (best of {result.spec.restarts})": config,
            },
            phasemap.N3_LABELS,
        ),
    )
    # measured 1.00 for r<1 away from the boundary; r>1 (0.83-0.98) is reported only
    claim.check(
        "agreement_away_r_below_1",
        agree["optimised"]["r<1_away"] >= 0.95,
        what="r<1: agreement with the optimised-candidate map on cells >= 2 cells from its boundary",
        measured=agree["optimised"]["r<1_away"],
        bound=">= 0.95",
        lower=0.95,
    )
    if tier == "fast":
        claim.regress(
            "agreement",
            [agree[k][w] for k in ("optimised", "closed_form") for w in ("r<1_away", "r<1_all", "r>1_all")],
            rtol=0.0,
            atol=0.03,
        )
