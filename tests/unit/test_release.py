"""`leanops release X.Y.Z` on a clone of the kit, end to end in a temporary git repository: version, changelog,
the code commit, the pin commits, the tag; in the tagged tree every self-reference is a full commit SHA, every
chain of references reaches the released code, and zizmor (regular and pedantic, no exemption for the kit)
reports nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from leanops.tools import docgen, release

ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {"GIT_AUTHOR_NAME": "Maintainer", "GIT_AUTHOR_EMAIL": "m@example.com", "GIT_COMMITTER_NAME": "Maintainer",
           "GIT_COMMITTER_EMAIL": "m@example.com"}


def leanops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leanops", *args], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


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


def normalized(text: str) -> str:
    """The file with every self-reference's ref and comment blanked: what is left is the code."""
    return release.self_ref_pattern(release.SLUG).sub(lambda m: m.group("head") + "REF", text)


def follow(repo: Path, commit: str, path: str, tagged: Path, seen: set[tuple[str, str]]) -> int:
    """Follow every self-reference of `path` at `commit`; each file reached must be the tagged tree's file (up
    to the refs). Returns the depth of the chain."""
    text = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True,
                          text=True).stdout
    assert normalized(text) == normalized((tagged / path).read_text()), f"{path}@{commit[:12]} is not the release"
    depth = 0
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for m in release.self_ref_pattern(release.SLUG).finditer(line):
            ref = m.group("ref")
            assert release.FULL_SHA.match(ref), f"{path}@{commit[:12]}: {m.group(0)} is not a full commit SHA"
            ref_obj = release.SelfRef(Path(path), 0, ref, line, m.group("path") or "")
            key = (ref, ref_obj.target())
            if key not in seen:
                seen.add(key)
                depth = max(depth, 1 + follow(repo, ref, ref_obj.target(), tagged, seen))
    return depth


def test_a_release_tree_end_to_end(tree: Path) -> None:
    before = release.find_self_refs(tree)
    assert before and all(release.FULL_SHA.match(r.ref) for r in before)
    start = git(tree, "rev-parse", "HEAD")
    changelog = tree / "CHANGELOG.md"
    notes = changelog.read_text().split("## Unreleased\n", 1)[1].strip()

    res = leanops("release", "1.3.0", "--root", str(tree), "--date", "2026-12-01")
    assert res.returncode == 0, res.stderr
    assert git(tree, "status", "--porcelain", "--untracked-files=no") == ""
    # the commits: the code, then one pin commit per level of the longest chain; the tag on the last
    depth = release.chain_depth(tree)
    assert depth == 4  # template -> ml-pipeline -> train-with-cache -> its action -> the setup action
    log = git(tree, "log", "--format=%H %s", f"{start}..HEAD").splitlines()
    assert len(log) == 1 + depth
    assert log[-1].split(" ", 1)[1] == "release v1.3.0"
    code = log[-1].split()[0]
    assert git(tree, "rev-parse", "v1.3.0^{commit}") == git(tree, "rev-parse", "HEAD")
    assert git(tree, "cat-file", "-t", "v1.3.0") == "tag"  # annotated
    # the version, everywhere it is kept
    assert 'version = "1.3.0"' in (tree / "pyproject.toml").read_text()
    assert '__version__ = "1.3.0"' in (tree / "scripts/leanops/__init__.py").read_text()
    assert re.search(r'name = "leanops"\nversion = "1.3.0"', (tree / "uv.lock").read_text())
    # the changelog: the notes moved under the version, an empty Unreleased above
    text = changelog.read_text()
    assert "## Unreleased\n\n## [1.3.0] - 2026-12-01\n\n" + notes in text
    # every self-reference of the tagged tree: a full SHA, the tag's parent, with the version as its comment
    after = release.find_self_refs(tree)
    parent = git(tree, "rev-parse", "HEAD~1")
    assert len(after) == len(before) and {r.ref for r in after} == {parent}
    assert not [r for r in after if not r.comment_line and not r.text.endswith("# v1.3.0")]
    assert re.search(r"leanops/leanops/\.github/workflows/ml-pipeline\.yml@[0-9a-f]{40} # v1\.3\.0",
                     (tree / "templates/workflows/ml-pipeline.yml").read_text())
    # every chain from the tagged tree (a template, a workflow, an action) reaches the released code only
    seen: set[tuple[str, str]] = set()
    longest = max(follow(tree, "HEAD", str(r.file), tree, seen) for r in after if not r.comment_line)
    assert longest == depth
    assert any(ref == code for ref, _ in seen)  # the deepest hop lands on the code commit itself
    # the README keeps showing adopters the major pin
    assert "leanops/leanops@v1" in (tree / "README.md").read_text()
    # the push commands: vX.Y.Z immutable, vX moved
    assert "git push origin HEAD v1.3.0" in res.stdout and "git tag -f v1 v1.3.0^{}" in res.stdout

    # the release tree passes the kit's own gates: actionlint, zizmor without any exemption, the docs
    assert "leanops/leanops" not in (tree / ".github/zizmor.yml").read_text()
    res = subprocess.run([tool("actionlint"), *map(str, sorted((tree / ".github/workflows").glob("*.yml")))],
                         capture_output=True, text=True, cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    actions = [str(p.relative_to(tree)) for p in sorted((tree / "actions").glob("*/action.yml"))]
    templates = [str(p.relative_to(tree)) for p in sorted((tree / "templates/workflows").glob("*.yml"))]
    targets = [".github/workflows", "action.yml", *actions, *templates]
    for extra in ([], ["--pedantic"]):
        res = subprocess.run([tool("zizmor"), "--no-progress", *extra, *targets], capture_output=True, text=True,
                             cwd=tree)
        assert res.returncode == 0 and "No findings" in res.stdout + res.stderr, res.stdout + res.stderr
    assert docgen.problems(tree) == []
    # and builds a wheel of that version carrying the released templates
    uv = ROOT / ".tools/uv/bin/uv"
    if uv.exists():
        res = subprocess.run([str(uv), "build", "--wheel", "--offline", "-o", str(tree / "dist"), str(tree)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        wheel = tree / "dist/leanops-1.3.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel) as zf:
            assert f"@{parent} # v1.3.0" in zf.read("leanops/templates/workflows/ml-pipeline.yml").decode()

    # the same version twice is refused, and nothing changes
    head = git(tree, "rev-parse", "HEAD")
    res = leanops("release", "1.3.0", "--root", str(tree))
    assert res.returncode == 2 and "the tag v1.3.0 exists" in res.stderr
    assert git(tree, "rev-parse", "HEAD") == head


def test_an_unpinned_self_reference_fails_zizmor_without_exemption(tree: Path) -> None:
    """The gate is live for the kit's own slug: a self-reference by branch is a finding."""
    path = tree / "actions/data-validate/action.yml"
    path.write_text(release.self_ref_pattern(release.SLUG).sub(lambda m: m.group("head") + "main", path.read_text()))
    res = subprocess.run([tool("zizmor"), "--no-progress", "actions/data-validate/action.yml"], capture_output=True,
                         text=True, cwd=tree)
    assert res.returncode != 0 and "leanops/leanops@main" in res.stdout + res.stderr


def test_a_dirty_tree_is_refused(tree: Path) -> None:
    (tree / "action.yml").write_text((tree / "action.yml").read_text() + "\n# edit\n")
    res = leanops("release", "1.3.0", "--root", str(tree))
    assert res.returncode == 2 and "uncommitted changes" in res.stderr
    assert 'version = "1.3.0"' not in (tree / "pyproject.toml").read_text()


def test_pin_points_every_self_reference_at_head_in_one_commit(tree: Path) -> None:
    head = git(tree, "rev-parse", "HEAD")
    res = leanops("release", "pin", "--root", str(tree))
    assert res.returncode == 0, res.stderr
    assert git(tree, "rev-parse", "HEAD~1") == head
    assert {r.ref for r in release.find_self_refs(tree)} == {head}


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
    assert "git tag -f v2 v2.0.0^{}" in res.stdout
    assert {r.ref for r in release.find_self_refs(tree)} == {git(tree, "rev-parse", "v2.0.0~1")}


def test_a_changelog_without_unreleased_is_refused(tree: Path) -> None:
    (tree / "CHANGELOG.md").write_text("# Changelog\n\n## [0.1.0] - 2026-01-01\n\n- first\n")
    git(tree, "commit", "-q", "-am", "changelog")
    head = git(tree, "rev-parse", "HEAD")
    res = leanops("release", "1.0.0", "--root", str(tree))
    assert res.returncode == 2 and 'CHANGELOG.md: no "## Unreleased" section' in res.stderr
    assert 'version = "1.0.0"' not in (tree / "pyproject.toml").read_text()
    assert git(tree, "rev-parse", "HEAD") == head


def test_without_a_changelog_one_is_created(tree: Path) -> None:
    git(tree, "rm", "-q", "CHANGELOG.md")
    git(tree, "commit", "-q", "-m", "no changelog")
    assert leanops("release", "0.2.0", "--root", str(tree), "--date", "2026-12-01").returncode == 0
    text = (tree / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "## Unreleased\n\n## [0.2.0] - 2026-12-01\n\n- No notable changes." in text
    assert leanops("release", "0.2.1", "--root", str(tree), "--date", "bad").returncode == 2
