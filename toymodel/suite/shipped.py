"""Where the data shipped beside the installed claims lives: the regression baselines and the
calibration data (``toymodel/baselines/`` and ``toymodel/calibration/`` in a wheel, the checkout's
``baselines/`` and ``calibration/`` in an editable install)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_calibration_dir", "shipped_baselines"]


def shipped_baselines() -> Path:
    """The baselines shipped beside the installed claims (``toymodel/baselines/`` in a wheel, the
    checkout's ``baselines/`` in an editable install)."""
    try:
        import toymodel.claims as claims

        return Path(claims.__file__).resolve().parents[1] / "baselines"
    except (ImportError, TypeError):
        return Path(__file__).parent.parent / "baselines"


def default_calibration_dir() -> Path:
    """``calibration/`` beside the installed claims (the checkout's in an editable install)."""
    return shipped_baselines().parent / "calibration"
