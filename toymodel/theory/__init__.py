"""Theory: closed-form and numerically integrated expected losses of candidate configurations.

Pure numpy/scipy (no torch), in four modules, every public name re-exported here
(``from toymodel import theory; theory.boundary_n2(r)``):

1. :mod:`~toymodel.theory.closed_forms`: the paper's phase-change candidates (section "phase"):
   per-sample expected losses of the n=2, m=1 and n=3, m=2 candidates in closed form, their
   concrete weights, the optimal-label maps and the exact phase boundaries.
2. :mod:`~toymodel.theory.expected`: the expected loss of given weights: a Monte-Carlo estimate
   (:func:`mc_loss`), a deterministic integration with its exact gradient (:func:`expected_loss`)
   and its minimiser (:func:`minimise_expected_loss`), free of SGD noise, so transitions can be
   located exactly.
3. :mod:`~toymodel.theory.optimised`: starting geometries (regular polygons, digon squares) and
   optimised candidates: each candidate's direction pattern with free norms and biases, minimised
   on the expected loss, giving the optimised phase map beside the closed-form one.
4. :mod:`~toymodel.theory.pentagon`: the pentagon → digon phase change (section "nonuniform"):
   the exact minima from a pentagon and a square start, and where they cross.

Conventions follow CLAIMS.md: ``density`` is the probability a feature is non-zero, values are
U[0, 1], loss is sum_i I_i (x_i - x'_i)^2 per sample, W is (m, n) with column i feature i's
direction (a leading instance axis where stated).
"""

from .closed_forms import (
    N2_CANDIDATES,
    N3_CANDIDATES,
    TRIPLE_POINT,
    ArrayLike,
    boundary_n2,
    boundary_n3,
    candidate_params_n2,
    candidate_params_n3,
    closed_form_losses_n2,
    closed_form_losses_n3,
    phase_map_n2,
    phase_map_n3,
)
from .expected import expected_loss, mc_loss, minimise_expected_loss
from .optimised import (
    CandidateFit,
    OptimisedPhaseMap,
    digon_square,
    optimise_candidate,
    optimised_boundary,
    optimised_phase_map,
    regular_polygon,
)
from .pentagon import PentagonMinima, pentagon_crossover, pentagon_minima

__all__ = [
    "N2_CANDIDATES",
    "N3_CANDIDATES",
    "TRIPLE_POINT",
    "ArrayLike",
    "CandidateFit",
    "OptimisedPhaseMap",
    "PentagonMinima",
    "boundary_n2",
    "boundary_n3",
    "candidate_params_n2",
    "candidate_params_n3",
    "closed_form_losses_n2",
    "closed_form_losses_n3",
    "digon_square",
    "expected_loss",
    "mc_loss",
    "minimise_expected_loss",
    "optimise_candidate",
    "optimised_boundary",
    "optimised_phase_map",
    "pentagon_crossover",
    "pentagon_minima",
    "phase_map_n2",
    "phase_map_n3",
    "regular_polygon",
]
