"""The README's adapter example runs and meets the result contract."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from toymodel.result import validate
from toymodel.spec import FeatureGroup, Spec, TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def _adapter_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    mine = [b for b in blocks if b.startswith("# my_adapter.py")]
    assert mine, "README lost its adapter example"
    return mine[0]


def test_readme_adapter_meets_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    def train_one_model(*, model: str, n: int, m: int, steps: int, seed: int, **_: object) -> tuple:
        rng = np.random.default_rng(seed)
        return rng.normal(size=(m, n)), np.zeros(n), rng.random(steps)

    fake = types.ModuleType("mylib")
    fake.train_one_model = train_one_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mylib", fake)
    namespace: dict[str, object] = {}
    exec(compile(_adapter_source(), "my_adapter.py", "exec"), namespace)
    spec = Spec(
        model="relu_output",
        n=4,
        m=2,
        importance=[1] * 4,
        density=[[0.1] * 4, [0.5] * 4],
        groups=(FeatureGroup("correlated", (0, 1)),),
        restarts=2,
        eval_samples=256,
        train=TrainConfig(steps=250, log_every=100),
    )
    result = validate(namespace["train"](spec), spec, "my_adapter:train")  # type: ignore[operator]
    assert result.loss_steps.tolist() == [100, 200, 250]
    assert result.W.shape == (4, 2, 4)
