"""`worker.erasure`: when an erasure runs compiled."""

from __future__ import annotations

import sys
from dataclasses import replace

from worker.erasure import compiling
from worker.unlearning import UnlearnConfig


def test_auto_compiles_only_default_shapes_on_a_cpu_with_a_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", sys.executable)  # any program stands in for a compiler here
    defaults = UnlearnConfig()
    assert compiling("auto", "cpu", defaults) and compiling("auto", "cpu", replace(defaults, steps=10, seed=3))
    assert not compiling("auto", "cpu", replace(defaults, batch=2))  # other shapes: graphs of their own
    assert not compiling("auto", "cpu", replace(defaults, rank=4))
    assert not compiling("auto", "cpu", replace(defaults, retain_weight=0.0))
    assert not compiling("auto", "cuda", defaults) and not compiling("off", "cpu", defaults)
    assert compiling("on", "cpu", replace(defaults, batch=2)) and compiling("on", "cuda", defaults)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    assert not compiling("auto", "cpu", defaults)
