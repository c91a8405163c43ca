"""``leanops docs [--check]``: the inputs, outputs and secrets tables of ``docs/NAME.md``, generated from the
``actions/NAME/action.yml`` and ``.github/workflows/NAME.yml`` they describe.

A table lives between two markers naming its kind and its source (relative to the kit's root)::

    <!-- leanops:inputs actions/NAME/action.yml -->
    | input | required | default | description |
    ...
    <!-- /leanops:inputs -->

Kinds: ``inputs``, ``outputs`` and (workflows only) ``secrets``. ``leanops docs`` rewrites every block and
adds the blocks a capability's page lacks (a "Reference" section at its end); ``--check`` changes nothing
and exits 1 naming each page whose tables disagree with the YAML (CI runs it through tests/unit/test_docs.py).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import gh
from ..errors import BadInput, CheckFailed
from ..fsutil import atomic_write

KINDS = ("inputs", "outputs", "secrets")
BLOCK = re.compile(r"<!-- leanops:(?P<kind>[a-z]+) (?P<source>\S+) -->\n(?P<body>.*?)<!-- /leanops:(?P=kind) -->",
                   re.DOTALL)
REFERENCE_HEADING = "## Reference (generated from the action and the workflow)"


@dataclass(frozen=True)
class Block:
    kind: str
    source: str
    body: str
    line: int


def kit_root() -> Path:
    return Path(__file__).resolve().parents[3]


def _load(root: Path, source: str) -> dict[Any, Any]:
    path = root / source
    if not path.is_file():
        raise BadInput(f"{source} does not exist; expected an action.yml or a workflow of the kit")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BadInput(f"not valid YAML: {' '.join(str(exc).split())}", file=source) from None
    if not isinstance(doc, dict):
        raise BadInput("expected a mapping at the top", file=source)
    return doc


def interface(root: Path, source: str) -> dict[str, dict[str, Any]]:
    """``{"inputs": {...}, "outputs": {...}, "secrets": {...}}`` of an action.yml or a reusable workflow."""
    doc = _load(root, source)
    if source.endswith("action.yml") or source.endswith("action.yaml"):
        return {"inputs": doc.get("inputs") or {}, "outputs": doc.get("outputs") or {}, "secrets": {}}
    on = doc.get("on", doc.get(True)) or {}  # PyYAML reads the key `on` as True
    call = (on.get("workflow_call") if isinstance(on, dict) else None) or {}
    return {kind: call.get(kind) or {} for kind in KINDS}


def _text(value: Any) -> str:
    return " ".join(str(value or "").split())


def _default(spec: dict[str, Any]) -> str:
    if "default" not in spec:
        return "—"
    value = spec["default"]
    if isinstance(value, bool):
        value = str(value).lower()
    text = _text(value)
    return f"`{text}`" if text else '`""`'


def _required(spec: dict[str, Any]) -> str:
    return "yes" if spec.get("required") else "no"


def table(root: Path, kind: str, source: str) -> str:
    """The markdown table of one kind of one file (names in the file's order)."""
    if kind not in KINDS:
        raise BadInput(f"unknown table kind {kind!r}; expected one of {', '.join(KINDS)}")
    items = interface(root, source)[kind]
    workflow = not source.endswith(("action.yml", "action.yaml"))
    if kind == "inputs":
        headers = ["input", *(["type"] if workflow else []), "required", "default", "description"]
        rows = [[f"`{name}`", *([spec.get("type", "string")] if workflow else []), _required(spec), _default(spec),
                 _text(spec.get("description"))] for name, spec in items.items()]
    elif kind == "secrets":
        headers = ["secret", "required", "description"]
        rows = [[f"`{name}`", _required(spec), _text(spec.get("description"))] for name, spec in items.items()]
    else:
        headers = ["output", "description"]
        rows = [[f"`{name}`", _text(spec.get("description"))] for name, spec in items.items()]
    if not rows:
        return f"(no {kind})\n"
    return gh.md_table(headers, rows)


def blocks(text: str) -> list[Block]:
    return [Block(m["kind"], m["source"], m["body"], text.count("\n", 0, m.start()) + 1) for m in BLOCK.finditer(text)]


def render(root: Path, text: str) -> str:
    """``text`` with every block's table regenerated."""
    def one(m: re.Match[str]) -> str:
        return (f"<!-- leanops:{m['kind']} {m['source']} -->\n{table(root, m['kind'], m['source'])}"
                f"<!-- /leanops:{m['kind']} -->")
    return BLOCK.sub(one, text)


def capability_sources(root: Path, name: str) -> list[str]:
    """The files a capability's page must carry tables of: its action and its reusable workflow."""
    out = [f"actions/{name}/action.yml", f".github/workflows/{name}.yml"]
    return [s for s in out if (root / s).is_file()]


def wanted(root: Path, name: str) -> list[tuple[str, str]]:
    """(kind, source) blocks the page of capability ``name`` must have: every kind its files define."""
    pairs = []
    for source in capability_sources(root, name):
        iface = interface(root, source)
        pairs += [(kind, source) for kind in KINDS if iface[kind] or kind == "inputs"]
    return pairs


def pages(root: Path) -> list[Path]:
    """docs/NAME.md of each capability (actions/NAME) or reusable workflow that has a page, plus any page
    with a block."""
    out = set()
    for path in sorted((root / "docs").glob("*.md")):
        name = path.stem
        if capability_sources(root, name) or BLOCK.search(path.read_text(encoding="utf-8")):
            out.add(path)
    return sorted(out)


def missing(root: Path, page: Path, text: str) -> list[tuple[str, str]]:
    have = {(b.kind, b.source) for b in blocks(text)}
    return [pair for pair in wanted(root, page.stem) if pair not in have]


def with_missing(root: Path, page: Path, text: str) -> str:
    """Append the blocks a page lacks under a generated Reference section."""
    lacking = missing(root, page, text)
    if not lacking:
        return text
    if REFERENCE_HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{REFERENCE_HEADING}\n"
    for kind, source in lacking:
        title = "Reusable workflow" if source.startswith(".github/") else "Composite action"
        text = text.rstrip("\n") + (f"\n\n{title} `{source}`, {kind}:\n\n<!-- leanops:{kind} {source} -->\n"
                                    f"<!-- /leanops:{kind} -->\n")
    return text


def problems(root: Path, page_list: Iterable[Path] | None = None) -> list[str]:
    """One line per page whose tables are missing or disagree with the YAML."""
    out: list[str] = []
    for page in page_list if page_list is not None else pages(root):
        rel = page.relative_to(root).as_posix()
        text = page.read_text(encoding="utf-8")
        # a page that carries generated tables must carry all of them; `leanops docs` adds them to a new page
        for kind, source in missing(root, page, text) if blocks(text) else []:
            out.append(f"{rel}: no {kind} table of {source}; expected a <!-- leanops:{kind} {source} --> block "
                       "(run `leanops docs`)")
        for block in blocks(text):
            if block.body != table(root, block.kind, block.source):
                out.append(f"{rel}:{block.line}: the {block.kind} table of {block.source} disagrees with the file "
                           "(run `leanops docs`)")
    return out


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("docs", help="generate the inputs/outputs tables of docs/ from action.yml and workflows "
                       "(maintainers)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table disagrees")
    p.add_argument("--root", default=None, help="the kit's checkout (default: the one this leanops runs from)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root else kit_root()
    if not (root / "docs").is_dir():
        raise BadInput("no docs/ here; expected the root of the leanops checkout", file=str(root))
    if args.check:
        found = problems(root)
        for line in found:
            gh.error(line) if gh.on_runner() else print(line)
        if found:
            raise CheckFailed(f"{len(found)} docs tables disagree with the actions and workflows; run `leanops docs`")
        gh.step(f"leanops docs: {len(pages(root))} pages agree with their actions and workflows")
        return 0
    changed = 0
    for page in pages(root):
        text = page.read_text(encoding="utf-8")
        new = render(root, with_missing(root, page, text))
        if new != text:
            atomic_write(page, new)
            changed += 1
            gh.step(f"rewrote {page.relative_to(root).as_posix()}")
    gh.step(f"leanops docs: {changed} pages rewritten")
    return 0
