"""The fused training step for small models (``_fused.c``), compiled on first use and called
through ctypes.

For the paper's small models every product and elementwise op of the unfused step is memory
bound; the fused kernel reads each sample once and keeps the rest in registers (see the C file's
header for the arithmetic). It is compiled with the machine's C compiler (``$CC``, else ``cc``)
into ``$TOYMODEL_BUILD_DIR`` (default ``~/.cache/toymodel/build``), keyed by the source, the flags
and the CPU's vector support, and loaded with ctypes, which releases the GIL during the call, so
a run's instances can be split across threads. Without a compiler, or with ``TOYMODEL_FUSED=0``,
:func:`library` returns None and the reference implementation uses its unfused torch step.
``tests/test_fused.py`` proves the kernel's loss and gradients equal to autograd's.

The same library generates numpy's ``SFC64`` stream (:func:`sfc64_raw`), bit for bit, without
numpy's per-value function call, for the reference's input words.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MODELS", "VALUES", "available", "library", "sfc64_raw", "step", "submit", "unavailable_reason"]

SOURCE = Path(__file__).with_name("_fused.c")
MODELS = {"linear": 0, "relu_output": 1, "relu_hidden": 2, "abs": 3}
VALUES = {"uniform01": 0, "uniform_pm1": 1}
#: instances x rows x n below which one thread does the whole run (a thread hand-off costs ~50 us)
SPLIT_MIN_ELEMENTS = 1 << 17

_reason: str | None = None


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _flags() -> list[str]:
    flags = ["-O3", "-shared", "-fPIC", "-std=gnu11", "-fno-strict-aliasing"]
    if platform.machine() in ("x86_64", "AMD64"):
        cpu = _cpu_flags()
        if {"avx2", "fma"} <= cpu:
            flags += ["-mavx2", "-mfma"]
    return flags


def _build_dirs() -> list[Path]:
    """Where the library may be built: $TOYMODEL_BUILD_DIR, else the user cache, else /tmp."""
    env = os.environ.get("TOYMODEL_BUILD_DIR")
    if env:
        return [Path(env)]
    dirs = [Path(tempfile.gettempdir()) / f"toymodel-build-{os.getuid() if hasattr(os, 'getuid') else 0}"]
    with contextlib.suppress(RuntimeError):  # RuntimeError: no home directory
        dirs.insert(0, Path.home() / ".cache" / "toymodel" / "build")
    return dirs


def _compile(cc: str, flags: list[str], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True,
                              timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
        os.replace(tmp, target)  # atomic: concurrent sessions see a whole library or none
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None (then :func:`unavailable_reason` says why)."""
    global _reason
    if os.environ.get("TOYMODEL_FUSED", "1") == "0":
        _reason = "disabled by TOYMODEL_FUSED=0"
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        _reason = "no C compiler (cc or $CC) on PATH"
        return None
    flags = _flags()
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join([cc, *flags, platform.machine()]).encode())
    name = f"toymodel_fused_{key.hexdigest()[:16]}.so"
    lib, errors = None, []
    for folder in _build_dirs():
        target = folder / name
        try:
            if not target.is_file():
                _compile(cc, flags, target)
            lib = ctypes.CDLL(str(target))
            break
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            errors.append(f"{folder}: {err}")
    if lib is None:
        _reason = f"could not build {SOURCE.name}: " + "; ".join(errors)
        return None
    fn = lib.toymodel_fused_step
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float] + [ctypes.c_void_p] * 13
    fill = lib.toymodel_sfc64_fill
    fill.restype = None
    fill.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return lib


def available() -> bool:
    return library() is not None


def unavailable_reason() -> str | None:
    library()
    return _reason


def sfc64_raw(bits: np.random.BitGenerator, count: int, out: np.ndarray | None = None) -> np.ndarray | None:
    """``bits.random_raw(count)`` bit for bit, and ``bits`` advanced the same, for a numpy
    ``SFC64`` generated by the compiled library (~3x faster: numpy calls a function per value),
    into ``out`` (uint64, at least ``count`` long; reused memory saves fresh pages) or a new array;
    None without the library or for another bit generator."""
    lib = library()
    if lib is None or type(bits) is not np.random.SFC64:
        return None
    if out is None:
        out = np.empty(count, dtype=np.uint64)
    elif out.dtype != np.uint64 or out.ndim != 1 or out.size < count or not out.flags.c_contiguous:
        raise ValueError(f"sfc64_raw: out must be a contiguous uint64 vector of >= {count} values, "
                         f"got {out.dtype} {out.shape}")
    out = out[:count]
    with bits.lock:
        state = bits.state
        s = np.array(state["state"]["state"], dtype=np.uint64)
        lib.toymodel_sfc64_fill(s.ctypes.data, out.ctypes.data, count)
        state["state"]["state"] = s
        bits.state = state
    return out


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def submit(fn: Callable[..., None], *args: Any, **kwargs: Any) -> Future[None]:
    """Run ``fn`` (a call of :func:`step`) in the background, so that the caller can draw the next
    batch meanwhile; the kernel needs no GIL."""
    return _pool(1, "toymodel-fused-async").submit(fn, *args, **kwargs)


@functools.cache
def _pool(workers: int, name: str = "toymodel-fused") -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)


def step(
    model: str,
    values: str,
    batch: int,
    W: np.ndarray,
    W2: np.ndarray | None,
    b: np.ndarray,
    importance: np.ndarray,
    hidden_l1: np.ndarray | None,
    gW: np.ndarray,
    gW2: np.ndarray | None,
    gb: np.ndarray,
    loss: np.ndarray,
    *,
    words: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    slope: np.ndarray | None = None,
    x: np.ndarray | None = None,
    threads: int = 1,
) -> None:
    """Loss into ``loss`` (I,) and gradients into ``gW``, ``gb`` (and ``gW2``) for one batch of
    ``rows`` samples per instance: ``words`` (I, rows, n) int32 with ``offset``/``slope`` (I, n),
    or ``x`` (I, rows, n) float32. ``batch`` is the mean's divisor. All arrays float32 (int32
    words), C-contiguous; the instances are split over ``threads`` threads when the batch is large."""
    lib = library()
    if lib is None:
        raise RuntimeError(f"the fused kernel is unavailable: {_reason}")
    src = words if words is not None else x
    if src is None:
        raise ValueError("step needs words (with offset and slope) or x")
    inst, rows, n = src.shape
    m = W.shape[1]
    for name, arr in {"W": W, "W2": W2, "b": b, "importance": importance, "hidden_l1": hidden_l1, "gW": gW,
                      "gW2": gW2, "gb": gb, "loss": loss, "offset": offset, "slope": slope, "x": x,
                      "words": words}.items():
        if arr is not None and not arr.flags.c_contiguous:
            raise ValueError(f"fused.step: {name} must be C-contiguous")

    def run(lo: int, hi: int) -> int:
        def at(a: np.ndarray | None) -> int | None:
            return None if a is None else _ptr(a[lo:hi])

        return int(lib.toymodel_fused_step(
            MODELS[model], VALUES[values], hi - lo, rows, n, m, float(batch),
            at(words), at(x), at(offset), at(slope), at(W), at(W2), at(b), at(importance), at(hidden_l1),
            at(gW), at(gW2), at(gb), at(loss)))

    parts = max(1, min(threads, inst, (inst * rows * n) // SPLIT_MIN_ELEMENTS))
    if parts == 1:
        codes = [run(0, inst)]
    else:
        edges = np.linspace(0, inst, parts + 1).round().astype(int)
        codes = list(_pool(parts).map(run, edges[:-1], edges[1:]))
    if any(codes):
        raise MemoryError("fused.step: the kernel could not allocate its scratch memory")
