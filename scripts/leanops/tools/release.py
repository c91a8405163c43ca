"""Self-references and releases.

Reusable workflows reference the kit's own actions as ``leanops/leanops/actions/NAME@REF`` (act does not
understand ``$/``; ``./`` would resolve in the caller's repository). On main REF is ``main``; a
release rewrites every self-reference to ``vX.Y.Z`` and can retarget the slug for a fork.

``make release VERSION=X.Y.Z`` (``leanops release X.Y.Z``): the version (pyproject.toml, ``__version__``,
uv.lock's own entry), ``CHANGELOG.md`` (the ``## Unreleased`` notes become ``## [X.Y.Z] - DATE``), every
self-reference of the kit's YAML (``@vX.Y.Z``), the major pins the README and docs show adopters (``@vX``),
then the tag commands: ``vX.Y.Z`` never moves, ``vX`` is moved to it.
"""

from __future__ import annotations

import argparse
import datetime
import re
from dataclasses import dataclass
from pathlib import Path

from .. import gh
from ..errors import BadInput
from ..flags import add_flag
from ..fsutil import atomic_write

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


CHANGELOG = "CHANGELOG.md"
UNRELEASED = "## Unreleased"
CHANGELOG_HEAD = """# Changelog

All notable changes of leanops. Versions follow semantic versioning; pin `@vX` (moves with compatible
releases), `@vX.Y.Z` (never moves) or a commit SHA. `make release VERSION=X.Y.Z` moves the notes under
Unreleased into the new version.

"""
# The pins adopters read in the README and docs: `leanops/leanops[/path]@vN` (a major only)
MAJOR_PIN = re.compile(r"(?P<head>" + re.escape(SLUG) + r"(?:/[^@\s'\"`]+)?@)v\d+(?![\d.])")


def update_changelog(root: Path, version: str, date: str) -> Path:
    """Move the Unreleased notes under ``## [version] - date``, leaving an empty Unreleased section."""
    path = root / CHANGELOG
    text = path.read_text(encoding="utf-8") if path.is_file() else CHANGELOG_HEAD + UNRELEASED + "\n"
    if re.search(r"(?m)^## \[" + re.escape(version) + r"\]", text):
        raise BadInput(f"already has a section for {version}; expected a new version", file=CHANGELOG)
    m = re.search(r"(?m)^## Unreleased[ \t]*\n", text)
    if m is None:
        raise BadInput(f'no "{UNRELEASED}" section; expected one above the released versions for the notes of '
                       "the next release", file=CHANGELOG)
    nxt = re.search(r"(?m)^## ", text[m.end():])
    end = m.end() + nxt.start() if nxt else len(text)
    notes = text[m.end():end].strip("\n")
    if not notes.strip():
        notes = "- No notable changes."
    new = f"{text[:m.start()]}{UNRELEASED}\n\n## [{version}] - {date}\n\n{notes}\n\n{text[end:].lstrip(chr(10))}"
    atomic_write(path, new.rstrip("\n") + "\n")
    return path


def move_major_pins(root: Path, major: str) -> list[Path]:
    """README.md and docs/*.md: ``@vN`` pins of the kit become ``@{major}`` (a new major version)."""
    changed = []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = MAJOR_PIN.sub(lambda m: m.group("head") + major, text)
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
    lock = root / "uv.lock"  # the project's own entry, so `uv lock --check` stays true
    if lock.is_file():
        text = lock.read_text(encoding="utf-8")
        new = re.sub(r'(?m)(^name = "leanops"\nversion = )"[^"]*"', lambda m: f'{m.group(1)}"{version}"', text, count=1)
        if new != text:
            atomic_write(lock, new)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("release", help="rewrite the kit's self-references for a release (maintainers)")
    p.add_argument("version", help="X.Y.Z, or 'main' to point back at the main branch")
    add_flag(p, "--root", help="the kit's checkout", default=".")
    add_flag(p, "--slug", help="owner/repo to retarget the self-references to (a fork)", default=SLUG)
    add_flag(p, "--date", help="the release date in CHANGELOG.md (YYYY-MM-DD; default today, UTC)", default="")
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
    date = args.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", date):
        raise BadInput(f"--date: expected YYYY-MM-DD, got {date!r}")
    if ref != "main":
        update_changelog(root, ref[1:], date)  # first: a refused changelog leaves the tree untouched
    changed = rewrite(root, ref, new_slug=None if args.slug == SLUG else args.slug)
    if ref != "main":
        set_version(root, ref[1:])
        changed += move_major_pins(root, ref.split(".")[0])
        changed += [root / "pyproject.toml", root / "scripts/leanops/__init__.py", root / CHANGELOG]
    for path in changed:
        gh.step(f"rewrote {path.relative_to(root)}")
    if ref != "main":
        major = ref.split(".")[0]
        print("next (the tag vX.Y.Z never moves; the major tag moves to it):\n"
              f"  git add {CHANGELOG} && git commit -am 'release {ref}'\n"
              f"  git tag -s {ref} -m {ref}\n"
              f"  git tag -f {major} {ref}\n"
              f"  git push origin {ref} && git push -f origin {major}\n"
              f"  leanops release main   # then point main's self-references back at main and commit", flush=True)
    return 0
