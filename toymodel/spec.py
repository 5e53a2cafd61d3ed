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

Every field is checked on construction, from Python or from JSON: a missing, unknown (with a
did-you-mean suggestion), mistyped or out-of-range field raises :class:`SpecError` naming the field
(``train.steps``, ``groups[1].features``) and the value, never a bare ``TypeError`` or ``KeyError``.
Numbers must be numbers (no bools or strings), counts and feature indices integers (a float index
is rejected, not truncated). Valid input is normalised exactly as before (numpy scalars become
Python ones), so the canonical JSON, and with it every spec hash, is unchanged.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, TypeGuard, get_args

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
#: integer fields (sizes, counts, seeds) stay below this, so any implementation can hold them in int64
INT_LIMIT = 2**63


class SpecError(ValueError):
    """An invalid spec field; the message names the field and the offending value."""


def _fail(field_name: str, value: object, why: str) -> SpecError:
    text = repr(value)
    if len(text) > 120:
        text = text[:117] + "..."
    return SpecError(f"invalid spec field {field_name!r} = {text}: {why}")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, (float, np.floating))


def _is_list(value: object) -> TypeGuard[Sequence[Any] | np.ndarray]:
    """A sequence of values (list, tuple, range, numpy array), not a string or mapping."""
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes, Mapping))


def _positive_int(name: str, value: object) -> int:
    if not _is_int(value) or not 0 < value < INT_LIMIT:  # type: ignore[operator]
        raise _fail(name, value, "must be a positive integer (below 2**63)")
    return int(value)  # type: ignore[call-overload]


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar it equals (JSON takes only those); anything else as is."""
    return value.item() if isinstance(value, (np.integer, np.floating)) else value


def _finite(
    name: str, value: object, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> float:
    if not _is_number(value):
        raise _fail(name, value, "must be a number")
    try:
        x = float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise _fail(name, value, "must be finite") from None
    if not math.isfinite(x):
        raise _fail(name, value, "must be finite")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise _fail(name, value, f"must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and x > hi:
        raise _fail(name, value, f"must be <= {hi}")
    return x


def _numbers(name: str, value: object) -> np.ndarray:
    """``value`` as a float64 array; SpecError unless every element is a number (numpy would read
    ``"1.5"`` or ``True`` as a number, a spec must not)."""
    if isinstance(value, (str, bytes, Mapping)):
        raise _fail(name, value, "must be a number or a list of numbers")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _fail(name, value, f"is not numeric ({exc})") from None
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        return arr
    for x in np.asarray(value, dtype=object).reshape(-1):
        if not _is_number(x):
            raise _fail(name, value, f"must hold numbers only; {x!r} is a {type(x).__name__}")
    return arr


def _matrix(name: str, value: object, n: int) -> tuple[tuple[float, ...], ...]:
    """Coerce to a settings x n tuple-of-tuples of floats; 1-D input is one setting."""
    arr = _numbers(name, value)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != n:
        raise _fail(name, value, f"must have shape (settings, n={n}); got {arr.shape}")
    return tuple(tuple(float(v) for v in row) for row in arr)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _fail(name, value, f"must be one of {allowed}")
    return value


def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _missing(name: str) -> SpecError:
    return SpecError(f"missing spec field {name!r}: it is required")


def _unknown_field(prefix: str, what: str, key: str, value: object, known: Sequence[str]) -> SpecError:
    hint = _suggest(key, known)
    if prefix == "" and not hint:  # a training setting given at the top level
        close = difflib.get_close_matches(key, _TRAIN_FIELDS, n=1, cutoff=0.6)
        if close:
            hint = f"a training setting belongs in train: train={{{close[0]!r}: ...}}; "
    return _fail(f"{prefix}{key}", value, f"unknown {what} field ({hint}known: {sorted(known)})")


def _keywords(prefix: str, what: str, data: Mapping[Any, Any], known: Sequence[str]) -> dict[str, Any]:
    """``data`` as keyword arguments: every key a known field name (SpecError otherwise)."""
    for key, value in data.items():
        if not isinstance(key, str):
            raise _fail(f"{prefix}{key!r}", value, f"{what} field names must be strings")
        if key not in known:
            raise _unknown_field(prefix, what, key, value, known)
    return dict(data)


def _strict_init(cls: type, prefix: str, what: str) -> None:
    """Make ``cls(...)`` report an unknown, missing or doubly given field as SpecError naming it
    (a dataclass's own ``__init__`` raises a TypeError that names no spec field); the checks of
    the values themselves are ``__post_init__``'s."""
    init: Callable[..., None] = cls.__init__  # type: ignore[misc]
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    required = [f.name for f in fields if f.default is MISSING and f.default_factory is MISSING]

    @functools.wraps(init)
    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise SpecError(
                f"{cls.__name__} takes at most {len(names)} fields by position "
                f"({', '.join(names)}), got {len(args)}"
            )
        given = dict(zip(names, args, strict=False))  # at most len(names) args
        for key, value in kwargs.items():
            if key not in names:
                raise _unknown_field(prefix, what, key, value, names)
            if key in given:
                raise _fail(f"{prefix}{key}", value, "is given twice (by position and by name)")
            given[key] = value
        for key in required:
            if key not in given:
                raise _missing(f"{prefix}{key}")
        init(self, **given)

    setattr(cls, "__init__", __init__)  # noqa: B010 - mypy rejects assigning a method


def _feature_indices(name: str, value: object) -> tuple[int, ...]:
    """A group's feature indices: a list of integers (a float index is rejected, not truncated)."""
    if not _is_list(value):
        raise _fail(name, value, "must be a list of feature indices")
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise _fail(name, value, "must be a list of feature indices")
    for f in value:
        if not _is_int(f):
            raise _fail(name, value, f"feature indices must be integers; {f!r} is a {type(f).__name__}")
    return tuple(int(f) for f in value)


@dataclass(frozen=True)
class FeatureGroup:
    """A set of features sampled jointly: ``correlated`` (shared zero mask) or
    ``anticorrelated`` (at most one member active)."""

    kind: GroupKind
    features: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_group("groups", self.kind, self.features)
        object.__setattr__(self, "features", _feature_indices("groups.features", self.features))


def _check_group(where: str, kind: object, features: object) -> None:
    _choice(f"{where}.kind", kind, GROUP_KINDS)
    feats = _feature_indices(f"{where}.features", features)
    if len(feats) < 2:
        raise _fail(f"{where}.features", features, "a group needs at least 2 features")
    if len(set(feats)) != len(feats):
        raise _fail(f"{where}.features", features, "repeats a feature")


def _group(where: str, value: object) -> FeatureGroup:
    """One entry of ``Spec.groups``: a FeatureGroup, or its fields as a mapping (JSON)."""
    if isinstance(value, FeatureGroup):
        return value
    if not isinstance(value, Mapping):
        raise _fail(
            where, value, "must be a group: {'kind': 'correlated' or 'anticorrelated', 'features': [indices]}"
        )
    data = _keywords(f"{where}.", "group", value, ("kind", "features"))
    for key in ("kind", "features"):
        if key not in data:
            raise _missing(f"{where}.{key}")
    _check_group(where, data["kind"], data["features"])
    return FeatureGroup(data["kind"], data["features"])


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
        for name in ("steps", "batch_size", "log_every"):
            object.__setattr__(self, name, _positive_int(f"train.{name}", getattr(self, name)))
        _finite("train.lr", self.lr, lo=0.0, lo_open=True)
        _finite("train.eps", self.eps, lo=0.0, lo_open=True)
        _finite("train.weight_decay", self.weight_decay, lo=0.0)
        for name in ("lr", "eps", "weight_decay", "init_std"):
            object.__setattr__(self, name, _plain(getattr(self, name)))
        if not _is_list(self.betas):
            raise _fail("train.betas", self.betas, "must be a pair (beta1, beta2)")
        betas = tuple(self.betas)
        if len(betas) != 2:
            raise _fail("train.betas", self.betas, "must be a pair (beta1, beta2)")
        for i, beta in enumerate(betas):
            _finite(f"train.betas[{i}]", beta, lo=0.0)
            if not float(beta) < 1.0:
                raise _fail(f"train.betas[{i}]", beta, "must be < 1")
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        _choice("train.schedule", self.schedule, SCHEDULES)
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
        _choice("model", self.model, MODEL_KINDS)
        for name in ("n", "m", "restarts", "eval_samples"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        n = self.n
        if not _is_int(self.seed) or not 0 <= self.seed < INT_LIMIT:
            raise _fail("seed", self.seed, "must be a non-negative integer (below 2**63)")
        object.__setattr__(self, "seed", int(self.seed))
        imp = _matrix("importance", self.importance, n)
        den = _matrix("density", self.density, n)
        if len(imp) == 1 and len(den) > 1:
            imp = imp * len(den)  # one importance row is shared by every setting
        elif len(den) == 1 and len(imp) > 1:
            den = den * len(imp)
        if len(imp) != len(den):
            raise _fail(
                "importance",
                f"{len(imp)} settings",
                f"importance and density must have the same number of settings (density has {len(den)})",
            )
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

        if isinstance(self.groups, (str, bytes, Mapping, FeatureGroup)):
            raise _fail("groups", self.groups, "must be a list of groups")
        try:
            entries = list(self.groups)
        except TypeError:
            raise _fail("groups", self.groups, "must be a list of groups") from None
        groups = tuple(_group(f"groups[{gi}]", g) for gi, g in enumerate(entries))
        seen: set[int] = set()
        for gi, g in enumerate(groups):
            for f in g.features:
                if not 0 <= f < n:
                    raise _fail(f"groups[{gi}].features", g.features, f"feature {f} outside [0, {n})")
                if f in seen:
                    raise _fail(
                        f"groups[{gi}].features", g.features, f"feature {f} is in more than one group"
                    )
                seen.add(f)
            cols = den_arr[:, list(g.features)]
            if not np.all(cols == cols[:, :1]):
                raise _fail(
                    f"groups[{gi}]", g.features, "members of a group must share one density in every setting"
                )
        object.__setattr__(self, "groups", groups)

        values = self.values
        if values is None:
            values = "uniform_pm1" if self.model == "abs" else "uniform01"
        object.__setattr__(self, "values", _choice("values", values, VALUE_KINDS))

        if self.hidden_l1 is not None:
            l1 = _numbers("hidden_l1", self.hidden_l1).reshape(-1)
            if l1.shape[0] != len(imp):
                raise _fail("hidden_l1", self.hidden_l1, f"needs one value per setting ({len(imp)})")
            if not np.all(np.isfinite(l1) & (l1 >= 0)):
                raise _fail("hidden_l1", self.hidden_l1, "must be finite and >= 0")
            object.__setattr__(self, "hidden_l1", tuple(float(v) for v in l1))

        train = self.train
        if isinstance(train, Mapping):
            train = TrainConfig(**_keywords("train.", "train", train, _TRAIN_FIELDS))
            object.__setattr__(self, "train", train)
        if not isinstance(train, TrainConfig):
            raise _fail("train", train, "must be a TrainConfig or a mapping of its fields")
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
            changes["train"] = dataclasses.replace(
                self.train, **_keywords("train.", "train", train, _TRAIN_FIELDS)
            )
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
        """Inverse of :meth:`to_dict`; an unknown, missing or malformed field is a SpecError."""
        if not isinstance(data, Mapping):
            raise _fail("spec", data, "must be a JSON object")
        d = _keywords("", "spec", data, (*_SPEC_FIELDS, "format"))
        fmt = d.pop("format", SPEC_FORMAT)
        if not _is_int(fmt) or fmt != SPEC_FORMAT:
            raise _fail("format", fmt, f"this version reads spec format {SPEC_FORMAT}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str | bytes) -> Spec:
        """Inverse of :meth:`to_json`; input that does not parse, or a bad field, is a SpecError."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise SpecError(f"spec JSON must be text, not {type(text).__name__}")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, deep nesting
            raise SpecError(f"spec JSON does not parse: {exc}") from None
        return cls.from_dict(data)

    def hash(self) -> str:
        """Stable 16-hex-digit digest of the canonical JSON (the cache and baseline key)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


_TRAIN_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
_SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Spec))
_strict_init(FeatureGroup, "groups.", "group")
_strict_init(TrainConfig, "train.", "train")
_strict_init(Spec, "", "spec")


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
