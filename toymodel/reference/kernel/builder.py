"""Building ``_fused.c``: the compiler, its flags, a folder of our own, compiling and loading.

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
folder (``mkdtemp``, removed at exit). :meth:`Kernel.info` names the kernel, compiler, version and
flags, for results' metadata, the result cache key and the baselines' provenance.

The kernel has a vector path (GCC or clang vector extensions, lowered to any CPU's instructions)
and a scalar one in plain C for compilers without them, or built with :data:`SCALAR_MACRO`.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SCALAR_MACRO", "SOURCE", "BuildError", "Kernel", "build"]

SOURCE = Path(__file__).with_name("_fused.c")
#: the C macro that selects the kernel's scalar path
SCALAR_MACRO = "-DTOYMODEL_FUSED_SCALAR"


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
        """The provenance of this build (see :func:`toymodel.reference.kernel.fused.build_info`)."""
        return {
            "kernel": "fused",
            "variant": self.variant,
            "compiler": self.compiler,
            "compiler_version": self.compiler_version,
            "flags": " ".join(self.flags),
        }


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
            proc = subprocess.run(
                [*cc, *flags, str(SOURCE), "-o", tmp],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
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


def build(
    cc: str | Sequence[str] | None = None,
    *,
    scalar: bool = False,
    build_dir: str | os.PathLike[str] | None = None,
) -> Kernel:
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
        return Kernel(
            lib=lib,
            compiler=shlex.join(command),
            compiler_version=version,
            flags=tuple(flags),
            variant=variant,
            path=target,
        )
    raise BuildError(f"could not build {SOURCE.name}: " + "; ".join(errors))
