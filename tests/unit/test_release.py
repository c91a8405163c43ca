"""`leanops release X.Y.Z` on a clone of the kit, end to end: version, changelog, every self-reference, the major
pins of the docs, the tag commands; the release tree still passes the kit's own static checks and builds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from leanops.tools import docgen, release

ROOT = Path(__file__).resolve().parents[2]


def leanops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leanops", *args], capture_output=True, text=True)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A clone of the kit's last commit (what a maintainer releases from)."""
    clone = tmp_path / "leanops"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    return clone


def tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    assert found, f"{name} is not installed (dev group)"
    return found


def test_a_release_tree_end_to_end(tree: Path) -> None:
    before = release.find_self_refs(tree)
    assert before and {r.ref for r in before} == {"main"}
    changelog = tree / "CHANGELOG.md"
    notes = changelog.read_text().split("## Unreleased\n", 1)[1].strip()

    res = leanops("release", "1.3.0", "--root", str(tree), "--date", "2026-12-01")
    assert res.returncode == 0, res.stderr
    # the version, everywhere it is kept
    assert 'version = "1.3.0"' in (tree / "pyproject.toml").read_text()
    assert '__version__ = "1.3.0"' in (tree / "scripts/leanops/__init__.py").read_text()
    assert re.search(r'name = "leanops"\nversion = "1.3.0"', (tree / "uv.lock").read_text())
    # the changelog: the notes moved under the version, an empty Unreleased above
    text = changelog.read_text()
    assert "## Unreleased\n\n## [1.3.0] - 2026-12-01\n\n" + notes in text
    # every self-reference of the YAML, the templates included
    after = release.find_self_refs(tree)
    assert len(after) == len(before) and {r.ref for r in after} == {"v1.3.0"}
    assert "leanops/leanops/.github/workflows/ml-pipeline.yml@v1.3.0" in (
        tree / "templates/workflows/ml-pipeline.yml").read_text()
    # the README keeps showing adopters the major pin
    assert "leanops/leanops@v1" in (tree / "README.md").read_text()
    # the tag commands: vX.Y.Z immutable, vX moved
    assert "git tag -s v1.3.0 -m v1.3.0" in res.stdout and "git tag -f v1 v1.3.0" in res.stdout
    assert "git push -f origin v1" in res.stdout

    # the release tree passes the kit's own gates: actionlint, zizmor (tags allowed for the kit only), the docs
    res = subprocess.run([tool("actionlint"), *map(str, sorted((tree / ".github/workflows").glob("*.yml")))],
                         capture_output=True, text=True, cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    actions = [str(p.relative_to(tree)) for p in (tree / "actions").glob("*/action.yml")]
    targets = [".github/workflows", "action.yml", *actions]
    res = subprocess.run([tool("zizmor"), "--no-progress", *targets], capture_output=True, text=True, cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    assert docgen.problems(tree) == []
    # and builds a wheel of that version carrying the released templates
    uv = ROOT / ".tools/uv/bin/uv"
    if uv.exists():
        res = subprocess.run([str(uv), "build", "--wheel", "--offline", "-o", str(tree / "dist"), str(tree)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        wheel = tree / "dist/leanops-1.3.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel) as zf:
            assert "@v1.3.0" in zf.read("leanops/templates/workflows/ml-pipeline.yml").decode()

    # the same version twice is refused, and nothing changes
    snapshot = changelog.read_text()
    res = leanops("release", "1.3.0", "--root", str(tree))
    assert res.returncode == 2 and "CHANGELOG.md: already has a section for 1.3.0" in res.stderr
    assert changelog.read_text() == snapshot

    # back to main: self-references follow, the version stays
    res = leanops("release", "main", "--root", str(tree))
    assert res.returncode == 0, res.stderr
    assert {r.ref for r in release.find_self_refs(tree)} == {"main"}
    assert 'version = "1.3.0"' in (tree / "pyproject.toml").read_text()


def test_a_new_major_moves_the_docs_pins_and_an_empty_unreleased_says_so(tree: Path) -> None:
    assert leanops("release", "1.3.0", "--root", str(tree), "--date", "2026-12-01").returncode == 0
    res = leanops("release", "2.0.0", "--root", str(tree), "--date", "2027-01-04")
    assert res.returncode == 0, res.stderr
    readme = (tree / "README.md").read_text()
    assert "leanops/leanops@v2" in readme and "leanops/leanops@v1\n" not in readme
    assert not re.search(r"leanops/leanops\S*@v1(?![\d.])", readme + "".join(
        p.read_text() for p in (tree / "docs").glob("*.md")))
    text = (tree / "CHANGELOG.md").read_text()
    assert "## [2.0.0] - 2027-01-04\n\n- No notable changes.\n\n## [1.3.0] - 2026-12-01" in text
    assert "git tag -f v2 v2.0.0" in res.stdout


def test_a_changelog_without_unreleased_is_refused(tree: Path) -> None:
    (tree / "CHANGELOG.md").write_text("# Changelog\n\n## [0.1.0] - 2026-01-01\n\n- first\n")
    res = leanops("release", "1.0.0", "--root", str(tree))
    assert res.returncode == 2 and 'CHANGELOG.md: no "## Unreleased" section' in res.stderr
    assert 'version = "1.0.0"' not in (tree / "pyproject.toml").read_text()
    assert {r.ref for r in release.find_self_refs(tree)} == {"main"}


def test_without_a_changelog_one_is_created(tree: Path) -> None:
    (tree / "CHANGELOG.md").unlink()
    assert leanops("release", "0.2.0", "--root", str(tree), "--date", "2026-12-01").returncode == 0
    text = (tree / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "## Unreleased\n\n## [0.2.0] - 2026-12-01\n\n- No notable changes." in text
    assert leanops("release", "0.2.1", "--root", str(tree), "--date", "bad").returncode == 2
