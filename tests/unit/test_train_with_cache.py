"""train-with-cache without DVC runs or an MLflow server: keys, the quick up-to-date check, metrics, selection,
trusted refs, and the tracking module's masking, readers and retries."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from leanops import cli, dvcproject, tracking
from leanops.errors import BadInput, InfraError
from leanops.train_with_cache import freshness as twc_freshness
from leanops.train_with_cache import metrics as twc_metrics
from leanops.train_with_cache import repro as twc_repro
from leanops.train_with_cache import settings as twc_settings


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - DVC's content hash


def project(tmp_path: Path, *, c: float = 1.0) -> Path:
    """A one-stage DVC project whose dvc.lock matches the files (as after `dvc repro`)."""
    files = {"stage.py": "print('train')\n", "data.csv": "a,b\n1,2\n", "model.pkl": "model-bytes",
             "metrics.json": '{"roc_auc": 0.8, "nested": {"f1": 0.5}, "note": "x"}'}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "params.yaml").write_text(f"train:\n  C: {c}\n  seed: 1\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: python stage.py\n    deps: [stage.py, data.csv]\n    params: [train.C]\n"
        "    outs: [model.pkl]\n    metrics:\n      - metrics.json:\n          cache: false\n")
    lock = {"schema": "2.0", "stages": {"train": {
        "cmd": "python stage.py",
        "deps": [{"path": p, "hash": "md5", "md5": md5(files[p]), "size": 1} for p in ("data.csv", "stage.py")],
        "params": {"params.yaml": {"train.C": c}},
        "outs": [{"path": p, "hash": "md5", "md5": md5(files[p]), "size": 1} for p in ("metrics.json", "model.pkl")],
    }}}
    (tmp_path / "dvc.lock").write_text(json.dumps(lock))
    (tmp_path / "leanops.yml").write_text("version: 1\nmodel:\n  name: m\n  path: model.pkl\n"
                                          "train-with-cache:\n  select-metric: roc_auc\n")
    return tmp_path


def settings(root: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> twc_settings.Settings:
    monkeypatch.chdir(root)
    parser = cli.build_parser()
    return twc_settings.settings(parser.parse_args(["train-with-cache", *argv]))


def test_the_subcommand_is_registered_without_heavy_imports() -> None:
    import subprocess
    import sys

    code = ("import sys; from leanops import cli; cli.build_parser(); "
            "print(sorted(m for m in ('mlflow', 'dvc', 'pandas', 'sklearn') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def test_quick_check_sees_a_matching_lock_and_each_kind_of_change(tmp_path: Path, monkeypatch) -> None:
    root = project(tmp_path)
    s = settings(root, monkeypatch)
    assert twc_freshness.up_to_date(s) == (True, "every stage matches dvc.lock")
    (root / "params.yaml").write_text("train:\n  C: 2.0\n  seed: 1\n")
    assert twc_freshness.up_to_date(s) == (False, "stage train: param train.C changed")
    (root / "params.yaml").write_text("train:\n  C: 1.0\n  seed: 9\n")  # a param no stage reads
    assert twc_freshness.up_to_date(s)[0]
    (root / "data.csv").write_text("a,b\n1,3\n")
    assert twc_freshness.up_to_date(s) == (False, "stage train: data.csv changed")
    project(tmp_path)
    (root / "model.pkl").unlink()
    assert twc_freshness.up_to_date(s) == (False, "stage train: model.pkl is missing")
    project(tmp_path)
    (root / "dvc.yaml").write_text((root / "dvc.yaml").read_text().replace("python stage.py", "python3 stage.py"))
    assert twc_freshness.up_to_date(s) == (False, "stage train: command changed")
    (root / "dvc.yaml").write_text("vars: [a.yaml]\nstages:\n  train:\n    cmd: x ${a}\n")
    assert twc_freshness.up_to_date(s)[1] == "dvc.yaml uses templating"


def test_cache_key_follows_params_overrides_and_sources(tmp_path: Path, monkeypatch) -> None:
    root = project(tmp_path)
    base = twc_freshness.cache_key(settings(root, monkeypatch))
    assert base["cache-key"].startswith(base["restore-prefix"]) and base["restore-prefix"].startswith("leanops-dvc-")
    assert base == twc_freshness.cache_key(settings(root, monkeypatch))  # stable
    paths = base["cache-path"].splitlines()
    assert paths == [str((root / ".dvc/cache").resolve()), str((root / "metrics.json").resolve())]
    over = twc_freshness.cache_key(settings(root, monkeypatch, "--param-overrides", '{"train.C": 0.5}'))
    assert over["cache-key"] != base["cache-key"] and over["restore-prefix"] == base["restore-prefix"]
    # an override equal to the file's value is the same pipeline state
    same = twc_freshness.cache_key(settings(root, monkeypatch, "--param-overrides", '{"train": {"C": 1.0}}'))
    assert same["cache-key"] == base["cache-key"]
    (root / "stage.py").write_text("print('train v2')\n")
    assert twc_freshness.cache_key(settings(root, monkeypatch))["cache-key"] != base["cache-key"]


def test_key_command_writes_outputs_with_the_embedded_store(tmp_path: Path, monkeypatch, runner_files) -> None:
    root = project(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(root)
    assert cli.main(["train-with-cache", "key"]) == 0
    text = runner_files["GITHUB_OUTPUT"].read_text()
    assert "cache-key=leanops-dvc-" in text and "tracking=local" in text
    assert f"store-path={(root / '.leanops/mlflow').resolve()}" in text
    assert "cache-path<<ghadelimiter_" in text  # several paths: the heredoc form


def test_overrides_are_applied_and_checked(tmp_path: Path, monkeypatch) -> None:
    root = project(tmp_path)
    dvcproject.apply_overrides(root, "params.yaml", {"train.C": 0.25})
    assert "C: 0.25" in (root / "params.yaml").read_text()
    with pytest.raises(BadInput, match="train.gamma not in params.yaml"):
        dvcproject.params_values(root, "params.yaml", {"train.gamma": 1})
    for bad in ("[1, 2]", "{oops", '"text"x'):
        with pytest.raises(BadInput, match="param-overrides"):
            twc_settings.parse_overrides(bad)
    parse = twc_settings.parse_overrides
    assert parse("") == parse("{}") == parse('""') == {}


def test_metrics_are_flattened_numbers_and_garbage_is_bad_input(tmp_path: Path, monkeypatch) -> None:
    root = project(tmp_path)
    s = settings(root, monkeypatch)
    assert twc_metrics.read_metrics(s) == {"roc_auc": 0.8, "nested.f1": 0.5}
    (root / "metrics.json").write_text("roc_auc: 0.7\n")  # YAML is fine too
    assert twc_metrics.read_metrics(s) == {"roc_auc": 0.7}
    (root / "metrics.json").write_text("<html>oops")
    with pytest.raises(BadInput, match="not a JSON or YAML mapping"):
        twc_metrics.read_metrics(s)


def test_missing_dvc_yaml_is_one_line_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "leanops.yml").write_text("version: 1\nmodel:\n  name: m\n  path: m.pkl\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train-with-cache", "key"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no dvc.yaml in" in err[0]


def pr(head: str) -> dict:
    return {"pull_request": {"head": {"repo": {"full_name": head}}, "base": {"repo": {"full_name": "o/r"}}}}


@pytest.mark.parametrize(("event", "payload", "trusted"), [
    ("push", None, True),
    ("schedule", None, True),
    ("pull_request", pr("o/r"), False),  # a branch of this repository writes nowhere either
    ("pull_request", pr("fork/r"), False),
    ("pull_request", None, False),
    ("pull_request_target", None, False),
    ("issue_comment", None, False),
])
def test_push_only_from_trusted_refs(tmp_path: Path, monkeypatch, event, payload, trusted) -> None:
    monkeypatch.setenv("GITHUB_EVENT_NAME", event)
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload or {}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))
    assert twc_repro.trusted_ref()[0] is trusted


def test_select_picks_the_best_leg(tmp_path: Path, monkeypatch, runner_files) -> None:
    (tmp_path / "p").mkdir()
    root = project(tmp_path / "p")
    results = tmp_path / "results"
    for i, (auc, version) in enumerate([(0.70, "3"), (0.85, "4"), (0.80, "5")]):
        leg = results / f"leanops-train-{i}"
        leg.mkdir(parents=True)
        (leg / "result.json").write_text(json.dumps({
            "skipped": False, "run-id": f"r{i}", "model-uri": f"models:/m/{version}", "model-version": version,
            "metrics": {"roc_auc": auc}, "cache-key": f"k{i}", "param-overrides": {"train.C": i}}))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(root)
    assert cli.main(["train-with-cache", "select", "--results", str(results)]) == 0
    out = runner_files["GITHUB_OUTPUT"].read_text()
    assert "run-id=r1\n" in out and "model-version=4\n" in out
    assert cli.main(["train-with-cache", "select", "--results", str(results), "--select-direction", "lower"]) == 0
    assert "run-id=r0\n" in runner_files["GITHUB_OUTPUT"].read_text().split("run-id=r1\n", 1)[1]
    assert cli.main(["train-with-cache", "select", "--results", str(results), "--select-metric", "f1"]) == 2


def test_select_reads_only_its_own_model_folders_legs(tmp_path: Path, monkeypatch, runner_files) -> None:
    """Issue 16: the root folder's pattern leanops-train-* also matches a second folder's leanops-train-models-x-N
    in the same run; each leg says which folder trained it, and select takes its own only."""
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    root = project(tmp_path)
    results = tmp_path / "results"
    for name, folder, auc in [("leanops-train-0", "", 0.70), ("leanops-train-models-x-0", "-models-x", 0.99)]:
        (results / name).mkdir(parents=True)
        (results / name / "result.json").write_text(json.dumps({
            "skipped": False, "run-id": f"run-{auc}", "model-uri": "models:/m/1", "model-version": "1",
            "metrics": {"roc_auc": auc}, "cache-key": "k", "param-overrides": {}, "artifact-suffix": folder}))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(root)
    assert cli.main(["train-with-cache", "select", "--results", str(results)]) == 0
    assert "run-id=run-0.7\n" in runner_files["GITHUB_OUTPUT"].read_text()
    assert cli.main(["train-with-cache", "select", "--results", str(results / "leanops-train-models-x-0")]) == 2


def test_mask_uri_hides_credentials_and_keeps_plain_uris() -> None:
    assert tracking.mask_uri("https://u:p@host:5000/x") == "https://***:***@host:5000/x"
    assert tracking.mask_uri("https://token@host/x") == "https://***@host/x"
    assert tracking.mask_uri("https://host/x?token=abc&a=1") == "https://host/x?token=***&a=1"
    assert tracking.mask_uri("sqlite:////tmp/a/mlflow.db") == "sqlite:////tmp/a/mlflow.db"


def test_resolve_uri_order_and_bad_scheme(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri, local = tracking.resolve_uri(None, None, tmp_path)
    assert local and uri == f"sqlite:///{(tmp_path / '.leanops/mlflow/mlflow.db').resolve()}"
    assert tracking.resolve_uri(None, "http://cfg:5000", tmp_path) == ("http://cfg:5000", False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://secret:5000")
    assert tracking.resolve_uri(None, "http://cfg:5000", tmp_path) == ("http://secret:5000", False)
    assert tracking.resolve_uri("http://flag:1", None, tmp_path) == ("http://flag:1", False)
    with pytest.raises(BadInput, match="tracking-uri"):
        tracking.resolve_uri("ftp://u:pw@x", None, tmp_path)


def test_sqlite_reader_on_a_missing_store_finds_nothing(tmp_path: Path) -> None:
    store = tracking.SqliteReader(f"sqlite:///{tmp_path / 'none.db'}")
    assert store.experiment_id("x") is None and store.alias("m", "challenger") is None


class _Flaky(http.server.BaseHTTPRequestHandler):
    """MLflow 3's REST answers as observed: a missing alias on registered-models/alias is HTTP 400."""

    calls: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).calls.append(self.headers.get("Authorization", ""))
        path = self.path.split("?")[0].removeprefix("/api/2.0/mlflow/")
        if len(type(self).calls) < 3:
            self._send(503, {})
        elif path == "registered-models/get":
            self._send(200, {"registered_model": {"name": "m", "aliases": [{"alias": "challenger", "version": "7"}]}})
        elif path == "model-versions/get":
            self._send(200, {"model_version": {"name": "m", "version": "7", "run_id": "r", "source": "s",
                                               "aliases": ["challenger"]}})
        else:
            self._send(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "alias not found"})

    def _send(self, status: int, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_rest_reader_retries_then_resolves_an_alias(monkeypatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        store = tracking.RestReader(uri, attempts=3, backoff=0.01)
        version = tracking.resolve_model_uri("models:/m@challenger", store)
        assert (version.version, version.uri) == ("7", "models:/m/7")
        assert _Flaky.calls == ["Bearer tok"] * 4  # two 503s, the model's record, its version
        assert tracking.RestReader(uri, attempts=1).alias("m", "champion") is None
        _Flaky.calls.clear()
        with pytest.raises(InfraError, match=r"unreachable after 2 attempts: HTTP 503"):
            tracking.RestReader(uri, attempts=2, backoff=0.01).probe()
    finally:
        server.shutdown()
