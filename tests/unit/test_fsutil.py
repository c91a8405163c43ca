from __future__ import annotations

import json
from pathlib import Path

import pytest

from leanops.fsutil import atomic_path, atomic_write, atomic_write_json


def test_atomic_write_creates_parents_and_content(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    atomic_write(target, "hello")
    assert target.read_text() == "hello"
    atomic_write_json(tmp_path / "r.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [1, 2], "b": 1}


def test_failure_leaves_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_failure_leaves_no_new_file(tmp_path: Path) -> None:
    target = tmp_path / "new.bin"
    with pytest.raises(KeyError), atomic_path(target) as tmp:
        tmp.write_bytes(b"x")
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_a_directory_whole(tmp_path: Path) -> None:
    from leanops.fsutil import atomic_dir

    target = tmp_path / "site"
    target.mkdir()
    (target / "old.html").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "index.html").write_text("new")
        assert not (target / "index.html").exists()  # nothing shows before the swap
    assert sorted(p.name for p in target.iterdir()) == ["index.html"]
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no temporary or old folder left


def test_atomic_dir_failure_keeps_the_old_directory(tmp_path: Path) -> None:
    from leanops.fsutil import atomic_dir

    target = tmp_path / "site"
    target.mkdir()
    (target / "old.html").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.html").write_text("half")
        raise RuntimeError("crash mid-build")
    assert [p.name for p in target.iterdir()] == ["old.html"]
    assert [p.name for p in tmp_path.iterdir()] == ["site"]
