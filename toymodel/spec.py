"""Experiment specs: what to train, as frozen, validated, JSON-serialisable data.

A :class:`Spec` describes a batch of *settings* (one importance row and one density row each)
times ``restarts`` independent runs of each. Instance ``k`` of the batch is setting
``k // restarts``, restart ``k % restarts`` (setting-major). Every implementation receives a spec
and returns a :class:`toymodel.result.Result` with one row per instance.

Conventions (see CLAIMS.md): ``density`` is the probability 1 - S that a feature is non-zero.
For a correlated group, all members share one zero mask drawn with the group's density; for an
anticorrelated group, the group is active with its density and then exactly one uniformly
chosen member carries the value (marginal density ``density / k``). Members of a group must have
equal densities in every setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

__all__ = [
    "MODEL_KINDS",
    "SCHEDULES",
    "VALUE_KINDS",
    "FeatureGroup",
    "ModelKind",
    "Schedule",
    "Spec",
    "SpecError",
    "TrainConfig",
    "ValueKind",
    "density_levels",
    "geometric_importance",
]

ModelKind = Literal["linear", "relu_output", "relu_hidden", "abs"]
Schedule = Literal["constant", "cosine", "linear"]
ValueKind = Literal["uniform01", "uniform_pm1"]
GroupKind = Literal["correlated", "anticorrelated"]

MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
VALUE_KINDS: tuple[str, ...] = get_args(ValueKind)
GROUP_KINDS: tuple[str, ...] = get_args(GroupKind)
SPEC_FORMAT = 1


class SpecError(ValueError):
    """An invalid spec field; the message names the field and the offending value."""


def _fail(field_name: str, value: object, why: str) -> SpecError:
    text = repr(value)
    if len(text) > 120:
        text = text[:117] + "..."
    return SpecError(f"invalid spec field {field_name!r} = {text}: {why}")


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise _fail(name, value, "must be a positive integer")
    return int(value)


def _finite(name: str, value: object, *, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _fail(name, value, "must be a number")
    x = float(value)
    if not math.isfinite(x):
        raise _fail(name, value, "must be finite")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise _fail(name, value, f"must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and x > hi:
        raise _fail(name, value, f"must be <= {hi}")
    return x


def _matrix(name: str, value: object, n: int) -> tuple[tuple[float, ...], ...]:
    """Coerce to a settings x n tuple-of-tuples of floats; 1-D input is one setting."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _fail(name, value, f"is not numeric ({exc})") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != n:
        raise _fail(name, value, f"must have shape (settings, n={n}); got {arr.shape}")
    return tuple(tuple(float(v) for v in row) for row in arr)


@dataclass(frozen=True)
class FeatureGroup:
    """A set of features sampled jointly: ``correlated`` (shared zero mask) or
    ``anticorrelated`` (at most one member active)."""

    kind: GroupKind
    features: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in GROUP_KINDS:
            raise _fail("groups.kind", self.kind, f"must be one of {GROUP_KINDS}")
        feats = tuple(int(f) for f in self.features)
        if len(feats) < 2:
            raise _fail("groups.features", self.features, "a group needs at least 2 features")
        if len(set(feats)) != len(feats):
            raise _fail("groups.features", self.features, "repeats a feature")
        object.__setattr__(self, "features", feats)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults are the official notebook's: AdamW(lr=1e-3,
    weight_decay=0.01), constant schedule, batch 1024, 10 000 steps.

    ``init_std`` None means the notebook's xavier-normal on a (settings, n, m) tensor, i.e.
    std = sqrt(2 / (n*m + settings*m)); it is resolved by :meth:`Spec.resolved_init_std`.
    ``log_every`` is the loss-curve interval in steps. ``hidden_l1`` adds
    ``l1 * mean_batch ||h||_1`` per setting (0 = the plain loss).
    """

    steps: int = 10_000
    batch_size: int = 1024
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    schedule: Schedule = "constant"
    init_std: float | None = None
    log_every: int = 100

    def __post_init__(self) -> None:
        _positive_int("train.steps", self.steps)
        _positive_int("train.batch_size", self.batch_size)
        _positive_int("train.log_every", self.log_every)
        _finite("train.lr", self.lr, lo=0.0, lo_open=True)
        _finite("train.eps", self.eps, lo=0.0, lo_open=True)
        _finite("train.weight_decay", self.weight_decay, lo=0.0)
        betas = tuple(self.betas)
        if len(betas) != 2:
            raise _fail("train.betas", self.betas, "must be a pair (beta1, beta2)")
        for i, beta in enumerate(betas):
            _finite(f"train.betas[{i}]", beta, lo=0.0)
            if not float(beta) < 1.0:
                raise _fail(f"train.betas[{i}]", beta, "must be < 1")
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        if self.schedule not in SCHEDULES:
            raise _fail("train.schedule", self.schedule, f"must be one of {SCHEDULES}")
        if self.init_std is not None:
            _finite("train.init_std", self.init_std, lo=0.0, lo_open=True)


@dataclass(frozen=True)
class Spec:
    """One batched experiment: ``settings x restarts`` independent toy models.

    Fields:
        model: ``linear`` (x' = WᵀWx + b), ``relu_output`` (ReLU(WᵀWx + b)),
            ``relu_hidden`` (h = ReLU(Wx), x' = ReLU(Wᵀh + b)) or ``abs``
            (h = ReLU(W x), y' = ReLU(W2 h + b), target |x|, untied).
        n, m: number of features and of hidden dimensions.
        importance, density: (settings, n) arrays; 1-D input means one setting, and a single
            row of either is repeated to match the other's settings.
        groups: correlated / anticorrelated feature sets (disjoint).
        values: ``uniform01`` (active values U[0,1]) or ``uniform_pm1`` (U[-1,1]); None picks
            ``uniform_pm1`` for ``abs`` and ``uniform01`` otherwise.
        hidden_l1: per-setting L1 coefficient on the hidden activations (None = 0).
        restarts: independent runs per setting (different init and data).
        seed: base seed; every random stream derives from it.
        eval_samples: size of the fixed held-out sample, shared by all restarts of a setting.
        device: where the reference implementation trains (``cpu``, ``cuda``).
    """

    model: ModelKind
    n: int
    m: int
    # array-likes on input; normalised to tuple-of-tuples of float by __post_init__
    importance: Any
    density: Any
    groups: tuple[FeatureGroup, ...] = ()
    values: ValueKind | None = None
    hidden_l1: tuple[float, ...] | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    restarts: int = 1
    seed: int = 0
    eval_samples: int = 32_768
    device: str = "cpu"
    name: str = ""

    def __post_init__(self) -> None:
        if self.model not in MODEL_KINDS:
            raise _fail("model", self.model, f"must be one of {MODEL_KINDS}")
        n = _positive_int("n", self.n)
        _positive_int("m", self.m)
        _positive_int("restarts", self.restarts)
        _positive_int("eval_samples", self.eval_samples)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise _fail("seed", self.seed, "must be a non-negative integer")
        object.__setattr__(self, "seed", int(self.seed))
        imp = _matrix("importance", self.importance, n)
        den = _matrix("density", self.density, n)
        if len(imp) == 1 and len(den) > 1:
            imp = imp * len(den)  # one importance row is shared by every setting
        elif len(den) == 1 and len(imp) > 1:
            den = den * len(imp)
        if len(imp) != len(den):
            raise _fail("importance", f"{len(imp)} settings",
                        f"importance and density must have the same number of settings "
                        f"(density has {len(den)})")
        imp_arr, den_arr = np.array(imp), np.array(den)
        bad = np.argwhere(~np.isfinite(imp_arr) | (imp_arr < 0))
        if bad.size:
            s, i = bad[0]
            raise _fail(f"importance[{s}][{i}]", imp_arr[s, i], "must be finite and >= 0")
        bad = np.argwhere(~np.isfinite(den_arr) | (den_arr < 0) | (den_arr > 1))
        if bad.size:
            s, i = bad[0]
            raise _fail(f"density[{s}][{i}]", den_arr[s, i], "must lie in [0, 1]")
        object.__setattr__(self, "importance", imp)
        object.__setattr__(self, "density", den)

        groups = tuple(
            g if isinstance(g, FeatureGroup) else FeatureGroup(**dict(g)) for g in self.groups
        )
        seen: set[int] = set()
        for gi, g in enumerate(groups):
            for f in g.features:
                if not 0 <= f < n:
                    raise _fail(f"groups[{gi}].features", g.features, f"feature {f} outside [0, {n})")
                if f in seen:
                    raise _fail(f"groups[{gi}].features", g.features,
                                f"feature {f} is in more than one group")
                seen.add(f)
            cols = den_arr[:, list(g.features)]
            if not np.all(cols == cols[:, :1]):
                raise _fail(f"groups[{gi}]", g.features,
                            "members of a group must share one density in every setting")
        object.__setattr__(self, "groups", groups)

        values = self.values
        if values is None:
            values = "uniform_pm1" if self.model == "abs" else "uniform01"
        if values not in VALUE_KINDS:
            raise _fail("values", values, f"must be one of {VALUE_KINDS}")
        object.__setattr__(self, "values", values)

        if self.hidden_l1 is not None:
            l1 = np.asarray(self.hidden_l1, dtype=np.float64).reshape(-1)
            if l1.shape[0] != len(imp):
                raise _fail("hidden_l1", self.hidden_l1, f"needs one value per setting ({len(imp)})")
            if not np.all(np.isfinite(l1) & (l1 >= 0)):
                raise _fail("hidden_l1", self.hidden_l1, "must be finite and >= 0")
            object.__setattr__(self, "hidden_l1", tuple(float(v) for v in l1))

        train = self.train
        if isinstance(train, Mapping):
            train = TrainConfig(**dict(train))
            object.__setattr__(self, "train", train)
        if not isinstance(train, TrainConfig):
            raise _fail("train", train, "must be a TrainConfig")
        if not isinstance(self.device, str) or not self.device:
            raise _fail("device", self.device, "must be a device name such as 'cpu' or 'cuda'")
        if not isinstance(self.name, str):
            raise _fail("name", self.name, "must be a string")

    # ----- derived quantities -------------------------------------------------------------
    @property
    def settings(self) -> int:
        """Number of (importance, density) rows."""
        return len(self.importance)

    @property
    def instances(self) -> int:
        """Number of independently trained models: settings x restarts."""
        return self.settings * self.restarts

    @property
    def model_weights(self) -> tuple[str, ...]:
        """Names and order of the weight arrays a result carries for this model kind."""
        return ("W", "b", "W2") if self.model == "abs" else ("W", "b")

    def importance_array(self, per_instance: bool = False) -> np.ndarray:
        """(settings, n), or (instances, n) with ``per_instance``."""
        arr = np.array(self.importance, dtype=np.float64)
        return np.repeat(arr, self.restarts, axis=0) if per_instance else arr

    def density_array(self, per_instance: bool = False) -> np.ndarray:
        """(settings, n), or (instances, n) with ``per_instance``."""
        arr = np.array(self.density, dtype=np.float64)
        return np.repeat(arr, self.restarts, axis=0) if per_instance else arr

    def hidden_l1_array(self, per_instance: bool = False) -> np.ndarray:
        """(settings,), or (instances,) with ``per_instance``; zeros when unset."""
        arr = np.zeros(self.settings) if self.hidden_l1 is None else np.array(self.hidden_l1)
        return np.repeat(arr, self.restarts) if per_instance else arr

    def resolved_init_std(self) -> float:
        """The init std actually used (see :class:`TrainConfig`)."""
        if self.train.init_std is not None:
            return float(self.train.init_std)
        return math.sqrt(2.0 / (self.n * self.m + self.settings * self.m))

    def replace(self, **changes: Any) -> Spec:
        """A copy with fields changed (``train`` may be given as a dict of its changes)."""
        train = changes.pop("train", None)
        if isinstance(train, Mapping):
            changes["train"] = dataclasses.replace(self.train, **dict(train))
        elif train is not None:
            changes["train"] = train
        return dataclasses.replace(self, **changes)

    # ----- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data."""
        d = dataclasses.asdict(self)
        d["groups"] = [{"kind": g.kind, "features": list(g.features)} for g in self.groups]
        d["importance"] = [list(r) for r in self.importance]
        d["density"] = [list(r) for r in self.density]
        d["hidden_l1"] = None if self.hidden_l1 is None else list(self.hidden_l1)
        d["train"]["betas"] = list(self.train.betas)
        d["format"] = SPEC_FORMAT
        return d

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the input of :meth:`hash`."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise _fail("spec", data, "must be a JSON object")
        d = dict(data)
        fmt = d.pop("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise _fail("format", fmt, f"this version reads spec format {SPEC_FORMAT}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise _fail(unknown[0], d[unknown[0]], f"unknown spec field (known: {sorted(known)})")
        train = d.get("train", {})
        if isinstance(train, Mapping):
            tknown = {f.name for f in dataclasses.fields(TrainConfig)}
            tunknown = sorted(set(train) - tknown)
            if tunknown:
                raise _fail(f"train.{tunknown[0]}", train[tunknown[0]], "unknown train field")
            t = dict(train)
            if "betas" in t:
                t["betas"] = tuple(t["betas"])
            d["train"] = TrainConfig(**t)
        d["groups"] = tuple(
            FeatureGroup(kind=g["kind"], features=tuple(g["features"])) for g in d.get("groups", ())
        )
        for key in ("model", "n", "m", "importance", "density"):
            if key not in d:
                raise _fail(key, None, "is required")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> Spec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec JSON does not parse: {exc}") from None
        return cls.from_dict(data)

    def hash(self) -> str:
        """Stable 16-hex-digit digest of the canonical JSON (the cache and baseline key)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def geometric_importance(n: int, ratio: float) -> tuple[float, ...]:
    """The paper's importance schedule I_i = ratio**i (ratio 0.7, 0.9, 0.75, 0.8 appear)."""
    _positive_int("n", n)
    _finite("ratio", ratio, lo=0.0, lo_open=True)
    return tuple(float(ratio) ** i for i in range(n))


def density_levels(lo: float, hi: float, count: int) -> tuple[float, ...]:
    """``count`` log-spaced densities from ``hi`` down to ``lo`` (dense first)."""
    _finite("lo", lo, lo=0.0, lo_open=True, hi=1.0)
    _finite("hi", hi, lo=lo, hi=1.0)
    _positive_int("count", count)
    if count == 1:
        return (float(hi),)
    return tuple(float(v) for v in np.geomspace(hi, lo, count))


def uniform_rows(rows: Sequence[float], n: int) -> tuple[tuple[float, ...], ...]:
    """One setting per value, the value repeated across all n features."""
    return tuple(tuple(float(v) for _ in range(n)) for v in rows)
