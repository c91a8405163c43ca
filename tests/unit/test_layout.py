"""The package's rooms (CONTRIBUTING.md, "Where things live"), checked by walking every import.

- a capability (``leanops/<name>/``) imports the core and its own package, never another capability;
- the core (the top-level modules of ``leanops``) imports neither a capability nor a tool;
- the tools (``leanops/tools/``) use the core and the capabilities' public faces (``__all__``) only;
- nobody imports another room's private (``_name``) names;
- every capability has the same rooms: ``__init__.py``, ``cli.py``, ``report.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "scripts" / "leanops"
CAPABILITIES = ("data_validate", "train_with_cache", "gate_metrics", "build_push_image", "canary_deploy",
                "weekly_drift")
SHAPE = ("__init__.py", "cli.py", "report.py")
ENTRY = {"leanops.cli", "leanops.__main__"}  # the command itself registers every room


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, package: Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every import in the file, relative ones resolved."""
    name = module_name(path, package)
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                out.append((mod, a.name, node.lineno))
    return out


def room(module: str, capabilities: tuple[str, ...]) -> str:
    """core, tools, entry, cap:<name>, or outside (not ours)."""
    parts = module.split(".")
    if parts[0] != "leanops":
        return "outside"
    if module in ENTRY:
        return "entry"
    if len(parts) == 1:
        return "core"
    if parts[1] in capabilities:
        return f"cap:{parts[1]}"
    if parts[1] == "tools":
        return "tools"
    return "core"


def public_names(package: Path, capability: str) -> set[str]:
    tree = ast.parse((package / capability / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
    return set()


def violations(package: Path, capabilities: tuple[str, ...] = CAPABILITIES) -> list[str]:
    found: list[str] = []
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        me = module_name(path, package)
        mine = room(me, capabilities)
        shown = path.relative_to(package.parent)
        for mod, name, line in imports(path, package):
            theirs = room(mod if name is None or mod.count(".") >= 1 or mod != "leanops" else f"leanops.{name}",
                          capabilities)
            # `from leanops import data_validate` imports a capability (a room), not a name of the core
            if mod == "leanops" and name is not None:
                theirs = room(f"leanops.{name}", capabilities)
            if theirs in ("outside", "entry") and mine != "entry":
                if theirs == "entry":
                    found.append(f"{shown}:{line}: imports the command entry {mod}")
                continue
            where = f"{shown}:{line}: {mod}{'.' + name if name else ''}"
            if mine.startswith("cap:") and theirs.startswith("cap:") and theirs != mine:
                found.append(f"{where}: capability {mine[4:]} imports capability {theirs[4:]}")
            if mine.startswith("cap:") and theirs == "tools":
                found.append(f"{where}: capability {mine[4:]} imports a tool")
            if mine == "core" and theirs.startswith("cap:"):
                found.append(f"{where}: the core imports capability {theirs[4:]}")
            if mine == "core" and theirs == "tools":
                found.append(f"{where}: the core imports a tool")
            if mine == "tools" and theirs.startswith("cap:"):
                cap = theirs[4:]
                deep = mod.count(".") >= 2 or (mod == f"leanops.{cap}" and name not in public_names(package, cap))
                if deep and not (mod == "leanops" and name == cap):
                    found.append(f"{where}: a tool reaches past capability {cap}'s public face")
            if name and name.startswith("_") and theirs != mine and name != "__version__":
                found.append(f"{where}: imports another room's private name")
    for cap in capabilities:
        for room_file in SHAPE:
            if not (package / cap / room_file).is_file():
                found.append(f"leanops/{cap}/{room_file}: missing; every capability has {', '.join(SHAPE)}")
    return found


def test_the_package_keeps_its_rooms() -> None:
    assert violations(PACKAGE) == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "leanops"


@pytest.mark.parametrize(("files", "expected"), [
    ({"leanops/alpha/cli.py": "from ..beta.cli import thing\n"}, "capability alpha imports capability beta"),
    ({"leanops/alpha/cli.py": "from leanops.beta import report\n"}, "capability alpha imports capability beta"),
    ({"leanops/alpha/report.py": "def f():\n    from ..tools import init\n"}, "capability alpha imports a tool"),
    ({"leanops/datasets.py": "from .alpha import run\n"}, "the core imports capability alpha"),
    ({"leanops/datasets.py": "from .tools.init import x\n"}, "the core imports a tool"),
    ({"leanops/tools/init.py": "from ..alpha.cli import helper\n"}, "reaches past capability alpha's public face"),
    ({"leanops/alpha/cli.py": "from ..datasets import _short\n"}, "private name"),
])
def test_the_walk_finds_each_kind_of_crossing(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    base = {f"leanops/{cap}/{f}": "" for cap in ("alpha", "beta") for f in SHAPE}
    base["leanops/alpha/__init__.py"] = '__all__ = ["run"]\n'
    base.update({"leanops/__init__.py": "", "leanops/datasets.py": "", "leanops/tools/__init__.py": ""})
    clean = _write(tmp_path / "clean", base)
    assert violations(clean, ("alpha", "beta")) == []
    bad = _write(tmp_path / "bad", {**base, **files})
    found = violations(bad, ("alpha", "beta"))
    assert any(expected in v for v in found), found


def test_a_capability_missing_a_room_is_named(tmp_path: Path) -> None:
    files = {f"leanops/alpha/{f}": "" for f in ("__init__.py", "cli.py")}
    found = violations(_write(tmp_path, {"leanops/__init__.py": "", **files}), ("alpha",))
    assert found == ["leanops/alpha/report.py: missing; every capability has __init__.py, cli.py, report.py"]
