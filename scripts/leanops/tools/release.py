"""Self-references and releases.

Reusable workflows reference the kit's own actions as ``leanops/leanops/actions/NAME@REF``, ml-pipeline its
reusable workflows as ``leanops/leanops/.github/workflows/NAME.yml@REF``, every composite action the root
action as ``leanops/leanops@REF`` (act does not understand ``$/``; ``./`` would resolve in the caller's
repository). REF is always a full commit SHA, so that a pin of the kit (by tag or by SHA) names everything it
runs, for good: a branch or tag inside would let whatever it points at later run under the adopter's pin.

``make release VERSION=X.Y.Z`` (``leanops release X.Y.Z``) on a clean checkout makes the release in commits:
  1. the code: the version (pyproject.toml, ``__version__``, uv.lock's own entry), ``CHANGELOG.md`` (the
     ``## Unreleased`` notes become ``## [X.Y.Z] - DATE``), the major pins the README and docs show (``@vX``);
  2. pin commits, each pointing every self-reference at the commit before it (``@SHA # vX.Y.Z``), as many as
     the longest chain of self-references (template -> ml-pipeline -> train-with-cache -> its action -> the
     setup action: 4), so that every file a chain reaches, at whatever commit, is the released code;
then the annotated tag ``vX.Y.Z`` on the last commit, and prints the push commands (``vX`` moves to it).
Between releases main keeps the last release's pins. ``leanops release pin`` points every self-reference at
HEAD in one commit (the first pin, or after a fork's ``--slug``).
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import gh
from ..errors import BadInput, InfraError
from ..flags import add_flag
from ..fsutil import atomic_write

SLUG = "leanops/leanops"
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
SLUG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9._-]+$")
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
# Files whose self-references must agree: the kit's YAML and what adopters copy. (The README and docs
# show adopters the recommended `@v1` pin and are not rewritten.)
GLOBS = (
    "action.yml",
    "actions/*/action.yml",
    ".github/workflows/*.yml",
    "templates/**/*.yml",
    "templates/**/*.yaml",
    "examples/**/*.yml",
    "tests/act/*.sh",
)


def self_ref_pattern(slug: str) -> re.Pattern[str]:
    """``uses: SLUG[/path]@REF [# comment]`` with the path, the ref and the comment captured."""
    return re.compile(r"(?P<head>uses:\s*(?P<q>['\"]?)" + re.escape(slug) + r"(?P<path>/[^@\s'\"]+)?@)"
                      r"(?P<ref>[^\s'\"#`]+)(?P<close>['\"]?)(?P<comment>[ \t]+#[^\n]*)?")


@dataclass(frozen=True)
class SelfRef:
    file: Path
    line: int
    ref: str
    text: str
    path: str = ""  # "", "/actions/NAME" or "/.github/workflows/NAME.yml"
    comment_line: bool = False  # the reference sits in a YAML or shell comment (documentation)

    def target(self) -> str:
        """The file of the kit it names."""
        p = self.path.lstrip("/")
        return p if p.endswith((".yml", ".yaml")) else f"{p}/action.yml" if p else "action.yml"


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
                refs.append(SelfRef(path.relative_to(root), i, m.group("ref"), line.strip(), m.group("path") or "",
                                    line.lstrip().startswith("#")))
    return refs


def chain_depth(root: Path, slug: str = SLUG) -> int:
    """The longest chain of self-references (a file naming a file naming a file...), comments left out."""
    edges: dict[str, set[str]] = {}
    for r in find_self_refs(root, slug):
        if not r.comment_line:
            edges.setdefault(r.file.as_posix(), set()).add(r.target())
    depth: dict[str, int] = {}

    def visit(node: str, trail: tuple[str, ...]) -> int:
        if node in trail:
            raise BadInput(f"self-references form a cycle: {' -> '.join((*trail, node))}", file=node)
        if node not in depth:
            depth[node] = max((1 + visit(t, (*trail, node)) for t in edges.get(node, ())), default=0)
        return depth[node]

    return max((visit(n, ()) for n in edges), default=0)


def rewrite(root: Path, ref: str, *, slug: str = SLUG, new_slug: str | None = None, comment: str = "") -> list[Path]:
    """Point every self-reference at ``ref`` (and ``new_slug``), with ``# comment``; returns the files changed."""
    target = new_slug or slug
    pattern = self_ref_pattern(slug)

    def sub(m: re.Match[str]) -> str:
        text = m.group("head").replace(slug, target) + ref + m.group("close")
        return text + (f" # {comment}" if comment else (m.group("comment") or ""))

    changed: list[Path] = []
    for path in files(root):
        text = path.read_text(encoding="utf-8")
        new = pattern.sub(sub, text)
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


def git(root: Path, *args: str) -> str:
    res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)  # noqa: S607
    if res.returncode != 0:
        raise InfraError(f"git {' '.join(args)} failed: {(res.stderr.strip().splitlines() or ['no message'])[-1]}",
                         file=str(root))
    return res.stdout.strip()


def require_clean(root: Path) -> None:
    if not (root / ".git").exists():
        raise BadInput("not a git checkout; a release is made of commits", file=str(root))
    if git(root, "status", "--porcelain", "--untracked-files=no"):
        raise BadInput("the work tree has uncommitted changes; expected a clean checkout to release from",
                       file=str(root))


def pin_commit(root: Path, message: str, *, slug: str, new_slug: str | None, comment: str) -> str:
    """Point every self-reference at HEAD and commit; returns the new HEAD."""
    head = git(root, "rev-parse", "HEAD")
    changed = rewrite(root, head, slug=slug, new_slug=new_slug, comment=comment)
    if not changed:
        raise BadInput(f"no self-reference of {slug} to pin", file=str(root))
    paths = [str(p.relative_to(root)) for p in changed]
    git(root, "add", "--", *paths)
    git(root, "commit", "-q", "-m", f"{message}: self-references at {head}", "--", *paths)
    gh.step(f"pinned {len(changed)} files to {head[:12]}")
    return git(root, "rev-parse", "HEAD")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("release", help="make a release: the code, then commits pinning self-references (maintainers)")
    p.add_argument("version", help="X.Y.Z, or 'pin' to point every self-reference at HEAD in one commit")
    add_flag(p, "--root", help="the kit's checkout (clean; the commits and the tag are made there)", default=".")
    add_flag(p, "--slug", help="owner/repo to retarget the self-references to (a fork)", default=SLUG)
    add_flag(p, "--date", help="the release date in CHANGELOG.md (YYYY-MM-DD; default today, UTC)", default="")
    p.add_argument("--sign", action="store_true", help="sign the tag (git tag -s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not (root / "action.yml").is_file():
        raise BadInput("no action.yml here; expected the root of the leanops checkout", file=str(root))
    if not SLUG_RE.match(args.slug):
        raise BadInput(f"--slug: expected owner/repo, got {args.slug!r}")
    new_slug = None if args.slug == SLUG else args.slug
    if args.version == "pin":
        require_clean(root)
        branch = git(root, "rev-parse", "--abbrev-ref", "HEAD")
        pin_commit(root, "pin", slug=SLUG, new_slug=new_slug, comment=branch)
        return 0
    if not SEMVER.match(args.version.removeprefix("v")):
        raise BadInput(f"version: expected X.Y.Z or pin, got {args.version!r}")
    ref = "v" + args.version.removeprefix("v")
    date = args.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", date):
        raise BadInput(f"--date: expected YYYY-MM-DD, got {date!r}")
    require_clean(root)
    if git(root, "tag", "--list", ref):
        raise BadInput(f"the tag {ref} exists; expected a new version", file=str(root))
    current = {r.ref for r in find_self_refs(root) if not r.comment_line}
    if len(current) > 1:
        gh.warning(f"self-references disagreed before the release: {sorted(current)}")
    update_changelog(root, ref[1:], date)  # first: a refused changelog leaves the tree untouched
    set_version(root, ref[1:])
    changed = [root / "pyproject.toml", root / "scripts/leanops/__init__.py", root / CHANGELOG]
    if (root / "uv.lock").is_file():
        changed.append(root / "uv.lock")
    changed += move_major_pins(root, ref.split(".")[0])
    paths = sorted({str(p.relative_to(root)) for p in changed})
    git(root, "add", "--", *paths)
    git(root, "commit", "-q", "-m", f"release {ref}", "--", *paths)
    code = git(root, "rev-parse", "HEAD")
    gh.step(f"release {ref}: the code at {code}")
    depth = max(chain_depth(root, SLUG), 1)
    slug = SLUG
    for i in range(1, depth + 1):
        pin_commit(root, f"release {ref} ({i}/{depth})", slug=slug, new_slug=new_slug, comment=ref)
        slug = new_slug or slug
        new_slug = None
    tag_args = ["tag", "-s" if args.sign else "-a", ref, "-m", f"leanops {ref}"]
    git(root, *tag_args)
    major = ref.split(".")[0]
    print(f"release {ref}: the code {code[:12]}, {depth} pin commits, tag {ref} on {git(root, 'rev-parse', 'HEAD')}\n"
          "next (the tag vX.Y.Z never moves; the major tag moves to it):\n"
          f"  git push origin HEAD {ref}\n"
          f"  git tag -f {major} {ref}^{{}} && git push -f origin {major}", flush=True)
    return 0
