"""The docs' inputs/outputs/secrets tables agree with the action.yml and workflow files (CI fails when they drift)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leanops import cli
from leanops.tools import docgen

ROOT = Path(__file__).resolve().parents[2]


def test_every_docs_table_agrees_with_its_action_and_workflow() -> None:
    assert docgen.problems(ROOT) == []


def test_every_capability_page_carries_its_tables() -> None:
    names = {p.parent.name for p in (ROOT / "actions").glob("*/action.yml")}
    covered = {p.stem for p in docgen.pages(ROOT)}
    assert {n for n in names if (ROOT / f"docs/{n}.md").is_file()} <= covered
    assert {"ml-pipeline"} <= covered
    for name in ("data-validate", "train-with-cache", "gate-metrics", "build-push-image", "weekly-drift",
                 "ml-pipeline", "canary-deploy"):
        text = (ROOT / f"docs/{name}.md").read_text()
        for kind, source in docgen.wanted(ROOT, name):
            assert f"<!-- leanops:{kind} {source} -->" in text, (name, kind, source)


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    for folder in ("docs", "actions", ".github/workflows"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leanops", "docs", "--check", "--root", str(root)],
                          capture_output=True, text=True)


def test_a_changed_default_fails_the_check_and_docs_fixes_it(kit: Path) -> None:
    action = kit / "actions/gate-metrics/action.yml"
    text = action.read_text()
    assert "    default: run\n" in text
    action.write_text(text.replace("    default: run\n", "    default: promote\n", 1))

    found = docgen.problems(kit)
    assert len(found) == 1 and found[0].startswith("docs/gate-metrics.md:")
    assert "the inputs table of actions/gate-metrics/action.yml disagrees" in found[0]
    res = check(kit)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 docs tables disagree" in res.stderr and "docs/gate-metrics.md" in res.stdout

    assert cli.main(["docs", "--root", str(kit)]) == 0
    assert "| `command` | no | `promote` |" in (kit / "docs/gate-metrics.md").read_text()
    assert check(kit).returncode == 0


def test_a_new_workflow_output_or_secret_fails_the_check(kit: Path) -> None:
    wf = kit / ".github/workflows/train-with-cache.yml"
    text = wf.read_text()
    wf.write_text(text.replace("    outputs:\n", "    outputs:\n      extra:\n        description: new.\n"
                               "        value: ${{ jobs.select.outputs.skipped }}\n", 1))
    assert any("outputs table of .github/workflows/train-with-cache.yml disagrees" in p for p in docgen.problems(kit))

    wf.write_text(text)
    wf2 = kit / ".github/workflows/data-validate.yml"
    wf2.write_text(wf2.read_text().replace("    secrets:\n", "    secrets:\n      TOKEN:\n        required: true\n", 1))
    page = kit / "docs/data-validate.md"  # and a page that has no secrets table yet
    page.write_text(re.sub(r"<!-- leanops:secrets .*?<!-- /leanops:secrets -->\n", "", page.read_text(), flags=re.S))
    found = docgen.problems(kit)
    assert found == ["docs/data-validate.md: no secrets table of .github/workflows/data-validate.yml; expected a "
                     "<!-- leanops:secrets .github/workflows/data-validate.yml --> block (run `leanops docs`)"]
    assert cli.main(["docs", "--root", str(kit)]) == 0
    page = (kit / "docs/data-validate.md").read_text()
    assert docgen.REFERENCE_HEADING in page and "| `TOKEN` | yes |" in page
    assert docgen.problems(kit) == []


def test_a_new_page_gets_its_tables_from_leanops_docs(kit: Path) -> None:
    page = kit / "docs/gate-metrics.md"
    page.write_text("# gate-metrics\n\nProse only.\n")
    assert docgen.problems(kit) == []  # a page without generated tables is not checked ...
    assert cli.main(["docs", "--root", str(kit)]) == 0  # ... until the generator gives it all of them
    text = page.read_text()
    assert text.startswith("# gate-metrics\n\nProse only.\n\n" + docgen.REFERENCE_HEADING)
    assert {(b.kind, b.source) for b in docgen.blocks(text)} == set(docgen.wanted(kit, "gate-metrics"))
    assert docgen.problems(kit) == []


def test_an_edited_table_fails_the_check(kit: Path) -> None:
    page = kit / "docs/weekly-drift.md"
    text = page.read_text()
    assert "| `threshold` |" in text
    page.write_text(text.replace("| `threshold` |", "| `threshold-share` |", 1))
    assert check(kit).returncode == 1
    page.write_text(text.replace("<!-- /leanops:outputs -->", "", 1))  # an unclosed block is no block
    assert any("no outputs table" in p for p in docgen.problems(kit))


def test_table_rendering() -> None:
    out = docgen.table(ROOT, "inputs", ".github/workflows/data-validate.yml")
    lines = out.splitlines()
    assert lines[0] == "| input | type | required | default | description |"
    assert any(line.startswith("| `dvc-pull` | boolean | no | `true` |") for line in lines)
    assert docgen.table(ROOT, "secrets", "actions/data-validate/action.yml") == "(no secrets)\n"
