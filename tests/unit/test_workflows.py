"""Static gates over the kit's workflows and actions: injection, pinning, permissions, self-references,
and actionlint and zizmor reporting nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
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


def test_self_references_are_full_commit_shas() -> None:
    """The kit names itself by commit, never by branch or tag (a pin of the kit must name all it runs)."""
    refs = release.find_self_refs(ROOT)
    assert len(refs) >= 30
    bad = [f"{r.file}:{r.line}: {r.text}" for r in refs if not release.FULL_SHA.match(r.ref)]
    assert not bad, bad


def test_a_fork_retargets_the_slug(tmp_path: Path) -> None:
    from leanops.tools.harness import snapshot_kit

    tree = snapshot_kit(ROOT, tmp_path / "kit")
    count = len(release.find_self_refs(tree))
    release.rewrite(tree, "a" * 40, new_slug="acme/leanops-fork", comment="v1.4.1")
    assert not release.find_self_refs(tree)
    forked = release.find_self_refs(tree, "acme/leanops-fork")
    assert len(forked) == count and {r.ref for r in forked} == {"a" * 40}
    assert all(r.text.endswith("# v1.4.1") for r in forked if not r.comment_line)


def test_release_rejects_bad_version(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "leanops", "release", "one", "--root", str(ROOT)], capture_output=True, text=True
    )
    assert res.returncode == 2 and "expected X.Y.Z or pin" in res.stderr


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


ZIZMOR_TARGETS = [
    ".github/workflows",
    "action.yml",
    *[str(p.relative_to(ROOT)) for p in sorted((ROOT / "actions").glob("*/action.yml"))],
    *[str(p.relative_to(ROOT)) for p in sorted((ROOT / "templates/workflows").glob("*.yml"))],
]


@pytest.mark.parametrize("mode", [[], ["--pedantic"]], ids=["regular", "pedantic"])
def test_zizmor_reports_nothing(mode: list[str]) -> None:
    """The kit and the templates adopters copy, with no exemption for the kit's own slug."""
    assert "leanops/leanops" not in (ROOT / ".github/zizmor.yml").read_text()
    res = subprocess.run([_tool("zizmor"), "--no-progress", *mode, *ZIZMOR_TARGETS], capture_output=True, text=True,
                         cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "No findings" in res.stdout + res.stderr
    assert "suppressed" not in res.stdout + res.stderr


def test_zizmor_flags_an_unpinned_third_party_action(tmp_path: Path) -> None:
    """The gate is live: the same config rejects a tag-pinned third-party action, and the kit's own slug by
    branch just the same."""
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
    assert "leanops/leanops@main" in out and "leanops/other@main" in out


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


# ---------------------------------------------------------------------------- trust boundaries (issue 13)
# A small evaluator of GitHub's expressions with a third value, UNKNOWN (a job output the test cannot know, a
# secret's value): a job whose `if:` is UNKNOWN counts as running. It follows the adopter's caller workflow
# (templates/workflows) through every reusable workflow of the kit and records, per job that runs, which of the
# adopter's secrets reach it, its environment and whether it restores a cache.

WRITE_SECRETS = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                 "REGISTRY_PASSWORD", "DOCKER_HOST", "KUBECONFIG_DATA",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}  # the object store's, may write
READ_SECRETS = {"MLFLOW_READ_USERNAME", "MLFLOW_READ_PASSWORD", "MLFLOW_READ_TOKEN"}


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Secret:
    """The value of secrets.X: which of the adopter's secrets it is (a set, through every mapping)."""

    names: frozenset[str]


_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|<=|>=|[!<>()\[\],.])"
                    r"|(?P<id>[A-Za-z_][A-Za-z0-9_-]*))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"cannot read expression at {text[pos:]!r}"
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _truthy(v: object) -> object:
    if v is UNKNOWN or isinstance(v, Secret):
        return UNKNOWN
    return bool(v) and v != 0


class _Expr:
    def __init__(self, text: str, ctx: dict) -> None:
        self.toks, self.i, self.ctx = _tokens(text), 0, ctx

    def peek(self) -> str:
        return self.toks[self.i][1] if self.i < len(self.toks) else ""

    def take(self) -> tuple[str, str]:
        self.i += 1
        return self.toks[self.i - 1]

    def parse(self) -> object:
        v = self.or_()
        assert self.i == len(self.toks), f"trailing tokens in {self.toks}"
        return v

    def or_(self) -> object:
        v = self.and_()
        while self.peek() == "||":
            self.take()
            w = self.and_()
            t = _truthy(v)
            v = v if t is True else (w if t is False else (w if _truthy(w) is True else UNKNOWN))
        return v

    def and_(self) -> object:
        v = self.unary()
        while self.peek() == "&&":
            self.take()
            w = self.unary()
            t = _truthy(v)
            v = v if t is False else (w if t is True else (w if _truthy(w) is False else UNKNOWN))
        return v

    def unary(self) -> object:
        if self.peek() == "!":
            self.take()
            t = _truthy(self.unary())
            return UNKNOWN if t is UNKNOWN else not t
        return self.cmp()

    def cmp(self) -> object:
        v = self.primary()
        if self.peek() in ("==", "!=", "<", ">", "<=", ">="):
            op = self.take()[1]
            w = self.primary()
            if any(x is UNKNOWN or isinstance(x, Secret) for x in (v, w)):
                return UNKNOWN
            a, b = (x.lower() if isinstance(x, str) else x for x in (v, w))
            return {"==": a == b, "!=": a != b}.get(op, UNKNOWN)
        return v

    def primary(self) -> object:
        kind, tok = self.take()
        if kind == "str":
            return tok[1:-1].replace("''", "'")
        if kind == "num":
            return float(tok)
        if tok == "(":
            v = self.or_()
            assert self.take()[1] == ")"
            return v
        assert kind == "id", tok
        if tok in ("true", "false"):
            return tok == "true"
        if tok == "null":
            return None
        if self.peek() == "(":
            self.take()
            args = []
            while self.peek() != ")":
                args.append(self.or_())
                if self.peek() == ",":
                    self.take()
            self.take()
            return self.call(tok, args)
        v = self.ctx.get(tok, UNKNOWN)
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                key = self.take()[1]
            else:
                key = self.or_()
                self.take()
            if isinstance(v, dict):
                v = v.get(key, UNKNOWN if v.get("__open__") else "")
            elif not isinstance(v, Secret):
                v = UNKNOWN
        return v

    def call(self, name: str, args: list) -> object:
        if name in ("always", "success"):
            return True
        if name in ("cancelled", "failure"):
            return False
        if any(a is UNKNOWN or isinstance(a, Secret) for a in args):
            return UNKNOWN
        if name == "startsWith":
            return str(args[0]).lower().startswith(str(args[1]).lower())
        if name == "format":
            return re.sub(r"\{(\d+)\}", lambda m: str(args[int(m.group(1)) + 1]), str(args[0]))
        return UNKNOWN  # fromJSON, toJSON, contains...: not needed for the decisions tested here


def evaluate(value: object, ctx: dict) -> object:
    """A YAML value: expressions inside ${{ }} evaluated; a string mixing text and secrets is their union."""
    if not isinstance(value, str) or "${{" not in value:
        return value
    parts = re.split(r"\$\{\{(.*?)\}\}", value, flags=re.S)
    if len(parts) == 3 and not parts[0].strip() and not parts[2].strip():
        return _Expr(parts[1], ctx).parse()
    values = [_Expr(p, ctx).parse() for p in parts[1::2]]
    secrets_ = frozenset().union(*(v.names for v in values if isinstance(v, Secret)))
    if secrets_:
        return Secret(secrets_)
    return UNKNOWN if any(v is UNKNOWN for v in values) else "".join(
        str(x) if i % 2 == 0 else str(values[i // 2]) for i, x in enumerate(parts))


@dataclass
class JobRun:
    workflow: str
    job: str
    secrets: set[str]          # the adopter's secrets this job's steps or called actions receive
    env_names: set[str]        # environment variables set in the job (job env and step env)
    environment: object        # the evaluated environment name ("" for none)
    restores_cache: bool
    write_permissions: bool


def _kit_file(uses: str) -> Path | None:
    m = re.match(r"leanops/leanops(?P<path>/[^@]+)?@", uses)
    if not m:
        return None
    path = (m.group("path") or "").lstrip("/")
    return ROOT / path if path.endswith((".yml", ".yaml")) else ROOT / path / "action.yml"


def action_restores_cache(path: Path, with_: dict) -> bool:
    """Does the composite action at `path`, given these inputs, restore an actions/cache entry?"""
    doc = yaml.safe_load(path.read_text())
    inputs = {k: (with_[k] if k in with_ else str((spec or {}).get("default", "")))
              for k, spec in (doc.get("inputs") or {}).items()}
    inputs = {k: ("true" if v is True else "false" if v is False else v) for k, v in inputs.items()}
    ctx = {"inputs": inputs, "steps": {"__open__": True}, "github": {"__open__": True}, "runner": {"__open__": True}}
    for st in (doc.get("runs") or {}).get("steps") or []:
        cond = evaluate("${{ " + str(st["if"]) + " }}", ctx) if "if" in st else True
        if _truthy(cond) is False:
            continue
        uses = str(st.get("uses", ""))
        if uses.startswith(("actions/cache@", "actions/cache/restore@")):
            return True
        kit = _kit_file(uses)
        if kit is not None:
            sub = {k: evaluate(v, ctx) for k, v in (st.get("with") or {}).items()}
            sub = {k: ("true" if v is True else "false" if v is False else v) for k, v in sub.items()}
            if action_restores_cache(kit, {k: v for k, v in sub.items() if v is not UNKNOWN} | {
                    k: "true" for k, v in sub.items() if v is UNKNOWN}):
                return True
    return False


def _has_write(perms: object) -> bool:
    if isinstance(perms, str):
        return perms == "write-all"
    return any(v == "write" for v in (perms or {}).values())


def jobs_in_order(doc: dict) -> Iterator[tuple[str, dict, list[str]]]:
    """The workflow's jobs, each after the jobs it needs: (id, job, needs)."""
    pending = dict(doc["jobs"])
    while pending:
        for job_id, job in list(pending.items()):
            needs = job.get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            if any(n in pending for n in needs):
                continue
            del pending[job_id]
            yield job_id, job, needs


def walk(path: Path, *, event: str, ref: str, inputs: dict, secrets_map: dict[str, frozenset[str]],
         outputs: dict[str, dict[str, str]], runs: list[JobRun], name: str = "") -> None:
    """Every job of the workflow at `path` that can run for this event, recursing into reusable workflows."""
    doc = yaml.safe_load(path.read_text())
    name = name or path.name
    on = doc.get(True) or doc.get("on") or {}
    call = (on.get("workflow_call") or {}) if isinstance(on, dict) else {}
    full_inputs = {k: (inputs[k] if k in inputs else (spec or {}).get("default", ""))
                   for k, spec in (call.get("inputs") or {}).items()}
    github = {"event_name": event, "ref": ref, "ref_name": ref.rsplit("/", 1)[-1], "token": Secret(frozenset()),
              "repository": "acme/churn", "event": {"repository": {"default_branch": "main"}, "__open__": True},
              "__open__": True}
    secrets_ctx = {k: Secret(v) for k, v in secrets_map.items()}
    ran: dict[str, object] = {}
    for job_id, job, needs in jobs_in_order(doc):
        needs_ctx = {n: {"result": "success" if ran[n] is True else ("skipped" if ran[n] is False else UNKNOWN),
                         "outputs": {**{"__open__": True}, **outputs.get(f"{name}:{n}", {})}} for n in needs}
        for n in needs:
            if f"{name}:{n}" in outputs:
                needs_ctx[n]["outputs"].pop("__open__", None)
        ctx = {"github": github, "inputs": full_inputs, "secrets": secrets_ctx, "needs": needs_ctx,
               "matrix": {"__open__": True}, "strategy": {"__open__": True}, "steps": {"__open__": True},
               "runner": {"__open__": True}, "vars": {"__open__": True}, "env": {"__open__": True}}
        cond_text = str(job.get("if", "success()"))
        cond = _truthy(evaluate(cond_text if "${{" in cond_text else "${{ " + cond_text + " }}", ctx))
        status_free = re.search(r"always\(\)|cancelled\(\)", cond_text)
        if not status_free and any(ran[n] is False for n in needs):
            cond = False
        ran[job_id] = cond
        if cond is False:
            continue
        if isinstance(job.get("uses"), str):
            callee = _kit_file(job["uses"])
            assert callee is not None, f"{name}: {job_id} calls {job['uses']}, not the kit"
            with_ = {k: evaluate(v, ctx) for k, v in (job.get("with") or {}).items()}
            sub_secrets = {}
            for k, v in (job.get("secrets") or {}).items():
                got = evaluate(v, ctx)
                sub_secrets[k] = got.names if isinstance(got, Secret) else frozenset()
            walk(callee, event=event, ref=ref, inputs=with_, secrets_map=sub_secrets, outputs=outputs,
                 runs=runs, name=callee.name)
            continue
        got: set[str] = set()
        env_names: set[str] = set(job.get("env") or {})
        restores = False
        values = [*(job.get("env") or {}).values()]
        for st in job.get("steps") or []:
            scond = _truthy(evaluate("${{ " + str(st["if"]).replace("${{", "").replace("}}", "") + " }}", ctx)
                            ) if "if" in st else True
            if scond is False:
                continue
            env_names |= set(st.get("env") or {})
            values += [*(st.get("env") or {}).values(), *(st.get("with") or {}).values()]
            uses = str(st.get("uses", ""))
            if uses.startswith(("actions/cache@", "actions/cache/restore@")):
                restores = True
            kit = _kit_file(uses)
            if kit is not None:
                with_ = {k: evaluate(v, ctx) for k, v in (st.get("with") or {}).items()}
                with_ = {k: ("true" if v is True else "false" if v is False else ("true" if v is UNKNOWN else v))
                         for k, v in with_.items()}
                restores = restores or action_restores_cache(kit, with_)
        for v in values:
            val = evaluate(v, ctx)
            if isinstance(val, Secret):
                got |= val.names
        runs.append(JobRun(name, job_id, got, env_names, evaluate(job.get("environment", ""), ctx), restores,
                           _has_write(job.get("permissions"))))


def pipeline_runs(event: str, ref: str, plan: dict[str, str], template: str = "ml-pipeline.yml") -> list[JobRun]:
    """The adopter's caller (the template, as `leanops init` writes it) through the kit, for one event."""
    doc = yaml.safe_load((ROOT / "templates/workflows" / template).read_text())
    runs: list[JobRun] = []
    outputs = {"ml-pipeline.yml:plan": plan}
    for job in doc["jobs"].values():
        if not isinstance(job.get("uses"), str):
            continue
        callee = _kit_file(job["uses"])
        assert callee is not None
        ctx = {"github": {"event_name": event, "ref": ref, "__open__": True}, "secrets": {}, "vars": {"__open__": True},
               "inputs": {"__open__": True}}
        with_ = {k: evaluate(v, ctx) for k, v in (job.get("with") or {}).items()}
        secrets_map = {}
        for k, v in (job.get("secrets") or {}).items():
            m = re.fullmatch(r"\$\{\{\s*secrets\.([A-Za-z0-9_]+)\s*\}\}", str(v).strip())
            secrets_map[k] = frozenset({m.group(1)}) if m else frozenset()
        walk(callee, event=event, ref=ref, inputs=with_, secrets_map=secrets_map, outputs=outputs, runs=runs)
    return runs


PR_PLAN = {"trusted": "false", "tracking": "embedded", "deploy": "false"}
MAIN_PLAN = {"trusted": "true", "tracking": "server", "deploy": "true"}


def test_the_evaluator_reads_what_the_workflows_write() -> None:
    ctx = {"github": {"event_name": "pull_request", "ref": "refs/pull/1/merge", "event": {
        "repository": {"default_branch": "main"}}}, "inputs": {"environment": "production"}, "needs": {}}
    assert evaluate("${{ github.event_name != 'pull_request' && inputs.environment || '' }}", ctx) == ""
    assert evaluate("${{ github.ref == format('refs/heads/{0}', github.event.repository.default_branch) }}",
                    ctx) is False
    assert evaluate("${{ !(github.event_name == 'pull_request') || startsWith(github.ref, 'refs/pull/') }}",
                    ctx) is True
    assert evaluate("${{ needs.x.outputs.y == 'true' }}", {"needs": {"x": {"outputs": {"__open__": True}}}}) is UNKNOWN


def test_pull_request_jobs_receive_no_write_credential() -> None:
    """On pull_request, from the adopter's caller through every reusable workflow: no job that can run receives
    a credential that can write (the tracking server's, the registry's, the deploy target's)."""
    for template in ("ml-pipeline.yml", "train-with-cache.yml", "gate-metrics.yml", "data-validate.yml"):
        runs = pipeline_runs("pull_request", "refs/pull/7/merge", PR_PLAN, template)
        assert runs, template
        for r in runs:
            assert not (r.secrets & WRITE_SECRETS), f"{template}: {r.workflow} job {r.job} receives {r.secrets}"
            assert r.environment in ("", None), f"{template}: {r.workflow} job {r.job} names {r.environment!r}"


def test_pull_request_training_gets_no_mlflow_variable_and_the_gate_reads_with_the_read_credential() -> None:
    runs = pipeline_runs("pull_request", "refs/pull/7/merge", PR_PLAN)
    train = [r for r in runs if r.workflow == "train-with-cache.yml" and r.job.startswith("train")]
    assert [r.job for r in train] == ["train"]
    for r in train:
        assert not r.secrets, r
        assert not {n for n in r.env_names if n.startswith("MLFLOW_TRACKING")}, r
    gate = [r for r in runs if r.workflow == "gate-metrics.yml" and r.job == "gate"]
    assert len(gate) == 1 and gate[0].secrets & READ_SECRETS == READ_SECRETS
    assert not gate[0].secrets & WRITE_SECRETS
    gate_step = yaml.safe_load((ROOT / ".github/workflows/gate-metrics.yml").read_text())["jobs"]["gate"]["steps"]
    env = next(st["env"] for st in gate_step if st.get("id") == "gate")
    assert env["MLFLOW_TRACKING_USERNAME"] == "${{ secrets.MLFLOW_READ_USERNAME }}"
    assert env["MLFLOW_TRACKING_PASSWORD"] == "${{ secrets.MLFLOW_READ_PASSWORD }}"
    assert env["MLFLOW_TRACKING_TOKEN"] == "${{ secrets.MLFLOW_READ_TOKEN }}"


def test_on_trusted_refs_write_credentials_reach_only_jobs_in_the_environment() -> None:
    """A push to the default branch: the jobs that write (training, select, image, canary, release) run in the
    environment named by the `environment` input (default production), and only they receive write credentials."""
    runs = pipeline_runs("push", "refs/heads/main", MAIN_PLAN)
    in_env = {(r.workflow, r.job) for r in runs if r.environment == "production"}
    assert {("train-with-cache.yml", "train-trusted"), ("train-with-cache.yml", "select-trusted"),
            ("build-push-image.yml", "image"), ("canary-deploy.yml", "deploy"), ("ml-pipeline.yml", "release")
            } <= in_env, in_env
    writers = {(r.workflow, r.job) for r in runs if r.secrets & WRITE_SECRETS}
    assert {("train-with-cache.yml", "train-trusted"), ("canary-deploy.yml", "deploy"),
            ("ml-pipeline.yml", "release")} <= writers <= in_env, writers
    # the adopter's DVC stage runs in train-trusted: it holds the tracking server's credential and the object
    # store's (the DVC remote: dvc push --run-cache), nothing else
    train = next(r for r in runs if r.job == "train-trusted")
    assert train.secrets <= {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                             "MLFLOW_TRACKING_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                             "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"} and not train.write_permissions, train
    release = next(r for r in runs if r.job == "release")
    canary = next(r for r in runs if r.workflow == "canary-deploy.yml")
    assert release.environment == canary.environment == "production"
    # a tag: the same jobs, once the plan job has found its commit on the default branch
    tag = pipeline_runs("push", "refs/tags/v1.2.0", MAIN_PLAN)
    assert {(r.workflow, r.job) for r in tag if r.environment == "production"} == in_env
    # and a branch other than the default one trains like a pull request
    other = pipeline_runs("push", "refs/heads/feature", PR_PLAN)
    assert not [r for r in other if r.secrets & WRITE_SECRETS or r.environment not in ("", None)]


def _jobs_with_credentials() -> list[tuple[str, str, dict]]:
    out = []
    for path in sorted((ROOT / ".github/workflows").glob("*.yml")):
        for job_id, job in yaml.safe_load(path.read_text())["jobs"].items():
            if "steps" not in job:
                continue
            text = yaml.safe_dump(job)
            if _has_write(job.get("permissions")) or "secrets." in text or "github.token" in text:
                out.append((path.name, job_id, job))
    return out


def test_jobs_with_a_write_permission_or_a_secret_restore_no_cache() -> None:
    """Every job of every workflow that holds a write permission, a secret or the job token restores no cache
    (a cache entry is written by jobs an attacker's code may run in). A `cache` input given by an expression
    counts as true."""
    found = _jobs_with_credentials()
    assert len(found) >= 10, found
    for wf, job_id, job in found:
        ctx = {"inputs": {"__open__": True}, "steps": {"__open__": True}, "secrets": {"__open__": True},
               "github": {"__open__": True}, "needs": {"__open__": True}, "matrix": {"__open__": True},
               "runner": {"__open__": True}, "strategy": {"__open__": True}}
        for st in job["steps"]:
            uses = str(st.get("uses", ""))
            assert not uses.startswith(("actions/cache@", "actions/cache/restore@")), f"{wf} job {job_id}: {uses}"
            kit = _kit_file(uses)
            if kit is None:
                continue
            with_ = {}
            for k, v in (st.get("with") or {}).items():
                val = evaluate(v, ctx)
                val = "true" if val is True else "false" if val is False else val
                with_[k] = "true" if (val is UNKNOWN or isinstance(val, Secret)) and k == "cache" else val
            assert not action_restores_cache(kit, with_), f"{wf} job {job_id} restores a cache through {uses}"


GATE_INPUTS = "${{ format('leanops-gate-inputs{0}', steps.train.outputs.artifact-suffix) }}"


def test_the_gate_gets_the_candidates_predictions_in_every_mode() -> None:
    """Issue 15: ml-pipeline's gate job has neither the DVC outputs nor the training job's embedded store. Every
    training job (pull request and trusted ref alike) uploads train-with-cache's gate-inputs as the artifact
    leanops-gate-inputs; ml-pipeline names it to the gate, whose job downloads it before the gate step and hands
    its folder over as candidate-files (the action's LEANOPS_CANDIDATE_FILES, the CLI's --candidate-files)."""
    wf = yaml.safe_load((ROOT / ".github/workflows/train-with-cache.yml").read_text())
    for job_id in ("train", "train-trusted"):
        uploads = [st for st in wf["jobs"][job_id]["steps"] if str(st.get("uses", "")).startswith(
            "actions/upload-artifact@") and st["with"]["name"] == GATE_INPUTS]
        assert len(uploads) == 1, job_id
        assert uploads[0]["with"]["path"] == "${{ steps.train.outputs.gate-inputs }}"
        assert "steps.train.outputs.gate-inputs != ''" in uploads[0]["if"]
    action = yaml.safe_load((ROOT / "actions/train-with-cache/action.yml").read_text())
    assert action["outputs"]["gate-inputs"]["value"] == "${{ steps.train.outputs.gate-inputs }}"
    pipeline = yaml.safe_load((ROOT / ".github/workflows/ml-pipeline.yml").read_text())
    assert pipeline["jobs"]["gate"]["with"]["candidate-artifact"] == "${{ needs.train.outputs.gate-inputs-artifact }}"
    for job_id in ("select", "select-trusted"):  # the name its training job uploaded, "" when none
        needed = wf["jobs"][job_id]["needs"]
        assert wf["jobs"][job_id]["outputs"]["gate-inputs-artifact"] == (
            f"${{{{ needs.{needed}.outputs.gate-inputs-artifact }}}}")
        uploaded = wf["jobs"][needed]["outputs"]["gate-inputs-artifact"]
        assert "steps.train.outputs.gate-inputs != ''" in uploaded and GATE_INPUTS[4:-3] in uploaded
    gate_wf = yaml.safe_load((ROOT / ".github/workflows/gate-metrics.yml").read_text())
    gate_steps = gate_wf["jobs"]["gate"]["steps"]
    index = next(i for i, st in enumerate(gate_steps) if st.get("id") == "gate")
    download = next(st for st in gate_steps[:index] if str(st.get("uses", "")).startswith("actions/download-artifact@"))
    assert download["with"]["name"] == "${{ inputs.candidate-artifact }}"
    assert download["with"]["path"] == "${{ runner.temp }}/leanops-gate-inputs"
    assert "format('{0}/leanops-gate-inputs', runner.temp)" in gate_steps[index]["with"]["candidate-files"]
    gate_action = yaml.safe_load((ROOT / "actions/gate-metrics/action.yml").read_text())
    env = gate_action["runs"]["steps"][-1]["env"]
    assert env["LEANOPS_CANDIDATE_FILES"] == "${{ inputs.candidate-files }}"


def test_retraining_refreshes_once_validates_and_trains_the_same_bytes_and_keeps_the_champion() -> None:
    """Issue 15: ml-pipeline's refresh job (refresh: true) runs `leanops train-with-cache refresh` with the
    read-only credential and uploads leanops-refreshed-data; validate and train unpack that artifact (the same
    bytes), and are skipped on "no new data"; the gate keeps the champion on refresh and on a schedule. The
    caller template has a commented monthly schedule and a refresh input for workflow_dispatch."""
    pipeline = yaml.safe_load((ROOT / ".github/workflows/ml-pipeline.yml").read_text())
    assert pipeline[True]["workflow_call"]["inputs"]["refresh"]["default"] is False  # YAML 1.1: on is True
    jobs = pipeline["jobs"]
    refresh = jobs["refresh"]
    assert "if" not in refresh and refresh["permissions"] == {"contents": "read"}  # skipped: all after it skip
    assert all("refresh" in st["if"] for st in refresh["steps"])  # no step runs without refresh
    run = next(st for st in refresh["steps"] if st.get("id") == "refresh")
    assert run["run"] == "leanops train-with-cache refresh"
    assert run["env"]["MLFLOW_TRACKING_USERNAME"] == "${{ secrets.MLFLOW_READ_USERNAME }}"
    upload = next(st for st in refresh["steps"] if str(st.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == "${{ format('leanops-refreshed-data{0}', steps.refresh.outputs.artifact-suffix) }}"
    assert upload["with"]["name"][4:-3] in refresh["outputs"]["data-artifact"]  # "" when the step did not run
    assert jobs["validate"]["needs"] == "refresh"
    assert "needs.refresh.outputs.skipped != 'true'" in jobs["validate"]["if"]
    for job in ("validate", "train"):
        assert jobs[job]["with"]["data-artifact"] == (
            "${{ inputs.refresh && needs.refresh.outputs.data-artifact || '' }}")
    assert "validate" in jobs["train"]["needs"]  # skipped validate (no new data): no training
    assert jobs["gate"]["with"]["keep-champion"] == "${{ inputs.refresh || github.event_name == 'schedule' }}"
    gate_wf = yaml.safe_load((ROOT / ".github/workflows/gate-metrics.yml").read_text())
    assert "needs.gate.outputs.passed == 'true'" in gate_wf["jobs"]["promote"]["if"]  # a kept champion stays
    release = jobs["release"]
    promote = next(st for st in release["steps"] if st.get("id") == "promote")
    assert "needs.gate.outputs.passed == 'true'" in promote["if"]
    for wf, job_ids in (("data-validate.yml", ["validate"]), ("train-with-cache.yml", ["train", "train-trusted"])):
        doc = yaml.safe_load((ROOT / ".github/workflows" / wf).read_text())
        for job_id in job_ids:
            steps_ = doc["jobs"][job_id]["steps"]
            i = next(i for i, st in enumerate(steps_)
                     if str(st.get("uses", "")).startswith("actions/download-artifact@")
                     and st["with"]["name"] == "${{ inputs.data-artifact }}")
            kit = next(i for i, st in enumerate(steps_) if "leanops/leanops/actions/" in str(st.get("uses", "")))
            assert i < kit and steps_[i]["with"]["path"] == "${{ inputs.working-directory }}", (wf, job_id)
    template = yaml.safe_load((ROOT / "templates/workflows/ml-pipeline.yml").read_text())
    assert template[True]["workflow_dispatch"]["inputs"]["refresh"]["type"] == "boolean"
    assert template["jobs"]["pipeline"]["with"]["refresh"] == (
        "${{ github.event_name == 'schedule' || inputs.refresh == true }}")
    text = (ROOT / "templates/workflows/ml-pipeline.yml").read_text()
    assert '  # schedule:\n  #   - cron: "17 3 1 * *"' in text


def artifact_flow(path: Path, *, event: str, ref: str, inputs: dict, suffix: str, plan: dict[str, str],
                  seen: dict[str, list]) -> dict[str, object]:
    """One model folder's run through the workflow at `path` (and the reusable workflows it calls): records in
    `seen` the artifact names uploaded and downloaded and the concurrency groups; returns the workflow's outputs.
    Every leanops step of the folder sets artifact-suffix (config.load on a runner) to `suffix`."""
    doc = yaml.safe_load(path.read_text())
    call = ((doc.get(True) or doc.get("on") or {}).get("workflow_call") or {})
    full_inputs = {k: (inputs[k] if k in inputs else (spec or {}).get("default", ""))
                   for k, spec in (call.get("inputs") or {}).items()}
    github = {"event_name": event, "ref": ref, "repository": "acme/models", "run_id": "7", "run_attempt": "1",
              "event": {"repository": {"default_branch": "main"}, "__open__": True}, "__open__": True}
    job_outputs: dict[str, dict] = {}
    ran: dict[str, object] = {}
    for job_id, job, needs in jobs_in_order(doc):
        # a training with bootstrap.predictions: it hands over gate inputs
        steps_ctx: dict = {st["id"]: {"outputs": {"artifact-suffix": suffix, "gate-inputs": "/r/gate-inputs",
                                                  "passed": "true", "evaluated": "3", "skipped": "false",
                                                  "__open__": True}}
                           for st in job.get("steps") or [] if "id" in st}
        ctx = {"github": github, "inputs": full_inputs, "secrets": {"__open__": True}, "vars": {"__open__": True},
               "needs": {n: {"result": "success" if ran[n] is not False else "skipped",
                             "outputs": job_outputs.get(n, {"__open__": True})} for n in needs},
               "matrix": {"__open__": True}, "strategy": {"job-index": 0, "__open__": True},
               "steps": {**steps_ctx, "__open__": True}, "runner": {"temp": "/tmp/r", "__open__": True},
               "env": {"__open__": True}}
        if path.name == "ml-pipeline.yml" and job_id == "plan":
            ran[job_id], job_outputs[job_id] = True, plan
            continue
        cond_text = str(job.get("if", "success()"))
        cond = _truthy(evaluate(cond_text if "${{" in cond_text else "${{ " + cond_text + " }}", ctx))
        if not re.search(r"always\(\)|cancelled\(\)", cond_text) and any(ran[n] is False for n in needs):
            cond = False
        ran[job_id] = cond
        if cond is False:
            continue
        group = (job.get("concurrency") or {}).get("group") if isinstance(job.get("concurrency"), dict) else None
        if group:
            seen["groups"].append(evaluate(group, ctx))
        if isinstance(job.get("uses"), str):
            callee = _kit_file(job["uses"])
            assert callee is not None
            with_ = {k: evaluate(v, ctx) for k, v in (job.get("with") or {}).items()}
            job_outputs[job_id] = {**artifact_flow(callee, event=event, ref=ref, inputs=with_, suffix=suffix,
                                                   plan=plan, seen=seen), "__open__": True}
            continue
        for st in job.get("steps") or []:
            if "if" in st and _truthy(evaluate(
                    "${{ " + str(st["if"]).replace("${{", "").replace("}}", "") + " }}", ctx)) is False:
                continue
            uses = str(st.get("uses", ""))
            for kind in ("upload", "download"):
                if uses.startswith(f"actions/{kind}-artifact@") and "name" in st.get("with", {}):
                    seen[kind].append((f"{path.name}:{job_id}", evaluate(st["with"]["name"], ctx)))
        job_outputs[job_id] = {**{k: evaluate(v, ctx) for k, v in (job.get("outputs") or {}).items()},
                               "__open__": True}
    jobs_ctx = {j: {"outputs": job_outputs.get(j, {})} for j in doc["jobs"]}  # a skipped job's are ""
    return {k: evaluate((spec or {}).get("value", ""), {"jobs": jobs_ctx})
            for k, spec in (call.get("outputs") or {}).items()}


@pytest.mark.parametrize("event,ref,plan", [("pull_request", "refs/pull/1/merge", PR_PLAN),
                                            ("push", "refs/heads/main", MAIN_PLAN)])
@pytest.mark.parametrize("refresh", [False, True])
@pytest.mark.parametrize("folders", [("models/churn", "models/fraud"), (".", "models/fraud")])
def test_two_model_folders_in_one_run_never_share_an_artifact_or_a_concurrency_group(
        event: str, ref: str, plan: dict[str, str], refresh: bool, folders: tuple[str, str]) -> None:
    """Issue 16: a repository with two model folders calls ml-pipeline once per folder in one workflow run.
    Artifacts are the run's: a second upload of a name fails, a download takes whichever folder's it finds. Every
    name the kit uploads carries the folder's artifact-suffix, every download names what its own folder uploaded,
    and the promotion and canary queues are per folder."""
    seen_by: dict[str, dict[str, list]] = {}
    for folder in folders:
        seen: dict[str, list] = {"upload": [], "download": [], "groups": []}
        suffix = "" if folder == "." else "-" + folder.replace("/", "-")
        artifact_flow(ROOT / ".github/workflows/ml-pipeline.yml", event=event, ref=ref, suffix=suffix, plan=plan,
                      inputs={"working-directory": folder, "refresh": refresh, "environment": "production",
                              "deploy": True, "canary": True}, seen=seen)
        seen_by[folder] = seen
        uploaded = [name for _, name in seen["upload"]]
        assert uploaded and all(isinstance(n, str) and n for n in uploaded), seen["upload"]
        assert len(set(uploaded)) == len(uploaded), f"{folder}: one name uploaded twice: {uploaded}"
        for where, name in seen["download"]:
            if name not in ("", UNKNOWN):
                assert name in uploaded, f"{folder}: {where} downloads {name!r}, which no job of the folder uploads"
    a, b = (seen_by[f] for f in folders)
    shared = {n for _, n in a["upload"]} & {n for _, n in b["upload"]}
    assert not shared, f"both folders upload {sorted(shared)}"
    assert not set(map(str, a["groups"])) & set(map(str, b["groups"])), (a["groups"], b["groups"])
    if event == "push":
        assert a["groups"] and b["groups"]  # the release (and canary) queues ran in this walk
    assert any(name.startswith("leanops-gate-inputs") for _, name in a["download"]), a["download"]


def test_a_job_that_did_not_run_has_empty_outputs_under_act_too() -> None:
    """GitHub gives a skipped job's outputs as ""; act evaluates their expressions anyway, with no step output.
    An output with a constant part (format('leanops-gate-inputs{0}', ...)) then names an artifact nobody
    uploaded, and the gate's download failed under act. Every job output of the kit is "" when its steps and
    the jobs it needs produced nothing."""
    bad: list[str] = []
    for path in sorted((ROOT / ".github/workflows").glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        call = ((doc.get(True) or {}).get("workflow_call") or {}) if isinstance(doc.get(True), dict) else {}
        inputs = {k: (spec or {}).get("default", "") for k, spec in (call.get("inputs") or {}).items()}
        for job_id, job, needs in jobs_in_order(doc):
            steps = {st["id"]: {"outputs": {}} for st in job.get("steps") or [] if "id" in st}
            ctx = {"inputs": inputs, "steps": steps,
                   "needs": {n: {"outputs": {}} for n in needs},
                   "github": {"__open__": True}, "runner": {"__open__": True}, "strategy": {"job-index": 0}}
            for name, value in (job.get("outputs") or {}).items():
                got = evaluate(value, ctx)
                bad.append(f"{path.name} {job_id}.outputs.{name} = {got!r}") if got not in ("", False) else None
    assert not bad, bad
