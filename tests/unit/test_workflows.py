"""Static gates over the kit's workflows and actions: injection, pinning, permissions, self-references,
and actionlint and zizmor reporting nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from leanops.pins import PINS
from leanops.tools import release

ROOT = Path(__file__).resolve().parents[2]
UNTRUSTED = re.compile(r"\$\{\{\s*(inputs\.|github\.event\.|github\.head_ref)")
SHA = re.compile(r"^[0-9a-f]{40}$")


def kit_yaml() -> list[Path]:
    files = sorted((ROOT / ".github/workflows").glob("*.yml")) + sorted((ROOT / "actions").glob("*/action.yml"))
    return [ROOT / "action.yml", *files, *sorted((ROOT / "tests/act/actions").rglob("action.yml"))]


def steps(doc: dict) -> list[dict]:
    out = []
    for job in (doc.get("jobs") or {}).values():
        if isinstance(job.get("uses"), str):
            out.append({"uses": job["uses"]})
        out += job.get("steps") or []
    out += (doc.get("runs") or {}).get("steps") or []
    return out


@pytest.mark.parametrize("path", kit_yaml(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expression_inside_run(path: Path) -> None:
    for st in steps(yaml.safe_load(path.read_text())):
        run = st.get("run")
        if isinstance(run, str):
            assert not UNTRUSTED.search(run), f"{path}: untrusted expression inside run: {run!r}"
            assert "${{" not in run, f"{path}: pass values through env:, not ${{{{ }}}} inside run: {run!r}"


@pytest.mark.parametrize("path", kit_yaml(), ids=lambda p: str(p.relative_to(ROOT)))
def test_third_party_uses_pinned_by_sha_with_version_comment(path: Path) -> None:
    text = path.read_text()
    for line in text.splitlines():
        m = re.match(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", line)
        if not m:
            continue
        uses, rest = m.groups()
        if (
            uses.startswith(("./", "docker://"))
            or uses.lower().startswith(release.SLUG + "/")
            or uses.lower().startswith(release.SLUG + "@")
        ):
            continue
        action, ref = uses.rsplit("@", 1)
        repo = "/".join(action.split("/")[:2])
        assert SHA.match(ref), f"{path}: {uses} is not pinned by a full commit SHA"
        assert repo in PINS, f"{path}: {repo} is not in leanops.pins.PINS"
        sha, tag = PINS[repo]
        assert ref == sha, f"{path}: {uses} disagrees with the pin {sha}"
        assert rest.strip() == f"# {tag}", f"{path}: {uses} needs the version comment '# {tag}'"


def test_workflow_policies() -> None:
    for path in sorted((ROOT / ".github/workflows").glob("*.yml")):
        text = path.read_text()
        doc = yaml.safe_load(text)
        triggers = doc.get(True) or doc.get("on")  # PyYAML reads the key `on` as True
        assert "pull_request_target" not in (triggers or {}), path
        assert not re.search(r"secrets:\s*inherit", text), path
        for name, job in doc["jobs"].items():
            assert "permissions" in job, f"{path}: job {name} sets no permissions"
        assert doc.get("permissions") in ({}, None) or doc.get("permissions") == "read-all" == False, path


def test_publishing_jobs_restore_no_cache() -> None:
    """Jobs that push an image, deploy or move the champion install the kit without a cache (a pull request
    can write a cache entry that the default branch restores)."""
    for wf, jobs in {"ml-pipeline.yml": ["recorded", "release"]}.items():
        doc = yaml.safe_load((ROOT / ".github/workflows" / wf).read_text())
        for name in jobs:
            uses = [(str(st.get("uses", "")), st.get("with") or {}) for st in doc["jobs"][name]["steps"]]
            assert not [u for u, _ in uses if u.startswith("actions/cache")], (wf, name)
            kit = [w for u, w in uses if re.match(r"leanops/leanops(/actions/[^@]+)?@", u)]
            assert kit and all(w.get("cache") == "false" for w in kit), (wf, name, kit)
    for action in ("build-push-image", "canary-deploy"):
        steps_ = yaml.safe_load((ROOT / "actions" / action / "action.yml").read_text())["runs"]["steps"]
        root = [st.get("with") or {} for st in steps_ if str(st.get("uses", "")).startswith("leanops/leanops@")]
        assert root and all(w.get("cache") == "false" for w in root), action


def test_checkout_does_not_persist_credentials() -> None:
    for path in kit_yaml():
        for st in steps(yaml.safe_load(path.read_text())):
            if str(st.get("uses", "")).startswith("actions/checkout@"):
                assert (st.get("with") or {}).get("persist-credentials") is False, path


def test_self_references_agree() -> None:
    refs = {r.ref for r in release.find_self_refs(ROOT)}
    assert len(refs) <= 1, f"self-references disagree: {refs}"


def test_release_rewrites_every_self_reference(tmp_path: Path) -> None:
    from leanops.tools.harness import snapshot_kit

    tree = snapshot_kit(ROOT, tmp_path / "kit")
    wf = tree / ".github/workflows/probe.yml"
    wf.write_text(
        "on: push\njobs:\n  a:\n    uses: leanops/leanops/.github/workflows/x.yml@main\n"
        "  b:\n    runs-on: x\n    steps:\n      - uses: leanops/leanops/actions/y@main\n"
        "      - uses: 'leanops/leanops@main'\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "leanops", "release", "1.4.0", "--root", str(tree)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    refs = release.find_self_refs(tree)
    assert len(refs) >= 3 and {r.ref for r in refs} == {"v1.4.0"}
    assert 'version = "1.4.0"' in (tree / "pyproject.toml").read_text()
    assert "git tag -f v1 v1.4.0" in res.stdout + res.stderr
    # a fork retargets the slug, and the zizmor policy follows
    res = subprocess.run(
        [sys.executable, "-m", "leanops", "release", "1.4.1", "--root", str(tree), "--slug", "acme/leanops-fork"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert not release.find_self_refs(tree)
    forked = release.find_self_refs(tree, "acme/leanops-fork")
    assert len(forked) == len(refs) and {r.ref for r in forked} == {"v1.4.1"}
    zizmor_config = (tree / ".github/zizmor.yml").read_text()
    assert '"acme/leanops-fork/*": ref-pin' in zizmor_config and '"acme/leanops-fork": ref-pin' in zizmor_config
    assert "leanops/leanops" not in zizmor_config


def test_release_rejects_bad_version(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "leanops", "release", "one", "--root", str(ROOT)], capture_output=True, text=True
    )
    assert res.returncode == 2 and "expected X.Y.Z or main" in res.stderr


def test_disagreeing_self_references_are_found(tmp_path: Path) -> None:
    (tmp_path / "action.yml").write_text("runs:\n  steps:\n    - uses: leanops/leanops/actions/a@main\n")
    (tmp_path / "actions/b").mkdir(parents=True)
    (tmp_path / "actions/b/action.yml").write_text("runs:\n  steps:\n    - uses: leanops/leanops/actions/a@v1\n")
    assert {r.ref for r in release.find_self_refs(tmp_path)} == {"main", "v1"}


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    assert found, f"{name} is not installed (dev group)"
    return found


def test_actionlint_reports_nothing() -> None:
    files = [str(p) for p in sorted((ROOT / ".github/workflows").glob("*.yml"))]
    res = subprocess.run([_tool("actionlint"), *files], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_zizmor_reports_nothing() -> None:
    targets = [
        ".github/workflows",
        "action.yml",
        *[str(p.relative_to(ROOT)) for p in sorted((ROOT / "actions").glob("*/action.yml"))],
    ]
    res = subprocess.run([_tool("zizmor"), "--no-progress", *targets], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "No findings" in res.stdout + res.stderr


def test_zizmor_flags_an_unpinned_third_party_action(tmp_path: Path) -> None:
    """The gate is live: the same config rejects a tag-pinned third-party action."""
    wf = tmp_path / ".github/workflows/bad.yml"
    wf.parent.mkdir(parents=True)
    shutil.copy(ROOT / ".github/zizmor.yml", tmp_path / ".github/zizmor.yml")
    wf.write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    permissions: {}\n"
        "    steps:\n      - uses: someone/action@v1\n      - uses: leanops/leanops@main\n"
        "      - uses: leanops/other@main\n"
    )
    res = subprocess.run(
        [_tool("zizmor"), "--no-progress", ".github/workflows"], capture_output=True, text=True, cwd=tmp_path
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "someone/action@v1" in out
    assert "leanops/leanops@main" not in out and "leanops/other@main" in out


def test_shared_workflow_check_passes() -> None:
    tool = ROOT.parent / "shared/tools/workflow-check.py"
    if not tool.exists():
        pytest.skip("shared/tools/workflow-check.py is not beside this checkout")
    res = subprocess.run([sys.executable, str(tool), "all"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout


def test_workflows_and_actions_match_githubs_schemas() -> None:
    """check-jsonschema's vendored GitHub schemas (offline)."""
    workflows = [str(p) for p in sorted((ROOT / ".github/workflows").glob("*.yml"))]
    actions = [str(p) for p in kit_yaml() if p.name == "action.yml"]
    for schema, files in (("vendor.github-workflows", workflows), ("vendor.github-actions", actions)):
        res = subprocess.run(
            [_tool("check-jsonschema"), "--builtin-schema", schema, *files], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stdout + res.stderr


def test_example_and_template_configs_match_the_schema() -> None:
    configs = [
        str(p) for p in sorted(ROOT.glob("examples/*/leanops.yml")) + sorted(ROOT.glob("templates/**/leanops.yml"))
    ]
    if not configs:
        pytest.skip("no leanops.yml in examples/ or templates/ yet")
    schema = ROOT / "scripts/leanops/schema/leanops.schema.json"
    res = subprocess.run(
        [_tool("check-jsonschema"), "--schemafile", str(schema), *configs], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
