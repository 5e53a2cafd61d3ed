"""torch is an optional extra (``toymodel[torch]``): without it the claims engine, the numpy
implementation, metrics, theory, experiments and the claims import, and asking for the torch
implementation says, in one line, what to install. Checked in a fresh interpreter in which any
import of torch fails as it would where torch is not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: the torch implementations' own modules: the only ones that may import torch (the reference's
#: kernel, toymodel.reference.kernel, is torch-free: the engine records its build)
TORCH_MODULES = {
    "toymodel.plain",
    *(
        f"toymodel.reference.{name}"
        for name in ("dense", "gradients", "optimiser", "pipeline", "sampling", "sparse", "training")
    ),
}

WITHOUT_TORCH = textwrap.dedent("""
    import importlib, pkgutil, sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "torch":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoTorch())
    import toymodel, toymodel.claims
    skip = set(sys.argv[1:])
    for pkg in (toymodel, toymodel.claims):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name not in skip:
                importlib.import_module(info.name)
    from toymodel.suite.implementations import ImplementationError, resolve
    resolve("numpy")
    for name in ("torch", "torch-plain"):
        try:
            resolve(name)
        except ImplementationError as exc:
            print(exc)
    print("torch imported:", "torch" in sys.modules)
""")


def test_everything_but_the_torch_implementation_imports_without_torch(tmp_path: Path) -> None:
    # run outside the checkout: ``python -c`` puts the current folder first on sys.path, and the
    # checkout's toymodel/ folder is not the installed package (the claims ship inside the latter)
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *sorted(TORCH_MODULES)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "implementation 'torch' needs torch, which is not installed: pip install 'toymodel[torch]'",
        "implementation 'torch-plain' needs torch, which is not installed: pip install 'toymodel[torch]'",
        "torch imported: False",
    ], proc.stdout
