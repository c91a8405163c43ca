"""CLI flags that carry their action input's name, so a workflow and a laptop run say the same thing.

Input ``suite`` is flag ``--suite``; a composite action maps it to ``LEANOPS_SUITE`` in ``env:``, and a
flag left off the command line takes that variable's value (an empty value counts as unset).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

TRUE = {"true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off"}


def env_name(flag: str) -> str:
    return "LEANOPS_" + flag.lstrip("-").replace("-", "_").upper()


def parse_bool(value: str | bool, *, name: str = "value") -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{name}: expected true or false, got {value!r}")


def add_flag(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    help: str,  # noqa: A002 - argparse's own word
    default: Any = None,
    kind: str = "str",
    choices: list[str] | None = None,
) -> None:
    """Add ``--flag`` whose default comes from ``LEANOPS_FLAG`` when set and non-empty.

    ``kind`` is ``str``, ``int``, ``float`` or ``bool`` (``--flag``/``--flag=false``).
    """
    env = env_name(flag)
    raw = os.environ.get(env, "")
    dest = flag.lstrip("-").replace("-", "_")
    converters: dict[str, Any] = {"str": str, "int": int, "float": float}
    if kind == "bool":

        def to_bool(v: str) -> bool:
            return parse_bool(v, name=flag)

        value: Any = default
        if raw.strip():
            try:
                value = to_bool(raw)
            except argparse.ArgumentTypeError as exc:
                parser.error(f"{env}: {exc}")
        parser.add_argument(
            flag, dest=dest, nargs="?", const=True, default=value, type=to_bool, metavar="true|false",
            help=f"{help} (env {env}; default {str(default).lower()})",
        )
        return
    value = default
    if raw.strip():
        try:
            value = converters[kind](raw.strip())
        except ValueError:
            parser.error(f"{env}: expected {kind}, got {raw!r}")
        if choices and value not in choices:
            parser.error(f"{env}: expected one of {', '.join(choices)}, got {raw!r}")
    parser.add_argument(
        flag, dest=dest, default=value, type=converters[kind], choices=choices,
        help=f"{help} (env {env}; default {default!r})",
    )
