"""The report's figures (toymodel.report.figures) on small arrays: each draws, labels its axes, has a
title and a legend or colour bar, and saves as a PNG."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from toymodel.report import figures
from toymodel.suite.claim import Claim

RNG = np.random.default_rng(0)


def _texts(fig: Figure) -> str:
    """Every title, axis label, legend entry and colour-bar label of a figure, as one string."""
    parts = [fig.get_suptitle()]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        if hasattr(ax, "get_zlabel"):
            parts.append(ax.get_zlabel())
        legend = ax.get_legend()
        if legend is not None:
            parts += [t.get_text() for t in legend.get_texts()]
        parts += [t.get_text() for t in ax.texts]
    return " | ".join(parts)


def _draw(draw: Callable[[Figure], Any]) -> tuple[Figure, str]:
    fig = Figure(figsize=(6, 4.5))
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(buf.getvalue()) > 1000
    return fig, _texts(fig)


def test_superposition_sweep_heat_maps_and_bars() -> None:
    W = RNG.normal(size=(3, 2, 5))
    fig, text = _draw(lambda f: figures.superposition_sweep(f, W, (1.0, 0.1, 0.01), title="sweep"))
    assert "density 0.01" in text and "‖W_i‖" in text and "sweep" in text
    assert "superposition" in text and "WᵀW entry" in text  # both colour bars are labelled
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 3 and np.allclose(np.asarray(heat[0].images[0].get_array()), W[0].T @ W[0])
    bars = [ax for ax in fig.axes if ax.patches]
    widths = [p.get_width() for p in bars[1].patches if isinstance(p, Rectangle)]
    assert len(bars) == 3 and widths == pytest.approx(np.linalg.norm(W[1], axis=0))


@pytest.mark.parametrize("groups", [None, [0, 0, 1, 1]])
def test_feature_directions_2d(groups: list[int] | None) -> None:
    W = RNG.normal(size=(2, 2, 4))
    names = ["set A", "set B"] if groups else None
    _, text = _draw(
        lambda f: figures.feature_directions_2d(
            f, W, ["left", "right"], title="dirs", groups=groups, group_names=names
        )
    )
    assert "left" in text and "right" in text and "hidden dim 1" in text and "hidden dim 2" in text
    assert ("set A" in text and "set B" in text) if groups else "feature 3" in text


def test_feature_directions_3d() -> None:
    W = RNG.normal(size=(3, 6))
    _, text = _draw(
        lambda f: figures.feature_directions_3d(
            f, W, title="octa", groups=[0, 0, 0, 1, 1, 1], group_names=["set 0", "set 1"]
        )
    )
    assert "hidden dim 3" in text and "set 1" in text and "octa" in text


def test_phase_diagram_draws_the_boundary_over_every_map() -> None:
    r, s = np.geomspace(0.1, 10, 6), np.geomspace(0.01, 1, 5)
    labels = RNG.integers(0, 3, size=(6, 5))
    boundary = 4 * r / (2 + 5 * r)
    fig, text = _draw(
        lambda f: figures.phase_diagram(
            f,
            r,
            s,
            {"theory": labels, "trained": labels},
            ("none", "dedicated", "superposition"),
            boundary=boundary,
            title="phase",
        )
    )
    assert "theory boundary" in text and "superposition" in text and "density s" in text
    drawn = [ax for ax in fig.axes if ax.lines]
    assert len(drawn) == 2 and np.allclose(drawn[1].lines[0].get_ydata(), boundary)


def test_dims_per_feature_and_scatter_mark_the_fractions() -> None:
    inv = np.array([1.0, 2.0, 4.0, 8.0])
    dstar = np.array([[1.0, 0.98], [0.7, 0.6], [0.51, 0.52], [0.45, 0.44]])
    _, text = _draw(lambda f: figures.dims_per_feature(f, inv, dstar, band=0.03, title="D*"))
    assert "restart 1" in text and "1/(1−S)" in text and "D* = m" in text
    assert all(frac in text for frac in ("3/4", "2/3", "1/2", "2/5", "3/8"))
    dims = RNG.uniform(0, 1, size=(4, 2, 5))
    _, text = _draw(lambda f: figures.dimensionality_scatter(f, inv, dims, title="D_i"))
    assert "feature dimensionality D_i" in text and "2/5" in text


def test_loss_crossover_marks_both_crossings() -> None:
    x = np.geomspace(0.1, 3, 6)
    _, text = _draw(
        lambda f: figures.loss_crossover(
            f,
            x,
            {"pentagon": x**0.5, "square": x**0.4},
            {"pentagon": x**0.5, "square": x**0.4},
            crossings={"trained": 0.3, "exact": 0.35, "missing": float("nan")},
            bracket=(0.25, 0.55),
            title="x",
        )
    )
    assert "trained crossover 0.3" in text and "exact crossover 0.35" in text and "missing" not in text
    assert "square: exact minimum" in text and "bound [0.25, 0.55]" in text


def test_loss_regimes_gram_and_the_rest() -> None:
    steps = np.arange(1, 101) * 10.0
    curve = np.exp(-steps / 300)
    _, text = _draw(
        lambda f: figures.loss_regimes(
            f, steps, curve, plateaus=[(10, 200, 0.8)], drops=[300.0], title="regimes"
        )
    )
    assert "plateau" in text and "drop" in text and "training step" in text
    G = np.eye(4)
    _, text = _draw(lambda f: figures.gram(f, {"a": G, "b": -G}, boundaries=[2], title="g"))
    assert "(WᵀW)ᵢⱼ" in text and "feature i" in text
    d = np.array([1.0, 0.1, 0.01])
    _, text = _draw(
        lambda f: figures.collapse_counts(
            f, d, np.array([0, 1, 3]), paper=[(0.05, 0.15, 1)], title="collapse"
        )
    )
    assert "paper (approximate ranges)" in text and "collapsed pairs" in text
    _, text = _draw(
        lambda f: figures.vulnerability(f, d, np.array([1.0, 2.0, 5.0]), np.array([1.0, 2, 3]), title="vuln")
    )
    assert "vulnerability" in text and "features per dimension" in text
    _, text = _draw(
        lambda f: figures.trajectories(f, steps[:5], RNG.uniform(size=(5, 3)), steps, curve, title="traj")
    )
    assert "feature dimensionality D_i" in text and "training loss" in text


def test_a_figure_that_fails_to_draw_never_fails_the_claim(tmp_path: Any) -> None:
    c = Claim(id="c", implementation="x", seed=0, figure_dir=tmp_path)

    def broken(fig: Figure) -> None:
        raise ValueError("no data")

    c.figure("broken", broken)
    c.figure("fine", lambda fig: fig.add_subplot().plot([0, 1]))
    assert c.figure_errors == ["figure 'broken': ValueError: no data"]
    assert [p.rsplit("/", 1)[-1] for p in c.figures] == ["c-fine.png"]
    assert c.as_dict()["figure_errors"] == c.figure_errors
