"""GitHub runner files and workflow commands, written once for every capability.

Outputs (``GITHUB_OUTPUT``, heredoc form with a random delimiter for multi-line values), the step
summary (``GITHUB_STEP_SUMMARY``), annotations with file/line/title, ``::group::`` and masking.
Away from a runner each of them falls back to something a person can read on stderr.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO


def on_runner() -> bool:
    """True inside a GitHub Actions (or act) job."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _stream() -> TextIO:
    return sys.stderr


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _command(name: str, message: str, props: Mapping[str, Any] | None = None) -> str:
    prop_text = ""
    if props:
        kept = {k: v for k, v in props.items() if v is not None and v != ""}
        if kept:
            prop_text = " " + ",".join(f"{k}={_escape_property(str(v))}" for k, v in kept.items())
    return f"::{name}{prop_text}::{_escape_data(message)}"


def format_output(name: str, value: str) -> str:
    """The text appended to GITHUB_OUTPUT for one output."""
    if "\n" not in value and "\r" not in value:
        return f"{name}={value}\n"
    while True:
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        if delimiter not in value:
            break
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def _append(env_var: str, text: str) -> bool:
    path = os.environ.get(env_var)
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
    return True


def set_output(name: str, value: Any) -> None:
    """Set a step output; booleans become ``true``/``false``."""
    text = _to_text(value)
    if not _append("GITHUB_OUTPUT", format_output(name, text)):
        print(f"output {name}={text}" if "\n" not in text else f"output {name}:\n{text}", file=_stream())


def set_outputs(values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        set_output(name, value)


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def add_summary(markdown: str) -> None:
    """Append markdown to the job summary (or print it locally)."""
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    if not _append("GITHUB_STEP_SUMMARY", text):
        print(text, end="", file=_stream())


def add_path(directory: str) -> None:
    """Prepend a directory to PATH for the following steps."""
    if not _append("GITHUB_PATH", directory + "\n"):
        print(f"path += {directory}", file=_stream())


def export_env(name: str, value: str) -> None:
    """Set an environment variable for the following steps."""
    if not _append("GITHUB_ENV", format_output(name, value)):
        print(f"env {name}={value}", file=_stream())


def annotate(
    level: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    end_line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> None:
    """Emit an ``error``, ``warning`` or ``notice`` annotation."""
    if level not in ("error", "warning", "notice"):
        raise ValueError(f"unknown annotation level {level!r}")
    if on_runner():
        props = {"file": file, "line": line, "endLine": end_line, "col": col, "title": title}
        print(_command(level, message, props), file=sys.stdout, flush=True)
        return
    where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
    head = f"{title}: " if title else ""
    print(f"{level}: {where}{head}{message}", file=_stream())


def error(message: str, **kw: Any) -> None:
    annotate("error", message, **kw)


def warning(message: str, **kw: Any) -> None:
    annotate("warning", message, **kw)


def notice(message: str, **kw: Any) -> None:
    annotate("notice", message, **kw)


def mask(value: str) -> None:
    """Ask the runner to mask a secret in the log (each line of it)."""
    if not value or not on_runner():
        return
    for part in value.splitlines():
        if part.strip():
            print(f"::add-mask::{_escape_data(part)}", file=sys.stdout, flush=True)


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    """A collapsible log group on a runner; a timed header and footer locally."""
    start = time.monotonic()
    if on_runner():
        print(f"::group::{_escape_data(title)}", file=sys.stdout, flush=True)
        try:
            yield
        finally:
            print("::endgroup::", file=sys.stdout, flush=True)
        return
    print(f"== {title}", file=_stream(), flush=True)
    try:
        yield
    finally:
        print(f"== {title}: {time.monotonic() - start:.1f}s", file=_stream(), flush=True)


def step(message: str) -> None:
    """One progress line."""
    print(message, file=sys.stdout if on_runner() else _stream(), flush=True)


def md_escape(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; cells are escaped so a ``|`` in data cannot break it."""
    lines = ["| " + " | ".join(md_escape(h) for h in headers) + " |"]
    lines.append("|" + "|".join(" --- " for _ in headers) + "|")
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def workspace_path(root: str | os.PathLike[str]) -> str:
    """``root`` relative to ``GITHUB_WORKSPACE`` as POSIX ("." for the workspace itself); off a runner (no
    workspace) the folder's name; a folder outside the workspace, its absolute path."""
    from pathlib import Path

    path = Path(root).resolve()
    ws = os.environ.get("GITHUB_WORKSPACE")
    if not ws:
        return path.name
    try:
        return path.relative_to(Path(ws).resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def artifact_suffix(root: str | os.PathLike[str]) -> str:
    """What tells one model folder's artifacts, comments and issues from another's in the same repository and run:
    "" for the repository's root (the names stay as they were), else ``-`` and the folder's path relative to the
    workspace with every run of other characters than letters, digits, ``.``, ``_`` and ``-`` made one ``-``
    (``models/churn`` -> ``-models-churn``): valid in an artifact's name, which takes no ``/``."""
    import re

    rel = workspace_path(root) if os.environ.get("GITHUB_WORKSPACE") else "."
    if rel in ("", "."):
        return ""
    return "-" + (re.sub(r"[^A-Za-z0-9._-]+", "-", rel).strip("-.") or "root")


_ANNOUNCED: set[str] = set()


def announce_model_folder(root: str | os.PathLike[str]) -> None:
    """On a runner, the step output ``artifact-suffix`` (``artifact_suffix``) once per process and folder: the
    workflows name their artifacts with it, so two model folders in one run never collide."""
    if not on_runner():
        return
    suffix = artifact_suffix(root)
    key = f"{os.environ.get('GITHUB_OUTPUT', '')}\0{suffix}"
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        set_output("artifact-suffix", suffix)


def commit_sha(root: str | os.PathLike[str] | None = None) -> str:
    """The commit being built: ``GITHUB_SHA`` on a runner, else ``git rev-parse HEAD`` in ``root`` ("" if none)."""
    import subprocess

    sha = os.environ.get("GITHUB_SHA", "")
    if sha:
        return sha
    res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    return res.stdout.strip() if res.returncode == 0 else ""
