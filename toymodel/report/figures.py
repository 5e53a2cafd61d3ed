"""The report's figures, drawn as the paper draws them, from plain arrays.

Every function draws into a matplotlib ``Figure`` it is given (``claim.figure(name, draw)`` makes
one and saves it; tests make their own) and labels what it draws: axes with their quantities,
a title, a legend or colour bar for every encoding. They read arrays only, never results or
specs, so a claim passes exactly what it measured, and each is tested on small arrays
(``tests/test_figures.py``). matplotlib is imported inside the functions: importing this module
needs nothing beyond numpy; :func:`figures_unavailable` says, once, why it cannot be imported.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..analysis import metrics

__all__ = [
    "FRACTIONS",
    "collapse_counts",
    "dimensionality_scatter",
    "dims_per_feature",
    "feature_directions_2d",
    "feature_directions_3d",
    "figures_unavailable",
    "gram",
    "loss_crossover",
    "loss_regimes",
    "phase_diagram",
    "superposition_sweep",
    "trajectories",
    "vulnerability",
]

Figure = Any  # matplotlib.figure.Figure (not imported at module level)

#: the fractions of a dimension the paper marks on its dimensionality plots
FRACTIONS: dict[str, float] = {
    "1": 1.0,
    "3/4": 3 / 4,
    "2/3": 2 / 3,
    "1/2": 1 / 2,
    "2/5": 2 / 5,
    "3/8": 3 / 8,
    "0": 0.0,
}
#: categorical colours (colour-blind safe, Paul Tol's "bright"), then black for "other"
PALETTE = ("#bbbbbb", "#4477aa", "#ee6677", "#ccbb44", "#228833", "#66ccee", "#aa3377", "#000000")


@functools.cache
def figures_unavailable() -> str | None:
    """Why figures cannot be drawn here (matplotlib cannot be imported), or None; asked once."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot
    except Exception as exc:  # ImportError, or a broken install
        return f"matplotlib cannot be imported ({type(exc).__name__}: {exc}); pip install matplotlib"
    return None


def _density_axis(ax: Any, values: np.ndarray, label: str) -> None:
    """A log-scaled x axis of positive ``values`` with plain tick labels."""
    ax.set_xscale("log")
    lo, hi = float(np.min(values)), float(np.max(values))
    candidates = [t * 10.0**e for e in range(-4, 3) for t in (1, 2, 3, 5)]
    ticks = [t for t in candidates if lo / 1.01 <= t <= hi * 1.01]
    if len(ticks) >= 2:
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.tick_params(axis="x", which="minor", labelbottom=False)
    ax.set_xlabel(label)


def superposition_sweep(fig: Figure, W: np.ndarray, densities: Sequence[float], *, title: str) -> None:
    """The paper's superposition figure, one column per density: WᵀW as a heat map (top) and
    ‖W_i‖ per feature as bars coloured by its superposition Σ_{j≠i}(Ŵ_i·W_j)² (bottom).
    ``W``: (levels, m, n)."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    levels, _, n = W.shape
    fig.set_size_inches(max(6.0, 1.9 * levels), 5.2)
    axes = fig.subplots(2, levels, squeeze=False, gridspec_kw={"height_ratios": [1, 1.15]})
    norms, sup = metrics.feature_norms(W), metrics.superposition(W)
    sup_norm = Normalize(0.0, 1.0)
    bar_cmap = matplotlib.colormaps["viridis"]
    heat = None
    for k in range(levels):
        top, bottom = axes[0, k], axes[1, k]
        heat = top.imshow(metrics.gram(W[k]), cmap="RdBu", vmin=-1, vmax=1)
        top.set_title(f"density {densities[k]:g}", fontsize=8)
        top.set_xticks([])
        top.set_yticks([])
        colours = [bar_cmap(sup_norm(min(float(v), 1.0))) for v in sup[k]]
        bottom.barh(np.arange(n), norms[k], color=colours, height=0.8)
        bottom.set_xlim(0, max(1.1, float(norms.max()) * 1.05))
        bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
        bottom.invert_yaxis()
        bottom.set_xlabel("‖W_i‖", fontsize=7)
        bottom.tick_params(labelsize=6)
        if k == 0:
            top.set_ylabel("WᵀW (features i, j)", fontsize=7)
            bottom.set_ylabel("feature i (most important first)", fontsize=7)
        else:
            bottom.set_yticks([])
    fig.colorbar(heat, ax=list(axes[0]), shrink=0.8, label="WᵀW entry")
    fig.colorbar(
        ScalarMappable(norm=sup_norm, cmap=bar_cmap),
        ax=list(axes[1]),
        shrink=0.8,
        label="superposition Σⱼ≠ᵢ (Ŵᵢ·Wⱼ)²",
    )
    fig.suptitle(title, fontsize=9)


def feature_directions_2d(
    fig: Figure,
    W: np.ndarray,
    titles: Sequence[str],
    *,
    title: str,
    groups: Sequence[int] | None = None,
    group_names: Sequence[str] | None = None,
    compact: bool = False,
) -> None:
    """Each feature's direction W_i in a 2-D hidden space, one panel per instance of ``W``
    ((panels, 2, n)); features of one group (``groups[i]``) share a colour, else each feature
    has its own and is labelled by index. ``compact``: small panels without tick labels."""
    panels, _, n = W.shape
    size = 1.5 if compact else 2.6
    fig.set_size_inches(max(4.0, size * panels + 1.5), size + 1.0)
    axes = np.atleast_1d(fig.subplots(1, panels, squeeze=False)[0])
    lim = max(1.2, float(np.abs(W).max()) * 1.1)
    for ax, w, name in zip(axes, W, titles, strict=True):
        seen: set[str] = set()
        for i in range(n):
            colour = PALETTE[1 + (groups[i] if groups is not None else i) % (len(PALETTE) - 2)]
            label = (
                group_names[groups[i]]
                if groups is not None and group_names is not None
                else f"set {groups[i]}"
                if groups is not None
                else f"feature {i}"
            )
            ax.plot(
                [0, w[0, i]],
                [0, w[1, i]],
                color=colour,
                marker="o",
                markersize=3,
                label=label if label not in seen else None,
            )
            seen.add(label)
            if not compact and np.hypot(w[0, i], w[1, i]) > 0.1:
                ax.annotate(str(i), (w[0, i], w[1, i]), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
        ax.axhline(0, color="0.85", lw=0.5, zorder=0)
        ax.axvline(0, color="0.85", lw=0.5, zorder=0)
        ax.set_title(name, fontsize=7)
        if compact:
            ax.set(xticks=[], yticks=[])
        ax.set_xlabel("hidden dim 1", fontsize=6)
    axes[0].set_ylabel("hidden dim 2", fontsize=6)
    axes[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=9)


def feature_directions_3d(
    fig: Figure, W: np.ndarray, *, title: str, groups: Sequence[int], group_names: Sequence[str]
) -> None:
    """Each feature's direction in a 3-D hidden space (``W``: (3, n)), coloured by group."""
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    seen: set[int] = set()
    for i in range(W.shape[1]):
        g = groups[i]
        ax.plot(
            [0, W[0, i]],
            [0, W[1, i]],
            [0, W[2, i]],
            marker="o",
            color=PALETTE[1 + g % 6],
            label=group_names[g] if g not in seen else None,
        )
        seen.add(g)
        ax.text(W[0, i], W[1, i], W[2, i], str(i), fontsize=7)
    ax.set_xlabel("hidden dim 1", fontsize=7)
    ax.set_ylabel("hidden dim 2", fontsize=7)
    ax.set_zlabel("hidden dim 3", fontsize=7)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6)


def phase_diagram(
    fig: Figure,
    r: np.ndarray,
    s: np.ndarray,
    maps: Mapping[str, np.ndarray],
    names: Sequence[str],
    *,
    boundary: np.ndarray | None,
    title: str,
) -> None:
    """Phase maps over relative importance ``r`` and density ``s``: one panel per labelled map
    ((len(r), len(s)) indices into ``names``), the theory's boundary ``boundary`` (the density
    of the phase change at each r) drawn over every panel."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig.set_size_inches(4.2 * len(maps), 4.2)
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    colours = [*PALETTE[: len(names) - 1], PALETTE[-1]]
    cmap = ListedColormap(colours)
    for ax, (name, lab) in zip(axes, maps.items(), strict=True):
        ax.pcolormesh(r, s, np.asarray(lab).T, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, shading="nearest")
        if boundary is not None:
            ax.plot(r, boundary, color="k", lw=1.4, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("relative importance r of the extra feature")
        ax.set_title(name, fontsize=9)
    axes[0].set_ylabel("density s = 1 − S")
    handles: list[Any] = [Patch(color=c, label=nm) for c, nm in zip(colours, names, strict=True)]
    if boundary is not None:
        handles.append(Line2D([], [], color="k", ls="--", label="theory boundary (closed form)"))
    axes[-1].legend(handles=handles, fontsize=6, loc="lower right", framealpha=0.9)
    fig.suptitle(title, fontsize=10)


def dims_per_feature(
    fig: Figure, inverse_density: np.ndarray, dstar: np.ndarray, *, band: float | None = None, title: str
) -> None:
    """D* = m/‖W‖_F² against 1/(1−S) (``dstar``: (levels, restarts)), with the fractions the
    paper marks (1, 3/4, 2/3, 1/2, 2/5, 3/8) as labelled lines; ``band``: the ± tolerance drawn
    around 1/2."""
    ax = fig.add_subplot()
    for k, curve in enumerate(np.asarray(dstar).T):
        ax.plot(inverse_density, curve, marker="o", markersize=3, lw=1, label=f"restart {k}")
    _fraction_lines(ax, skip=("0",))
    if band is not None:
        ax.axhspan(0.5 - band, 0.5 + band, color="0.5", alpha=0.15, lw=0, label=f"1/2 ± {band:g}")
    _density_axis(ax, inverse_density, "1/(1−S) (inverse feature density)")
    ax.set_ylabel("dimensions per feature D* = m / ‖W‖_F²")
    ax.set_ylim(0, 1.1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2, loc="lower left")


def _fraction_lines(ax: Any, skip: Sequence[str] = ()) -> None:
    """The paper's fractions of a dimension as dashed lines, labelled just right of the axes."""
    for name, y in FRACTIONS.items():
        if name in skip:
            continue
        ax.axhline(y, color="0.55", lw=0.6, ls="--", zorder=0)
        ax.text(1.01, y, name, va="center", fontsize=7, color="0.3", transform=ax.get_yaxis_transform())


def dimensionality_scatter(fig: Figure, inverse_density: np.ndarray, dims: np.ndarray, *, title: str) -> None:
    """Every feature's dimensionality D_i against 1/(1−S) (``dims``: (levels, restarts, n)),
    jittered along x, with the fractions the paper marks as labelled lines."""
    ax = fig.add_subplot()
    dims = np.asarray(dims)
    xs = np.broadcast_to(np.asarray(inverse_density).reshape(-1, *([1] * (dims.ndim - 1))), dims.shape)
    jitter = np.random.default_rng(0).uniform(0.97, 1.03, size=dims.shape)
    ax.scatter((xs * jitter).reshape(-1), dims.reshape(-1), s=3, alpha=0.4, label="feature i (all restarts)")
    _fraction_lines(ax)
    _density_axis(ax, inverse_density, "1/(1−S) (inverse feature density)")
    ax.set_ylabel("feature dimensionality D_i")
    ax.set_ylim(-0.05, 1.1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="upper right")


def loss_crossover(
    fig: Figure,
    x: np.ndarray,
    trained: Mapping[str, np.ndarray],
    exact: Mapping[str, np.ndarray],
    *,
    crossings: Mapping[str, float],
    bracket: tuple[float, float] | None,
    title: str,
) -> None:
    """Loss of each geometry against the varied feature's relative density: trained (markers)
    and exact minima (lines), each named crossing as a vertical line, ``bracket`` shaded."""
    ax = fig.subplots()
    for k, (name, curve) in enumerate(trained.items()):
        colour = PALETTE[1 + k]
        ax.plot(x, curve, "o", color=colour, markersize=4, label=f"{name}: trained (lowest loss)")
        if name in exact:
            ax.plot(x, exact[name], "-", color=colour, alpha=0.6, label=f"{name}: exact minimum")
    for (name, value), style in zip(crossings.items(), ("--", ":", "-."), strict=False):
        if np.isfinite(value):
            ax.axvline(value, color="k", ls=style, lw=1, label=f"{name} crossover {value:.3g}")
    if bracket is not None:
        ax.axvspan(*bracket, color="0.9", zorder=0, label=f"bound [{bracket[0]:g}, {bracket[1]:g}]")
    ax.set(xscale="log", yscale="log")
    ax.set_xlabel("relative density of the varied feature (× the others')")
    ax.set_ylabel("expected loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)


def loss_regimes(
    fig: Figure,
    steps: np.ndarray,
    curve: np.ndarray,
    *,
    plateaus: Sequence[tuple[float, float, float]],
    drops: Sequence[float],
    title: str,
) -> None:
    """A training-loss curve with the regimes found in it: plateaus ``(start, end, level)`` as
    horizontal bars, drops as vertical lines at their steps."""
    ax = fig.add_subplot()
    ax.semilogy(steps, curve, lw=0.6, color="0.5", label="training loss")
    for k, (start, end, level) in enumerate(plateaus):
        ax.plot([start, end], [level, level], lw=3, color=PALETTE[1], label="plateau" if k == 0 else None)
    for k, step in enumerate(drops):
        ax.axvline(step, color=PALETTE[2], lw=1, ls="--", label="drop" if k == 0 else None)
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (log)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def gram(
    fig: Figure, panels: Mapping[str, np.ndarray], *, title: str, boundaries: Sequence[int] = ()
) -> None:
    """WᵀW as heat maps, one panel per named (n, n) matrix (features on both axes), lines between
    the feature sets at ``boundaries`` (indices where a new set starts)."""
    from matplotlib.ticker import MaxNLocator

    fig.set_size_inches(4.0 * len(panels) + 1.0, 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    im = None
    for ax, (name, G) in zip(axes, panels.items(), strict=True):
        im = ax.imshow(G, cmap="RdBu", vmin=-1, vmax=1)
        for b in boundaries:
            ax.axhline(b - 0.5, color="k", lw=0.8)
            ax.axvline(b - 0.5, color="k", lw=0.8)
        ax.set_xlabel("feature j")
        ax.set_title(name, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("feature i")
    fig.colorbar(im, ax=list(axes), shrink=0.85, label="(WᵀW)ᵢⱼ")
    fig.suptitle(title, fontsize=9)


def collapse_counts(
    fig: Figure,
    densities: np.ndarray,
    counts: np.ndarray,
    *,
    paper: Sequence[tuple[float, float, int]],
    title: str,
) -> None:
    """Collapsed correlated pairs against density (measured), with the paper's ranges
    ``(low, high, count)`` as grey bars."""
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(densities, counts, "o-", color=PALETTE[1], label="measured (best restart)")
    for k, (lo, hi, c) in enumerate(paper):
        ax.plot(
            [max(lo, float(np.min(densities))), hi],
            [c, c],
            color="0.5",
            lw=6,
            alpha=0.4,
            label="paper (approximate ranges)" if k == 0 else None,
        )
    _density_axis(ax, np.asarray(densities), "feature density 1 − S")
    ax.set_ylabel("collapsed pairs (of 3)")
    ax.set_yticks(range(4))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def vulnerability(
    fig: Figure, densities: np.ndarray, vuln: np.ndarray, per_dim: np.ndarray, *, title: str
) -> None:
    """Adversarial vulnerability (× the ideal model's) and features per dimension ‖W‖_F²/m
    against density, sparsest on the right."""
    ax = fig.subplots()
    ax.semilogx(densities, vuln, marker="o", color=PALETTE[2], label="vulnerability (× no superposition)")
    ax.semilogx(densities, per_dim, marker="s", color=PALETTE[1], label="features per dimension ‖W‖_F²/m")
    ax.invert_xaxis()
    ax.set_xlabel("feature density 1 − S (sparser to the right)")
    ax.set_ylabel("ratio")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def trajectories(
    fig: Figure, steps: np.ndarray, D: np.ndarray, loss_steps: np.ndarray, loss: np.ndarray, *, title: str
) -> None:
    """Feature dimensionalities over training (``D``: (checkpoints, n)) above the training loss."""
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(steps, D, lw=0.8)
    top.set_ylabel("feature dimensionality D_i")
    top.set_title(title, fontsize=9)
    bottom.semilogy(loss_steps, loss, lw=0.5, color="0.5", label="training loss")
    bottom.set_xlabel("training step")
    bottom.set_ylabel("training loss (log)")
    bottom.legend(fontsize=7)
