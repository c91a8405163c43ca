"""``leanops``: one command, a subcommand per capability.

``main(argv) -> int`` returns the exit code: 0 ok, 1 the check failed, 2 bad configuration or input,
3 infrastructure failure. A user mistake prints one line, never a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from collections.abc import Sequence

from . import __version__, config, gh
from .errors import ExitCode, LeanopsError

# Modules that add subcommands; each has register(subparsers) and keeps heavy imports inside run().
COMMAND_MODULES: tuple[str, ...] = ("leanops.tools.release", "leanops.tools.harness", "leanops.data_validate",
                                   "leanops.train_with_cache", "leanops.serve", "leanops.build_push_image",
                                   "leanops.gate_metrics", "leanops.weekly_drift", "leanops.tools.init",
                                   "leanops.canary_deploy", "leanops.tools.docgen", "leanops.notify",
                                   "leanops.lineage")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        print(f"run `{self.prog} --help` for usage", file=sys.stderr)
        raise SystemExit(ExitCode.BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="leanops", description="CI-native MLOps kit: the CLI behind the leanops actions.")
    parser.add_argument("--version", action="version", version=f"leanops {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--config", default=None, help="path to leanops.yml (default: ./leanops.yml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    cfg = sub.add_parser("config", help="validate leanops.yml and print it as JSON")
    cfg.set_defaults(func=_cmd_config)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _cmd_config(args: argparse.Namespace) -> int:
    cfg = config.load(args.config, required=True)
    print(json.dumps(cfg.data, indent=2, sort_keys=True))
    gh.step(f"{cfg.path}: valid")
    return 0


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments as a user types them. What follows the first ``--`` is handed on unparsed
    (``passthrough_args``) to a command that takes it (``leanops act``: act's own flags); the command's own flags
    may stand anywhere before it, around its positional arguments."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, passthrough = args_in[:cut], args_in[cut + 1:]
    parser = build_parser()
    args = parser.parse_args(args_in)
    if passthrough and not getattr(args, "passthrough", False):
        parser.error(f"unexpected arguments after --: {' '.join(passthrough)}; only `leanops act` hands arguments on")
    args.passthrough_args = passthrough
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else ExitCode.BAD_INPUT
    if not getattr(args, "func", None):
        build_parser().print_help(sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        return int(args.func(args))
    except LeanopsError as exc:
        if args.debug:
            traceback.print_exc()
        line = exc.one_line()
        if gh.on_runner():
            gh.error(exc.message, file=exc.file, line=exc.line, title=f"leanops {args.command}")
        print(f"leanops {args.command}: error: {line}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"leanops {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug must still end in one line and code 3
        if args.debug:
            traceback.print_exc()
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"leanops {args.command}: internal error: {text} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return ExitCode.INFRA


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
