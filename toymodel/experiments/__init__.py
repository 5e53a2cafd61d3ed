"""Spec builders for the paper's experiments, one module per section.

Each builder returns a :class:`toymodel.spec.Spec` for the fast tier (CI) or the paper-scale
tier (``tier="paper"``); claims share a builder's spec, so they share its (cached) training run.
"""
