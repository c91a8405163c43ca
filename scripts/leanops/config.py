"""The one loader of ``leanops.yml``: one file in the adopting repository configures every capability.

The file is parsed with line information and validated against ``schema/leanops.schema.json``; an
error names the file, the line, the key and what was expected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import gh
from .errors import BadInput

DEFAULT_FILE = "leanops.yml"
CAPABILITIES = (
    "data-validate",
    "train-with-cache",
    "gate-metrics",
    "build-push-image",
    "canary-deploy",
    "weekly-drift",
)


@cache
def schema() -> dict[str, Any]:
    text = resources.files("leanops").joinpath("schema/leanops.schema.json").read_text("utf-8")
    return json.loads(text)


@dataclass
class Config:
    """A validated ``leanops.yml``; ``path`` is None when no file exists (all defaults)."""

    data: dict[str, Any]
    path: Path | None = None
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """The settings of one capability (``{}`` when absent)."""
        value = self.data.get(name) or {}
        return dict(value)

    @property
    def model_name(self) -> str | None:
        return (self.data.get("model") or {}).get("name")

    @property
    def root(self) -> Path:
        """The directory paths in the file are relative to."""
        return self.path.parent if self.path else Path.cwd()

    def line_of(self, *keys: str | int) -> int | None:
        """The line of a key, for annotations that point into the file."""
        while keys:
            if keys in self.lines:
                return self.lines[keys]
            keys = keys[:-1]
        return None

    def where(self, *keys: str | int) -> str:
        name = str(self.path) if self.path else DEFAULT_FILE
        line = self.line_of(*keys)
        return f"{name}:{line}" if line else name


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _index_lines(node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _index_lines(value_node, path + (key,), out)
            out[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), out)


def parse_yaml(text: str, name: str) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """Parse YAML, returning the data and the line of every key; errors are one-line BadInput."""
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise BadInput(f"not valid YAML: {exc.problem or exc}", file=name, line=line) from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"not valid YAML: {exc}", file=name) from exc
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _describe(error: jsonschema.ValidationError) -> str:
    """What was expected, in words."""
    v = error.validator
    sch: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    want: Any = error.validator_value
    instance: Any = error.instance
    if v == "additionalProperties":
        extra = sorted(set(instance) - set(sch.get("properties", {})))
        known = ", ".join(sorted(sch.get("properties", {})))
        return f"unknown key {', '.join(map(repr, extra))}; expected one of: {known}"
    if v == "required":
        return f"missing key: {error.message.split(' is a required')[0]}"
    if v == "type":
        want_text = " or ".join(want) if isinstance(want, list) else want
        return f"expected {want_text}, got {_short(error.instance)}"
    if v == "enum":
        return f"expected one of {', '.join(map(str, want))}, got {_short(error.instance)}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        word = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return f"expected a number {word} {error.validator_value}, got {_short(error.instance)}"
    if v == "pattern":
        return f"expected text matching {error.validator_value}, got {_short(error.instance)}"
    if v in ("minItems", "minLength"):
        return f"expected at least {error.validator_value} item(s), got {_short(error.instance)}"
    desc = sch.get("description")
    return f"{error.message}" + (f" ({desc})" if desc else "")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(data: Any, name: str, lines: dict[tuple[str | int, ...], int]) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors) or errors[0]
    path = tuple(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.schema, dict):
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        if extra:
            path = path + (extra[0],)
    key = ".".join(str(p) for p in path) or "(top level)"
    line = None
    probe = path
    while probe and line is None:
        line = lines.get(probe)
        probe = probe[:-1]
    raise BadInput(f"{key}: {_describe(err)}", file=name, line=line or lines.get(()))


def find_config(start: str | os.PathLike[str] | None = None) -> Path | None:
    """``leanops.yml`` (or ``.yaml``) in ``start`` (default: the working directory)."""
    base = Path(start) if start else Path.cwd()
    for candidate in ("leanops.yml", "leanops.yaml"):
        if (base / candidate).is_file():
            return base / candidate
    return None


def enter(working_directory: str | None) -> Path:
    """Change into a command's ``--working-directory`` (paths in flags are relative to it); its absolute path."""
    root = Path(working_directory or ".").resolve()
    if not root.is_dir():
        raise BadInput(f"working-directory: {working_directory!r} is not a directory; expected an existing folder")
    os.chdir(root)
    return root


def load(path: str | os.PathLike[str] | None = None, *, required: bool = False) -> Config:
    """Load and validate a config; with no file and ``required`` false, every default applies.

    On a runner it also sets the step output ``artifact-suffix`` (``gh.artifact_suffix`` of the model folder), so
    every step that reads leanops.yml tells the workflow how to name this folder's artifacts."""
    if path is None:
        found = find_config()
        if found is None:
            if required:
                raise BadInput(f"no {DEFAULT_FILE} in {Path.cwd()}; expected one (run `leanops init`)")
            gh.announce_model_folder(Path.cwd())
            return Config(data={})
        cfg_path = found
    else:
        cfg_path = Path(path)
    name = str(cfg_path)
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("file not found; expected a leanops config", file=name) from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"not UTF-8 text (byte {exc.start})", file=name) from None
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror}", file=name) from None
    data, lines = parse_yaml(text, name)
    if data is None:
        data = {}
    validate(data, name, lines)
    cfg = Config(data=data, path=cfg_path, lines=lines)
    gh.announce_model_folder(cfg.root)  # the step output artifact-suffix: this model folder's artifact names
    return cfg


def flatten(data: Any, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists keep their index."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{sep}{k}" if prefix else str(k), sep))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}{sep}{i}" if prefix else str(i), sep))
    else:
        out[prefix] = data
    return out


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """An action input holding a list: newline- or comma-separated, blanks dropped."""
    if value is None:
        return []
    if not isinstance(value, str):
        return [str(v) for v in value]
    parts = [p.strip() for chunk in value.splitlines() for p in chunk.split(",")]
    return [p for p in parts if p]
