"""Witnesses of the phase section's checks (see ``witness_kit``)."""

from __future__ import annotations

from witness_kit import Witness

WITNESSES: list[Witness] = []
