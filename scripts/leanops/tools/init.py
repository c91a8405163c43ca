"""``leanops init [DIR]``: scaffold an adopting repository from the kit's ``templates/``.

Writes the caller workflows (``ml-pipeline``, ``weekly-drift``), ``leanops.yml``, a ``dvc.yaml`` with one
``train`` stage and its starter ``src/train.py`` and ``params.yaml``, the DVC project files, the model
server ``Dockerfile`` and, given ``--data``, a starter Great Expectations suite profiled from that file
(``leanops data-validate init``). Idempotent: a file that is already there is kept (``--force`` overwrites
it); it prints what it wrote and the next steps.

The templates are the one source of truth: in a checkout they are ``templates/`` at the kit's root; in a
wheel, ``leanops/templates`` (pyproject.toml force-includes them).
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import gh, tasks
from ..errors import BadInput, InfraError
from ..fsutil import atomic_write, templates_dir

# template (relative to templates/) -> where it lands in the adopting repository
WORKFLOWS = {
    "workflows/ml-pipeline.yml": ".github/workflows/ml-pipeline.yml",
    "workflows/weekly-drift.yml": ".github/workflows/weekly-drift.yml",
}
PROJECT = "project"  # templates/project/** lands at the repository's root
TASKS = "tasks"  # templates/tasks/<task>/**: what differs from project/ for a multiclass or regression model
TASK_GATES = "gates.yml"  # ... whose train-with-cache and gate-metrics sections replace leanops.yml's
DOCKERFILE = {"Dockerfile": "Dockerfile"}
# values in the templates that init replaces (each is valid as it stands, so a template can be copied by hand)
DEFAULT_MODEL = "my-model"
DEFAULT_DATA = "data/raw/data.csv"
DEFAULT_SUITE = "expectations/data.json"
DEFAULT_TARGET = "label"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ID_COLUMN = re.compile(r"(^|_)id$", re.IGNORECASE)


def template_files(task: str = tasks.BINARY) -> dict[str, Path]:
    """Destination (relative to the repository) -> template file; a multiclass or regression project takes its
    task's train stage, params and dvc.yaml from ``templates/tasks/<task>/``."""
    root = templates_dir()
    out = {dest: root / src for src, dest in {**WORKFLOWS, **DOCKERFILE}.items()}
    folders = [root / PROJECT] + ([root / TASKS / task] if task != tasks.BINARY else [])
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.name != TASK_GATES:
                out[path.relative_to(folder).as_posix()] = path
    return out


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init", help="scaffold an adopting repository: workflows, leanops.yml, dvc.yaml, Dockerfile")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR",
                   help="the model's folder (default .): the repository's root, or a folder inside a git repository "
                   "for one more model (its workflows go to the root's .github/workflows, named after the model)")
    p.add_argument("--data", default=None, help="a CSV or Parquet file: copied under data/raw/ when outside DIR, "
                   "named in leanops.yml and dvc.yaml, and profiled into a starter suite")
    p.add_argument("--suite", default=None,
                   help=f"where the starter suite goes, relative to DIR (default expectations/<data name>.json, "
                   f"without --data {DEFAULT_SUITE})")
    p.add_argument("--model-name", default=None, help="registered model name in MLflow (default: DIR's name)")
    p.add_argument("--target", default=None,
                   help="the column to predict, for the starter src/train.py (default: the data's last column)")
    p.add_argument("--task", default=None, choices=list(tasks.TASKS),
                   help="what the model predicts: the starter stage and gates (binary: roc_auc, f1; multiclass: "
                   "f1_macro, log_loss; regression: rmse, mae, r2). Default: inferred from --data's target, else "
                   "binary")
    p.add_argument("--force", action="store_true", help="overwrite files that exist and differ")
    p.set_defaults(func=run)


@dataclass
class Plan:
    root: Path
    model: str
    data: str = DEFAULT_DATA
    suite: str = DEFAULT_SUITE
    target: str = DEFAULT_TARGET
    drop: list[str] = field(default_factory=list)
    task: str = tasks.BINARY
    task_how: str = "the default"
    repo: Path | None = None  # the git repository DIR is inside, when DIR is not its root (one more model)
    folder: str = "."         # DIR relative to repo: the workflows' working-directory
    publish: str = ""         # the canary router's port when another model of the repository has the default

    def workflow_name(self, dest: str) -> str:
        """Where a caller workflow lands: the root's .github/workflows; a model below the root names its own
        after the model (ml-pipeline-fraud.yml), so a repository's models never share or overwrite one."""
        if self.repo is None:
            return dest
        path = Path(dest)
        return str(path.with_name(f"{path.stem}-{self.model}{path.suffix}"))

    def render(self, dest: str, text: str) -> str:
        """The template's text with this repository's names in place of the defaults."""
        if dest in WORKFLOWS.values() and self.repo is not None:
            text = re.sub(r"(?m)^(      working-directory: )\.(\s)", lambda m: m.group(1) + self.folder + m.group(2),
                          text, count=1)
            text = re.sub(r"(?m)^name: (\S+)$", lambda m: f"name: {m.group(1)} ({self.model})", text, count=1)
            text = (f"# The caller workflow of the model in {self.folder}, one of the repository's models (`leanops "
                    f"init {self.folder}`).\n") + text
        if dest == "leanops.yml" and self.publish:
            text = text.replace('publish: "127.0.0.1:8080"', f'publish: "{self.publish}"')
        if dest == "leanops.yml":
            text = text.replace(f"name: {DEFAULT_MODEL} ", f"name: {self.model} ")
            if self.task != tasks.BINARY:
                text = self.task_sections(text)
        if dest in ("leanops.yml", "dvc.yaml", "params.yaml"):
            text = text.replace(DEFAULT_DATA, self.data)
        if dest == "leanops.yml":
            text = text.replace(DEFAULT_SUITE, self.suite)
        if dest == "params.yaml":
            text = re.sub(r"(?m)^(  target: )\S+", lambda m: m.group(1) + _yaml_scalar(self.target), text)
            if self.drop:
                text = text.replace("drop: []", "drop: [" + ", ".join(_yaml_scalar(c) for c in self.drop) + "]")
        return text


    def task_sections(self, text: str) -> str:
        """leanops.yml for a multiclass or regression model: model.task, and the train-with-cache and gate-metrics
        sections of ``templates/tasks/<task>/gates.yml`` in place of the binary ones."""
        gates = (templates_dir() / TASKS / self.task / TASK_GATES).read_text(encoding="utf-8")
        start, end = text.find("\ntrain-with-cache:\n"), text.find("\nbuild-push-image:")
        path = re.search(r"(?m)^  path: .*\n", text)
        if start < 0 or end < start or path is None:
            raise InfraError("templates/project/leanops.yml: no model.path line, or no train-with-cache section "
                             "before build-push-image; expected the kit's own template")
        text = text[:start + 1] + gates + text[end + 1:]
        at = path.end()
        return text[:at] + f"  task: {self.task}".ljust(33) + "# binary | multiclass | regression\n" + text[at:]


def _yaml_scalar(value: str) -> str:
    import yaml

    return yaml.safe_dump(value, default_style=None).strip().removesuffix("...").strip()


def _rel_to(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _header(path: Path) -> list[str]:
    if path.suffix.lower() not in (".csv", ".tsv"):
        return []
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        row = next(csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ","), [])
    return [c.strip() for c in row]


def plan(args: argparse.Namespace, root: Path) -> tuple[Plan, Path | None]:
    """Names for the templates and, with --data, the data file to copy in (None when it is inside DIR)."""
    model = args.model_name or re.sub(r"[^A-Za-z0-9_.-]+", "-", root.resolve().name).strip("-._") or DEFAULT_MODEL
    if not MODEL_NAME.match(model):
        raise BadInput("--model-name: expected letters, digits, '_', '.' or '-' (first a letter or digit), "
                       f"got {model!r}")
    p = Plan(root=root, model=model)
    repo = git_root(root)
    if repo is not None and repo != root.resolve():
        p.repo, p.folder = repo, root.resolve().relative_to(repo).as_posix()
        ignored = git_ignores(repo, p.folder)
        if ignored:
            raise BadInput(f"{p.folder}: git ignores this folder ({ignored}), so its files would never be committed; "
                           "expected a folder git keeps (the root model's .gitignore ignores /models/: its output)")
        p.publish = free_router_port(repo, root.resolve())
    copy_from: Path | None = None
    if args.data:
        src = Path(args.data)
        if not src.is_file():
            raise BadInput("data file not found; expected a CSV or Parquet file", file=args.data)
        inside = _rel_to(src, root)
        if inside is None:
            copy_from = src
            inside = f"data/raw/{src.name}"
        p.data = inside
        p.suite = f"expectations/{Path(inside).name.split('.')[0]}.json"
        columns = _header(src)
        if args.target and columns and args.target not in columns:
            raise BadInput(f"--target: {args.target!r} is no column of the data; expected one of {', '.join(columns)}",
                           file=args.data)
        if columns:
            p.target = args.target or columns[-1]
            p.drop = [c for c in columns if ID_COLUMN.search(c) and c != p.target]
            if not args.task:
                target = tasks.look(_column(src, p.target))
                if target.rows:
                    p.task = tasks.infer(target)
                    p.task_how = f"inferred from {p.target}: {target.describe()}; --task chooses another"
    if args.target:
        p.target = args.target
    if args.task:
        p.task, p.task_how = args.task, "--task"
    if args.suite:
        suite = Path(args.suite)
        p.suite = (_rel_to(suite, root) if suite.is_absolute() else suite.as_posix()) or args.suite
    return p, copy_from


def git_root(path: Path) -> Path | None:
    """The git repository ``path`` is (or will be) inside: the nearest folder up from it holding ``.git``."""
    here = path.resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def git_ignores(repo: Path, folder: str) -> str:
    """The .gitignore line that ignores ``folder`` of ``repo`` ("source:line: pattern"), or "" when git keeps it."""
    import subprocess

    res = subprocess.run(["git", "check-ignore", "-v", "--no-index", f"{folder}/leanops.yml"], cwd=repo,
                         capture_output=True, text=True, check=False)
    return res.stdout.split("\t", 1)[0].strip() if res.returncode == 0 else ""


ROUTER_PUBLISH = re.compile(r"""(?m)^\s+publish:\s*["']?(?:[0-9.]+:)?(\d+)["']?""")


def free_router_port(repo: Path, root: Path) -> str:
    """The canary router's address for one more model: 127.0.0.1 and the first port from 8080 that no other
    leanops.yml of the repository publishes (two routers on one Docker host cannot share a port)."""
    taken = set()
    for other in repo.rglob("leanops.y*ml"):
        if other.parent.resolve() != root and ".git" not in other.parts:
            taken |= {int(m.group(1)) for m in ROUTER_PUBLISH.finditer(other.read_text(encoding="utf-8",
                                                                                      errors="replace"))}
    port = 8080
    while port in taken:
        port += 1
    return "" if port == 8080 else f"127.0.0.1:{port}"


def _column(path: Path, name: str) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        rows = csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        header = [c.strip() for c in next(rows, [])]
        i = header.index(name)
        return [r[i] for r in rows if len(r) > i]


def place(path: Path, text: str | bytes, *, force: bool, mode: int = 0o644) -> str:
    """Write one file unless it is there already; returns what happened (wrote, unchanged, kept, overwrote)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.exists():
        if path.is_file() and path.read_bytes() == data:
            return "unchanged"
        if not force:
            return "kept"
        atomic_write(path, data, mode=mode)
        return "overwrote"
    atomic_write(path, data, mode=mode)
    return "wrote"


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        raise BadInput("not a directory; expected the repository to scaffold", file=args.dir)
    p, copy_from = plan(args, root)
    root.mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, str]] = []
    for dest, src in template_files(p.task).items():
        text = p.render(dest, src.read_text(encoding="utf-8"))
        where, shown = root / dest, dest
        if dest in WORKFLOWS.values() and p.repo is not None:  # one more model: the repository's workflows
            shown = p.workflow_name(dest)
            where = p.repo / shown
        results.append((place(where, text, force=args.force, mode=src.stat().st_mode & 0o777), shown))
    if copy_from is not None:
        target = root / p.data
        if target.exists() and not args.force:
            same = target.read_bytes() == copy_from.read_bytes()
            results.append(("unchanged" if same else "kept", p.data))
        else:
            existed = target.exists()
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(copy_from, tmp)
            tmp.replace(target)
            results.append(("overwrote" if existed else "wrote", p.data))
    if args.data:
        results.append((_suite(root, p, force=args.force), p.suite))
    if p.repo is not None:
        print(f"one more model in the repository {p.repo}: its files in {p.folder}, its caller workflows "
              f"{p.workflow_name(WORKFLOWS['workflows/ml-pipeline.yml'])} and "
              f"{p.workflow_name(WORKFLOWS['workflows/weekly-drift.yml'])} (working-directory: "
              f"{p.folder})" + (f", its canary router on {p.publish}" if p.publish else ""))
    for what, dest in results:
        note = {"kept": "  (exists and differs; --force overwrites it)", "exists": "  (--force profiles it again)"}
        print(f"  {what:<9} {dest}{note.get(what, '')}")
    wrote = sum(1 for what, _ in results if what in ("wrote", "overwrote"))
    kept = sum(1 for what, _ in results if what == "kept")
    gh.step(f"leanops init: {wrote} files written, {kept} kept, {len(results) - wrote - kept} unchanged in {root}")
    print(f"task: {p.task} ({p.task_how})")
    print(next_steps(p, has_data=bool(args.data)))
    return 0


def _suite(root: Path, p: Plan, *, force: bool) -> str:
    """The starter suite from the data, by ``leanops data-validate init`` (the one profiler)."""
    from .. import data_validate

    suite = root / p.suite
    existed = suite.exists()
    if existed and not force:
        return "exists"
    try:
        data_validate.import_gx()
    except ImportError:
        raise InfraError("the starter suite needs Great Expectations: install leanops with the 'data-validate' "
                         f"extra, then run `leanops init` again (the other files are written; {p.suite} is not)"
                         ) from None
    data_validate.run_init(argparse.Namespace(
        config=str(root / "leanops.yml"), dataset=str(root / p.data), suite=str(suite), force=force,
        margin=0.1, max_categories=20,
    ))
    return "overwrote" if existed else "wrote"


def next_steps(p: Plan, *, has_data: bool) -> str:
    data = "" if has_data else (f"  0. put your data at {p.data} and run "
                                f"`leanops data-validate init {p.data} --suite {p.suite}`\n")
    return (
        "\nnext steps:\n" + data
        + f"  1. review params.yaml (train.target: {p.target}) and the suite {p.suite}; "
        "`dvc repro` trains locally\n"
        "  2. git add -A && git commit -m 'leanops init', push a branch and open a pull request: ml-pipeline "
        "validates the data, trains and gates the model (the report lands as a comment)\n"
        "  3. a tracking server (optional; the deployment half needs one). Write credentials live in the GitHub "
        "environment `production`, which only the default branch and release tags may use; pull requests get the "
        "read-only user alone (docs/security.md in leanops):\n"
        "       gh api -X PUT 'repos/{owner}/{repo}/environments/production' "
        "-F 'deployment_branch_policy[protected_branches]=false' "
        "-F 'deployment_branch_policy[custom_branch_policies]=true'\n"
        "       gh api -X POST 'repos/{owner}/{repo}/environments/production/deployment-branch-policies' "
        "-f name=main -f type=branch\n"
        "       gh api -X POST 'repos/{owner}/{repo}/environments/production/deployment-branch-policies' "
        "-f name='v*' -f type=tag\n"
        "       gh secret set MLFLOW_TRACKING_USERNAME --env production; "
        "gh secret set MLFLOW_TRACKING_PASSWORD --env production   # may write\n"
        "       gh secret set DOCKER_HOST --env production   # where the canary runs (or KUBECONFIG_DATA)\n"
        "       gh secret set MLFLOW_TRACKING_URI; gh secret set MLFLOW_READ_USERNAME; "
        "gh secret set MLFLOW_READ_PASSWORD   # repository secrets: read-only\n"
        "     optional: LEANOPS_WEBHOOK_URL (repository secret) for Slack-compatible notifications\n"
        "  4. weekly drift: set weekly-drift.current in leanops.yml to what the model saw lately\n"
        "  run it locally: `leanops act pull_request` (docs/local-act.md)"
    )
