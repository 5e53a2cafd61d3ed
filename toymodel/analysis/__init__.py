"""Analysis: pure numpy functions of a result's arrays, what the claims measure.

:mod:`~toymodel.analysis.metrics` (norms, superposition, dimensionality, neurons),
:mod:`~toymodel.analysis.geometry` (angles, antipodal pairs, polygon and polytope labels),
:mod:`~toymodel.analysis.select` (which restart stands for a setting),
:mod:`~toymodel.analysis.phasemap` (trained phase maps against the theory's),
:mod:`~toymodel.analysis.pentagon` (the pentagon sweep's labels and exact losses),
:mod:`~toymodel.analysis.regimes` (plateaus and drops of a loss curve) and
:mod:`~toymodel.analysis.adversarial` (attacks on the toy models). No torch, no training, no I/O.
"""
