"""etcdx/pb/ is what proto/generate.py makes of proto/ today."""

from __future__ import annotations

import filecmp
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_generated_python_is_current(tmp_path):
    spec = importlib.util.spec_from_file_location("generate", ROOT / "proto" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generate.generate(tmp_path / "pb")
    committed = sorted(p.relative_to(ROOT / "etcdx" / "pb") for p in (ROOT / "etcdx" / "pb").rglob("*.py"))
    fresh = sorted(p.relative_to(tmp_path / "pb") for p in (tmp_path / "pb").rglob("*.py"))
    assert committed == fresh
    stale = [str(p) for p in fresh if not filecmp.cmp(tmp_path / "pb" / p, ROOT / "etcdx" / "pb" / p, shallow=False)]
    assert stale == [], "run: python proto/generate.py"
