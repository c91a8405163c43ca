"""main(argv) -> int: exit codes and one-line errors, never a traceback for a user mistake."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from leanops import __version__, cli
from leanops.errors import CheckFailed, InfraError
from leanops.flags import add_flag


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"leanops {__version__}"


def test_no_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2


def test_unknown_flag_is_exit_2_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "--bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("leanops") and "unrecognized arguments: --bogus" in err[0]


def test_bad_config_exit_2_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_runner: None) -> None:
    cfg = tmp_path / "leanops.yml"
    cfg.write_text("model:\n  name: 'bad name!'\n")
    assert cli.main(["--config", str(cfg), "config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"leanops config: error: {cfg}:2: model.name: expected text matching")
    assert "Traceback" not in err[0]


def test_bad_config_on_runner_annotates(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        runner_files: dict[str, Path]) -> None:
    cfg = tmp_path / "leanops.yml"
    cfg.write_text("version: 2\n")
    assert cli.main(["--config", str(cfg), "config"]) == 2
    out = capsys.readouterr().out
    assert f"::error file={cfg},line=1,title=leanops config::" in out


def test_good_config_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "leanops.yml"
    cfg.write_text("version: 1\nmodel: {name: m}\n")
    assert cli.main(["--config", str(cfg), "config"]) == 0
    assert '"name": "m"' in capsys.readouterr().out


@pytest.mark.parametrize(("exc", "code"), [(CheckFailed("gate failed"), 1), (InfraError("server down"), 3),
                                           (ZeroDivisionError("bug"), 3)])
def test_exit_codes_and_debug(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                              exc: Exception, code: int, no_runner: None) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(cli, "_cmd_config", boom)
    assert cli.main(["config"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli.main(["--debug", "config"]) == code
    assert "Traceback" in capsys.readouterr().err


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "leanops.yml"
    cfg.write_text("gate-metrics:\n  gates:\n    auc: {direction: sideways}\n")
    res = subprocess.run([sys.executable, "-m", "leanops", "--config", str(cfg), "config"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert f"{cfg}:3: gate-metrics.gates.auc.direction: expected one of higher, lower" in res.stderr


def test_flags_take_their_input_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEANOPS_SUITE", "suites/a.json")
    monkeypatch.setenv("LEANOPS_DVC_PULL", "false")
    monkeypatch.setenv("LEANOPS_MIN_ROWS", "")
    parser = argparse.ArgumentParser()
    add_flag(parser, "--suite", help="suite", default=None)
    add_flag(parser, "--dvc-pull", help="pull", default=True, kind="bool")
    add_flag(parser, "--min-rows", help="rows", default=100, kind="int")
    args = parser.parse_args([])
    assert (args.suite, args.dvc_pull, args.min_rows) == ("suites/a.json", False, 100)
    args = parser.parse_args(["--suite", "x.json", "--dvc-pull", "--min-rows", "5"])
    assert (args.suite, args.dvc_pull, args.min_rows) == ("x.json", True, 5)


def test_flag_env_with_bad_value_is_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEANOPS_DVC_PULL", "maybe")
    parser = cli._Parser(prog="leanops x")
    with pytest.raises(SystemExit) as info:
        add_flag(parser, "--dvc-pull", help="pull", default=True, kind="bool")
    assert info.value.code == 2


@pytest.mark.parametrize("argv", [
    # the documented form (README, docs/local-act.md): the kit's flags after the event
    ["act", "pull_request", "--workflow", ".github/workflows/ml-pipeline.yml", "--event-file", "pr.json"],
    # and before it, and act's own flags after `--`
    ["act", "--workflow", ".github/workflows/ml-pipeline.yml", "pull_request", "--event-file", "pr.json"],
    ["act", "--event-file", "pr.json", "--workflow", ".github/workflows/ml-pipeline.yml", "pull_request", "--",
     "--list", "-v"],
])
def test_act_takes_its_flags_in_any_order_and_hands_on_what_follows_the_double_dash(argv: list[str]) -> None:
    args = cli.parse(argv)
    assert (args.event, args.workflow, args.event_file) == ("pull_request", ".github/workflows/ml-pipeline.yml",
                                                           "pr.json")
    assert args.passthrough_args == (["--list", "-v"] if "--" in argv else [])


def test_only_act_takes_arguments_after_the_double_dash(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "--", "--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "unexpected arguments after --: --list" in err[0]
