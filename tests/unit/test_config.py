"""The one leanops.yml loader: valid files load; every error names the file, line, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from leanops import config
from leanops.errors import BadInput, ExitCode

GOOD = """\
version: 1
model:
  name: churn-classifier
gate-metrics:
  gates:
    roc_auc:
      direction: higher
      min: 0.7
      max-regression: 0.02
canary-deploy:
  steps:
    - weight: 10
      window: 30
    - weight: 100
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leanops.yml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> BadInput:
    with pytest.raises(BadInput) as info:
        config.load(write(tmp_path, text))
    assert info.value.code == ExitCode.BAD_INPUT
    assert "\n" not in info.value.one_line()
    return info.value


def test_valid_file_loads_with_lines(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD))
    assert cfg.model_name == "churn-classifier"
    assert cfg.section("gate-metrics")["gates"]["roc_auc"]["min"] == 0.7
    assert cfg.section("weekly-drift") == {}
    assert cfg.line_of("gate-metrics", "gates", "roc_auc", "min") == 8
    assert cfg.where("canary-deploy", "steps", 1, "weight").endswith("leanops.yml:14")


def test_wrong_type_names_file_line_key_and_expectation(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("min: 0.7", "min: high"))
    line = err.one_line()
    assert line.startswith(f"{tmp_path / 'leanops.yml'}:8: ")
    assert "gate-metrics.gates.roc_auc.min" in line
    assert "expected number" in line and '"high"' in line


def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("      direction: higher", "      direction: higher\n      minn: 3"))
    assert err.line == 8
    assert "unknown key 'minn'" in err.message and "max-regression" in err.message


def test_unknown_section(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD + "train-wth-cache:\n  target: x\n")
    assert err.line == 15
    assert "train-wth-cache" in err.message and "train-with-cache" in err.message


def test_enum_and_range(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("direction: higher", "direction: up"))
    assert err.line == 7 and "expected one of higher, lower" in err.message
    err = error_of(tmp_path, GOOD.replace("- weight: 10\n", "- weight: 120\n"))
    assert err.line == 12 and "canary-deploy.steps.0.weight" in err.message and "<= 100" in err.message


def test_missing_required_key(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("    - weight: 100\n", "    - window: 5\n"))
    assert "missing key" in err.message and "weight" in err.message and err.line == 14


def test_invalid_yaml_and_duplicates(tmp_path: Path) -> None:
    err = error_of(tmp_path, "model:\n  name: [unclosed\n")
    assert err.line is not None and "not valid YAML" in err.message
    err = error_of(tmp_path, "model:\n  name: a\n  name: b\n")
    assert err.line == 3 and "duplicate key 'name'" in err.message


def test_missing_and_empty_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadInput, match="file not found"):
        config.load(tmp_path / "nope.yml")
    assert config.load(write(tmp_path, "")).data == {}
    monkeypatch.chdir(tmp_path / "..")
    empty = tmp_path / "sub"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert config.load().data == {}
    with pytest.raises(BadInput, match="no leanops.yml"):
        config.load(required=True)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "leanops.yml"
    path.write_bytes(b"model:\n  name: \xff\xfe\n")
    with pytest.raises(BadInput, match="not UTF-8"):
        config.load(path)


def test_flatten_and_split_list() -> None:
    assert config.flatten({"train": {"C": 1.0, "layers": [4, 8]}, "seed": 7}) == {
        "train.C": 1.0, "train.layers.0": 4, "train.layers.1": 8, "seed": 7}
    assert config.split_list("a.csv, b.csv\n\nc.csv") == ["a.csv", "b.csv", "c.csv"]
    assert config.split_list(None) == []


def test_schema_is_valid_json_schema() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(config.schema())
    assert set(config.CAPABILITIES) <= set(config.schema()["properties"])
