"""The runner-file helper against temporary GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leanops import gh


def parse_outputs(text: str) -> dict[str, str]:
    """Parse GITHUB_OUTPUT as the runner does (name=value, and name<<DELIM ... DELIM)."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body = []
            i += 1
            while lines[i] != delim:
                body.append(lines[i])
                i += 1
            out[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


def test_single_line_output(runner_files: dict[str, Path]) -> None:
    gh.set_output("success", True)
    gh.set_output("count", 3)
    gh.set_output("empty", None)
    text = runner_files["GITHUB_OUTPUT"].read_text()
    assert text == "success=true\ncount=3\nempty=\n"


def test_multiline_output_uses_heredoc(runner_files: dict[str, Path]) -> None:
    value = '{\n  "a": 1\n}'
    gh.set_output("metrics", value)
    text = runner_files["GITHUB_OUTPUT"].read_text()
    assert re.match(r"^metrics<<ghadelimiter_[0-9a-f]{32}\n", text)
    assert parse_outputs(text) == {"metrics": value}


def test_value_containing_the_delimiter_is_not_cut(runner_files: dict[str, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["aaaa", "bbbb"])
    monkeypatch.setattr(gh.secrets, "token_hex", lambda n: next(tokens))
    value = "line one\nghadelimiter_aaaa\nline three"
    gh.set_output("tricky", value)
    text = runner_files["GITHUB_OUTPUT"].read_text()
    assert text.startswith("tricky<<ghadelimiter_bbbb\n")
    assert parse_outputs(text) == {"tricky": value}


def test_outputs_accumulate(runner_files: dict[str, Path]) -> None:
    gh.set_outputs({"a": "1", "b": "x\ny", "c": False})
    assert parse_outputs(runner_files["GITHUB_OUTPUT"].read_text()) == {"a": "1", "b": "x\ny", "c": "false"}


def test_summary_appends_markdown(runner_files: dict[str, Path]) -> None:
    gh.add_summary("## Title")
    gh.add_summary(gh.md_table(["metric", "value"], [["a|b", 1], ["c", "x\ny"]]))
    text = runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert text.startswith("## Title\n")
    assert "| a\\|b | 1 |" in text
    assert "| c | x y |" in text
    assert text.count("\n") == 1 + 4


def test_path_and_env(runner_files: dict[str, Path]) -> None:
    gh.add_path("/opt/tool/bin")
    gh.export_env("NAME", "v1")
    assert runner_files["GITHUB_PATH"].read_text() == "/opt/tool/bin\n"
    assert runner_files["GITHUB_ENV"].read_text() == "NAME=v1\n"


def test_annotation_escapes_properties_and_message(runner_files: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    gh.error("50% failed\nsecond line", file="suites/a,b.json", line=12, title="col: x")
    out = capsys.readouterr().out.strip()
    assert out == "::error file=suites/a%2Cb.json,line=12,title=col%3A x::50%25 failed%0Asecond line"


def test_annotation_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown annotation level"):
        gh.annotate("fatal", "x")


def test_group_and_mask_on_runner(runner_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with gh.group("Install"):
        gh.step("step one")
    gh.mask("s3cr3t\nline2")
    out = capsys.readouterr().out.splitlines()
    assert out == ["::group::Install", "step one", "::endgroup::", "::add-mask::s3cr3t", "::add-mask::line2"]


def test_group_closes_on_exception(runner_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), gh.group("Boom"):
        raise RuntimeError("x")
    assert capsys.readouterr().out.splitlines()[-1] == "::endgroup::"


def test_local_fallback_is_readable(no_runner: None, capsys: pytest.CaptureFixture[str]) -> None:
    gh.set_output("passed", True)
    gh.set_output("report", "a\nb")
    gh.add_summary("| x |")
    gh.warning("careful", file="leanops.yml", line=3, title="gates")
    gh.mask("secret")
    with gh.group("Work"):
        pass
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing that looks like a workflow command
    err = captured.err
    assert "output passed=true" in err
    assert "output report:\na\nb" in err
    assert "| x |" in err
    assert "warning: leanops.yml:3: gates: careful" in err
    assert "secret" not in err
    assert "== Work" in err and "::" not in err


def test_commit_sha_prefers_github_sha_then_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess

    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    assert gh.commit_sha(tmp_path) == "a" * 40
    monkeypatch.delenv("GITHUB_SHA")
    assert gh.commit_sha(tmp_path) == ""  # not a repository
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, env={**os.environ, **env})
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert gh.commit_sha(tmp_path) == head and len(head) == 40


@pytest.mark.parametrize("folder,suffix", [(".", ""), ("models/churn", "-models-churn"),
                                           ("teams/a b/model.v2", "-teams-a-b-model.v2")])
def test_a_model_folders_artifact_suffix_is_a_valid_artifact_name_part(tmp_path, monkeypatch, folder: str,
                                                                     suffix: str) -> None:
    """Issue 16: "" at the repository's root (names as they were), else the folder's path with what an artifact's
    name cannot hold ("/", spaces) made "-"."""
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    assert gh.artifact_suffix(tmp_path / folder) == suffix
    assert gh.workspace_path(tmp_path / folder) == folder
    assert not set(gh.artifact_suffix(tmp_path / folder)) & set('":<>|*?\\/\r\n ')


def test_every_step_that_reads_leanops_yml_names_its_folders_artifacts(tmp_path, monkeypatch, runner_files) -> None:
    from leanops import config

    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    folder = tmp_path / "models" / "fraud"
    folder.mkdir(parents=True)
    (folder / "leanops.yml").write_text("version: 1\nmodel:\n  name: fraud\n")
    config.load(folder / "leanops.yml")
    config.load(folder / "leanops.yml")  # once per step, however often it is read
    assert parse_outputs(runner_files["GITHUB_OUTPUT"].read_text()) == {"artifact-suffix": "-models-fraud"}
