"""The fused training step for small models (``_fused.c``), compiled on first use and called
through ctypes.

For the paper's small models every product and elementwise op of the unfused step is memory
bound; the fused kernel reads each sample once and keeps the rest in registers (see the C file's
header for the arithmetic). It is loaded with ctypes, which releases the GIL during the call, so a
run's instances can be split across threads. Without a working compiler, or with
``TOYMODEL_FUSED=0``, :func:`available` is false, :func:`unavailable_reason` says why, and the
reference implementation takes its unfused torch step (~2-5x slower on the small models).
``tests/test_fused.py`` proves the kernel's loss and gradients equal to autograd's, built with gcc,
with clang and as the scalar path.

The kernel has a vector path (GCC or clang vector extensions, lowered to any CPU's instructions)
and a scalar one in plain C for compilers without them. The scalar path is 2-3x slower than the
vector one and no faster than the unfused torch step, so a compiler that builds only it gives no
fused training (:func:`available` is false; the library still serves
:func:`sfc64_raw`), unless ``TOYMODEL_FUSED=scalar`` asks for it (to exercise it end to end).

Built on first use, not at install time: the flags depend on the CPU that runs it (``-mavx2
-mfma`` where it has them), which a wheel built elsewhere cannot know; a compiled extension would
make the package platform-specific and its install need a compiler or a wheel per platform,
while the claims engine and the numpy implementation need neither (only the ``torch`` extra uses
the kernel). The cost is one compile of a second or two per build key, cached on disk.

The build: the machine's C compiler (``$CC``, else ``cc``, else ``gcc``), into
``$TOYMODEL_BUILD_DIR``, else ``~/.cache/toymodel/build``, else ``<tempdir>/toymodel-build-<uid>``;
the library's name is a hash of the source, the compiler's resolved path and ``--version`` line,
the flags and the machine, so a new compiler or compiler version builds afresh. A library is
loaded only from a folder checked to be this user's own: a real directory (no link), owned by the
current uid, mode 0700. A folder of ours that nobody else can write into is tightened to 0700;
any other is refused, and when every candidate is refused the kernel is built in a fresh private
folder (``mkdtemp``, removed at exit). :func:`build_info` names the kernel, compiler, version and
flags, for results' metadata, the result cache key and the baselines' provenance.

The same library generates numpy's ``SFC64`` stream (:func:`sfc64_raw`), bit for bit, without
numpy's per-value function call, for the reference's input words.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MODELS", "VALUES", "BuildError", "Kernel", "available", "build", "build_info", "kernel",
           "library", "sfc64_raw", "step", "submit", "unavailable_reason"]

SOURCE = Path(__file__).with_name("_fused.c")
MODELS = {"linear": 0, "relu_output": 1, "relu_hidden": 2, "abs": 3}
VALUES = {"uniform01": 0, "uniform_pm1": 1}
#: instances x rows x n below which one thread does the whole run (a thread hand-off costs ~50 us)
SPLIT_MIN_ELEMENTS = 1 << 17
#: the C macro that selects the kernel's scalar path
SCALAR_MACRO = "-DTOYMODEL_FUSED_SCALAR"

_reason: str | None = None
_scalar_asked = False


class BuildError(RuntimeError):
    """The kernel could not be built or loaded; the message says why, in one line."""


@dataclass(frozen=True)
class Kernel:
    """A loaded build of ``_fused.c`` and what made it."""

    lib: ctypes.CDLL
    #: the compiler's resolved path (and any arguments given with it in ``$CC``)
    compiler: str
    #: the first line of the compiler's ``--version``
    compiler_version: str
    flags: tuple[str, ...]
    #: the path the source compiled to: "vector (__builtin_shufflevector)", ... or "scalar"
    variant: str
    path: Path

    def info(self) -> dict[str, Any]:
        """The provenance of this build (see :func:`build_info`)."""
        return {"kernel": "fused", "variant": self.variant, "compiler": self.compiler,
                "compiler_version": self.compiler_version, "flags": " ".join(self.flags)}


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


def _compiler(cc: str | Sequence[str] | None) -> list[str]:
    """The compiler command, its program resolved to a real path: ``cc``, else ``$CC`` (may carry
    arguments, e.g. ``ccache gcc``), else ``cc`` or ``gcc`` on PATH."""
    if cc is None:
        env = os.environ.get("CC", "").strip()
        if env:
            words = shlex.split(env)
            where = "$CC"
        else:
            found = shutil.which("cc") or shutil.which("gcc")
            if found is None:
                raise BuildError("no C compiler: neither cc nor gcc is on PATH and $CC is not set")
            words, where = [found], "PATH"
    else:
        words, where = ([cc] if isinstance(cc, str) else list(cc)), "the caller"
    program = shutil.which(words[0])
    if program is None:
        raise BuildError(f"no C compiler: {words[0]!r} (from {where}) is not an executable program")
    return [os.path.realpath(program), *words[1:]]


@functools.cache
def _version(cc: tuple[str, ...]) -> str:
    """The first line of ``cc --version`` (the compiler's name and version)."""
    try:
        proc = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown ({err})"
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        return f"unknown (--version exited {proc.returncode})"
    return lines[0]


def _build_dirs() -> list[Path]:
    """Where the library may be built: $TOYMODEL_BUILD_DIR, else the user cache, else /tmp."""
    env = os.environ.get("TOYMODEL_BUILD_DIR")
    if env:
        return [Path(env)]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    dirs = [Path(tempfile.gettempdir()) / f"toymodel-build-{uid}"]
    with contextlib.suppress(RuntimeError):  # RuntimeError: no home directory
        dirs.insert(0, Path.home() / ".cache" / "toymodel" / "build")
    return dirs


class _Refused(Exception):
    """A build folder that is not verifiably ours."""


def _claim_folder(folder: Path) -> None:
    """Make sure ``folder`` is ours before anything in it is loaded: create it with mode 0700, or
    accept an existing real directory owned by this uid with no access for others. One of ours that
    nobody else can write into (0755) is tightened to 0700: its files can only be ours."""
    if not hasattr(os, "getuid"):
        raise _Refused(f"{folder}: cannot check a folder's owner on this platform")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise _Refused(f"{folder} is not a directory (a link or a file)")
    if st.st_uid != os.getuid():
        raise _Refused(f"{folder} is owned by uid {st.st_uid}, not by this user ({os.getuid()})")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise _Refused(f"{folder} is writable by others (mode {mode:o})")
    if mode != 0o700:
        os.chmod(folder, 0o700)
        if stat.S_IMODE(os.lstat(folder).st_mode) != 0o700:
            raise _Refused(f"{folder}: could not set mode 0700")


@functools.cache
def _private_folder() -> Path:
    """A fresh folder only this process knows (mode 0700, created by ``mkdtemp``), removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="toymodel-build-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _one_line(text: str, limit: int = 300) -> str:
    """The compiler's first error line (else its first line), for a one-line reason."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    line = (errors or lines or [""])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _compile(cc: list[str], flags: list[str], target: Path) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        try:
            proc = subprocess.run([*cc, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True,
                                  timeout=300, check=False)
        except (OSError, subprocess.SubprocessError) as err:
            raise BuildError(f"{cc[0]} could not run: {err}") from None
        if proc.returncode != 0:
            name = os.path.basename(cc[0])
            raise BuildError(f"{name} failed ({proc.returncode}): {_one_line(proc.stderr)}")
        os.replace(tmp, target)  # atomic: concurrent sessions see a whole library or none
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(target: Path) -> ctypes.CDLL:
    st = os.lstat(target)
    if not stat.S_ISREG(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
        raise _Refused(f"{target} is not a regular file of this user")
    lib = ctypes.CDLL(str(target))
    fn = lib.toymodel_fused_step
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float] + [ctypes.c_void_p] * 13
    fill = lib.toymodel_sfc64_fill
    fill.restype = None
    fill.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    lib.toymodel_fused_variant.restype = ctypes.c_char_p
    lib.toymodel_fused_variant.argtypes = []
    return lib


def build(cc: str | Sequence[str] | None = None, *, scalar: bool = False,
          build_dir: str | os.PathLike[str] | None = None) -> Kernel:
    """Build (or reuse) and load the kernel with compiler ``cc`` (default: ``$CC``, else ``cc``),
    its scalar path if ``scalar``, in ``build_dir`` (default: see the module's docs; a folder that
    is not verifiably ours is refused, then a private one is used). Raises :class:`BuildError`."""
    command = _compiler(cc)
    version = _version(tuple(command))
    flags = _flags() + ([SCALAR_MACRO] if scalar else [])
    key = hashlib.sha256(SOURCE.read_bytes())
    key.update("\0".join([*command, version, *flags, platform.machine()]).encode())
    name = f"toymodel_fused_{key.hexdigest()[:16]}.so"
    folders = [Path(build_dir)] if build_dir is not None else _build_dirs()
    errors: list[str] = []
    for folder in [*folders, None]:
        try:
            if folder is None:  # every candidate refused or unwritable: one only we know
                folder = _private_folder()
            else:
                _claim_folder(folder)
            target = folder / name
            if not target.is_file():
                _compile(command, flags, target)
            lib = _load(target)
        except (OSError, _Refused) as err:
            errors.append(f"{folder}: {err}")
            continue
        except BuildError as err:
            raise BuildError(f"could not build {SOURCE.name}: {err}") from None
        variant = lib.toymodel_fused_variant().decode()
        return Kernel(lib=lib, compiler=shlex.join(command), compiler_version=version, flags=tuple(flags),
                      variant=variant, path=target)
    raise BuildError(f"could not build {SOURCE.name}: " + "; ".join(errors))


@functools.cache
def kernel() -> Kernel | None:
    """This process's build of the kernel, made on first call, or None (then
    :func:`unavailable_reason` says why): ``$TOYMODEL_FUSED`` is ``0`` (off), ``scalar`` (the
    plain-C path, trained with) or unset (the vector path where the compiler has it)."""
    global _reason, _scalar_asked
    mode = os.environ.get("TOYMODEL_FUSED", "1")
    _scalar_asked = mode == "scalar"
    if mode == "0":
        _reason = "disabled by TOYMODEL_FUSED=0"
        return None
    try:
        return build(scalar=_scalar_asked)
    except BuildError as err:
        _reason = str(err)
        return None


def library() -> ctypes.CDLL | None:
    """The compiled library (vector or scalar build), or None."""
    k = kernel()
    return None if k is None else k.lib


def available() -> bool:
    """Whether small models train with the kernel (see :func:`unavailable_reason`)."""
    return unavailable_reason() is None


def unavailable_reason() -> str | None:
    """Why small models do not train with the kernel (one line), or None when they do."""
    k = kernel()
    if k is None:
        return _reason
    if k.variant == "scalar" and not _scalar_asked:
        return (f"{k.compiler_version} builds only the kernel's scalar path (no vector extensions), "
                "which is no faster than the unfused step")
    return None


def build_info() -> dict[str, Any]:
    """What trains the reference's small models in this process, for results' metadata, the
    result cache key and baselines' provenance (their last bits depend on it): ``kernel`` ("fused"
    or "unfused"), ``variant``, ``compiler`` (resolved path), ``compiler_version`` (its
    ``--version`` line) and ``flags``; the last four are None when unfused (results do not depend
    on a library used only for :func:`sfc64_raw`, which is bit-exact). The same build gives the
    same dict. Builds the kernel if this process has not yet."""
    k = kernel()
    if k is None or not available():
        return {"kernel": "unfused", **dict.fromkeys(("variant", "compiler", "compiler_version", "flags"))}
    return k.info()


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
    kernel: Kernel | None = None,
) -> None:
    """Loss into ``loss`` (I,) and gradients into ``gW``, ``gb`` (and ``gW2``) for one batch of
    ``rows`` samples per instance: ``words`` (I, rows, n) int32 with ``offset``/``slope`` (I, n),
    or ``x`` (I, rows, n) float32. ``batch`` is the mean's divisor. All arrays float32 (int32
    words), C-contiguous; the instances are split over ``threads`` threads when the batch is large.
    ``kernel``: another build (:func:`build`) than this process's own."""
    lib = library() if kernel is None else kernel.lib
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
