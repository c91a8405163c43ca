"""Self-references and releases.

Reusable workflows reference the kit's own actions as ``leanops/leanops/actions/NAME@REF`` (act does not
understand ``$/``; ``./`` would resolve in the caller's repository). On main REF is ``main``; a
release rewrites every self-reference to ``vX.Y.Z`` and can retarget the slug for a fork.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from . import gh
from .errors import BadInput
from .flags import add_flag
from .fsutil import atomic_write

SLUG = "leanops/leanops"
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
SLUG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9._-]+$")
# Files whose self-references must agree: the kit's YAML and what adopters copy. (The README and docs
# show adopters the recommended `@v1` pin and are not rewritten.)
GLOBS = (
    "action.yml",
    "actions/*/action.yml",
    ".github/workflows/*.yml",
    ".github/zizmor.yml",
    "templates/**/*.yml",
    "templates/**/*.yaml",
    "examples/**/*.yml",
    "tests/act/*.sh",
)


def self_ref_pattern(slug: str) -> re.Pattern[str]:
    """``uses: SLUG[/path]@REF`` with the ref captured."""
    return re.compile(r"(?P<head>uses:\s*['\"]?" + re.escape(slug) + r"(?:/[^@\s'\"]+)?@)(?P<ref>[^\s'\"#`]+)")


@dataclass(frozen=True)
class SelfRef:
    file: Path
    line: int
    ref: str
    text: str


def files(root: Path) -> list[Path]:
    out: set[Path] = set()
    for pattern in GLOBS:
        out.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(out)


def find_self_refs(root: Path, slug: str = SLUG) -> list[SelfRef]:
    pattern = self_ref_pattern(slug)
    refs: list[SelfRef] = []
    for path in files(root):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for m in pattern.finditer(line):
                refs.append(SelfRef(path.relative_to(root), i, m.group("ref"), line.strip()))
    return refs


def rewrite(root: Path, ref: str, *, slug: str = SLUG, new_slug: str | None = None) -> list[Path]:
    """Point every self-reference at ``ref`` (and ``new_slug``); returns the files changed."""
    target = new_slug or slug
    pattern = self_ref_pattern(slug)
    changed: list[Path] = []
    for path in files(root):
        text = path.read_text(encoding="utf-8")
        new = pattern.sub(lambda m: m.group("head").replace(slug, target) + ref, text)
        if path.name == "zizmor.yml" and new_slug:
            new = new.replace(f'"{slug}"', f'"{target}"').replace(f'"{slug}/*"', f'"{target}/*"')
        if new != text:
            atomic_write(path, new)
            changed.append(path)
    return changed


def set_version(root: Path, version: str) -> None:
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    new, n = re.subn(r'(?m)^version = "[^"]*"', f'version = "{version}"', text, count=1)
    if n != 1:
        raise BadInput("no version line in [project]", file=str(pyproject))
    atomic_write(pyproject, new)
    init = root / "scripts/leanops/__init__.py"
    atomic_write(init, re.sub(r'__version__ = "[^"]*"', f'__version__ = "{version}"', init.read_text("utf-8")))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("release", help="rewrite the kit's self-references for a release (maintainers)")
    p.add_argument("version", help="X.Y.Z, or 'main' to point back at the main branch")
    add_flag(p, "--root", help="the kit's checkout", default=".")
    add_flag(p, "--slug", help="owner/repo to retarget the self-references to (a fork)", default=SLUG)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not (root / "action.yml").is_file():
        raise BadInput("no action.yml here; expected the root of the leanops checkout", file=str(root))
    if not SLUG_RE.match(args.slug):
        raise BadInput(f"--slug: expected owner/repo, got {args.slug!r}")
    if args.version == "main":
        ref = "main"
    elif SEMVER.match(args.version.removeprefix("v")):
        ref = "v" + args.version.removeprefix("v")
    else:
        raise BadInput(f"version: expected X.Y.Z or main, got {args.version!r}")
    current = {r.ref for r in find_self_refs(root)}
    if len(current) > 1:
        gh.warning(f"self-references disagreed before the release: {sorted(current)}")
    changed = rewrite(root, ref, new_slug=None if args.slug == SLUG else args.slug)
    if ref != "main":
        set_version(root, ref[1:])
    for path in changed:
        gh.step(f"rewrote {path.relative_to(root)}")
    if ref != "main":
        major = ref.split(".")[0]
        gh.step("next:\n"
                f"  git commit -am 'release {ref}'\n"
                f"  git tag -s {ref} -m {ref}           # immutable\n"
                f"  git tag -f {major} {ref}             # moving major tag\n"
                f"  git push origin {ref} && git push -f origin {major}")
    return 0
