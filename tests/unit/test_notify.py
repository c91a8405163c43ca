"""Notifications against a local HTTP server: one Slack-compatible message per event, nothing without the
secret, and a failed delivery is a warning that never fails the command."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from leanops import cli, notify

from ..conftest import free_port


class Webhook:
    """Records the JSON bodies POSTed to it; answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.statuses: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.messages.append(json.loads(body))
                hook.headers.append(dict(self.headers))
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/x"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv(notify.ENV, hook.url)
    for name in ("GITHUB_RUN_ID", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def test_one_slack_compatible_message(webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/churn")
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    assert notify.gate_failed("churn", "4", ["roc_auc", "f1"]) is True
    assert webhook.messages == [{"text": ":x: gate failed: churn version 4 on roc_auc, f1 in acme/churn "
                                         "<https://github.com/acme/churn/actions/runs/77|run>"}]
    assert webhook.headers[0]["Content-Type"] == "application/json"


def test_each_event_has_its_message(webhook: Webhook) -> None:
    notify.promoted("churn", "5", "4")
    notify.promoted("churn", "1", "")
    notify.promoted("churn", "4", "5", rollback=True)
    notify.canary_rolled_back("churn", "ghcr.io/acme/churn@sha256:ab", "error rate 4.1% > 1%")
    notify.drift_detected(0.4545, ["a", "b", "c", "d", "e", "f", "g"], 12)
    assert webhook.texts() == [
        ":white_check_mark: promoted churn version 5 (champion before: version 4)",
        ":white_check_mark: promoted churn version 1 (the first champion)",
        ":white_check_mark: rolled back to churn version 4 (champion before: version 5)",
        ":rewind: canary rolled back: churn ghcr.io/acme/churn@sha256:ab: error rate 4.1% > 1%",
        ":warning: drift detected: 45% of columns (a, b, c, d, e and 2 more), issue #12",
    ]


def test_without_the_secret_nothing_is_sent(webhook: Webhook, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(notify.ENV, "  ")
    assert notify.gate_failed("churn", "4", ["roc_auc"]) is False
    assert cli.main(["notify", "hello"]) == 0
    assert webhook.messages == []
    assert "LEANOPS_WEBHOOK_URL is not set; nothing sent" in capsys.readouterr().err


def test_a_failed_delivery_is_a_warning(webhook: Webhook, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    webhook.statuses = [500, 500]
    assert notify.send("x") is False
    assert len(webhook.messages) == 2  # one retry on a server error
    assert "notify: the webhook did not take the message (HTTP 500); continuing" in capsys.readouterr().err
    webhook.statuses = [503]
    assert notify.send("y") is True and len(webhook.messages) == 4
    webhook.statuses = [404]
    assert notify.send("z") is False and len(webhook.messages) == 5  # a refusal is not retried
    monkeypatch.setenv(notify.ENV, f"http://127.0.0.1:{free_port()}/hook")
    assert notify.send("nobody listens", timeout=2) is False
    assert "did not take the message" in capsys.readouterr().err
    monkeypatch.setenv(notify.ENV, "ftp://example.com/x")
    assert notify.send("no") is False
    assert "is not an http(s) URL" in capsys.readouterr().err
    assert cli.main(["notify", "still fine"]) == 0


def test_the_url_is_masked_on_a_runner(webhook: Webhook, runner_files: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    notify.send("hi")
    assert f"::add-mask::{webhook.url}" in capsys.readouterr().out


# ---------------------------------------------------------------------------- the hooks in the commands

GATE_CONFIG = """\
version: 1
model:
  name: churn
gate-metrics:
  champion: file
  champion-file: champion.json
  gates:
    roc_auc: {direction: higher, min: 0.7, max-regression: 0.02}
"""


def test_a_failed_gate_notifies_and_a_passing_one_does_not(webhook: Webhook, tmp_path: Path, runner_files,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_EVENT_PATH", raising=False)
    monkeypatch.delenv("GITHUB_EVENT_NAME", raising=False)
    (tmp_path / "leanops.yml").write_text(GATE_CONFIG)
    (tmp_path / "champion.json").write_text('{"roc_auc": 0.82}')
    base = ["gate-metrics", "--working-directory", str(tmp_path), "--comment", "false"]
    assert cli.main([*base, "--metrics", '{"roc_auc": 0.83}']) == 0
    assert webhook.messages == []
    assert cli.main([*base, "--metrics", '{"roc_auc": 0.71}']) == 1
    assert webhook.texts() == [":x: gate failed: churn on roc_auc"]


def test_a_broken_webhook_never_fails_the_gate(webhook: Webhook, tmp_path: Path, runner_files,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_EVENT_PATH", raising=False)
    monkeypatch.setenv(notify.ENV, f"http://127.0.0.1:{free_port()}/hook")
    (tmp_path / "leanops.yml").write_text(GATE_CONFIG)
    (tmp_path / "champion.json").write_text('{"roc_auc": 0.82}')
    base = ["gate-metrics", "--working-directory", str(tmp_path), "--comment", "false"]
    assert cli.main([*base, "--metrics", '{"roc_auc": 0.83}']) == 0
    assert cli.main([*base, "--metrics", '{"roc_auc": 0.5}']) == 1  # the gate's own verdict, not 3


def test_detected_drift_notifies(webhook: Webhook, tmp_path: Path, runner_files, api_recorder,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from ..conftest import ROOT

    example = ROOT / "examples/churn"
    subprocess.run([sys.executable, str(example / "generate_data.py"), "--rows", "2000", "--seed", "8", "--shift",
                    "1.0", "--out", str(tmp_path / "current.csv")], check=True, capture_output=True)
    (tmp_path / "leanops.yml").write_text(
        "version: 1\nweekly-drift:\n  threshold: 0.3\n  min-rows: 200\n  report-sample-rows: 500\n"
        f"  reference: {example / 'data/raw/churn.csv'}\n  current: current.csv\n  ignore-columns: [customer_id]\n")
    monkeypatch.chdir(tmp_path)
    for name in ("LEANOPS_REFERENCE", "LEANOPS_CURRENT", "LEANOPS_THRESHOLD", "LEANOPS_WORKING_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["weekly-drift"]) == 0
    issue = next(iter(api_recorder.fake.issues.values()))
    [text] = webhook.texts()
    assert text.startswith(":warning: drift detected: ") and "monthly_charges" in text
    assert text.endswith(f"issue #{issue['number']} in example/caller")


def test_promotion_notifies(webhook: Webhook, tmp_path: Path, runner_files, monkeypatch: pytest.MonkeyPatch) -> None:
    """Promotions in the embedded store train-with-cache keeps (.leanops/mlflow under the working directory)."""
    from mlflow import MlflowClient

    from ..integration.test_gate_metrics import MODEL, register

    for name in ("GITHUB_EVENT_PATH", "MLFLOW_TRACKING_URI", "GITHUB_REF_NAME"):
        monkeypatch.delenv(name, raising=False)
    store = tmp_path / ".leanops/mlflow"
    store.mkdir(parents=True)
    (tmp_path / "leanops.yml").write_text(f"version: 1\nmodel:\n  name: {MODEL}\n"
                                          "gate-metrics:\n  gates:\n    roc_auc: {min: 0.6}\n")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # first: a sqlite store's artifacts go to ./mlruns
    versions = [register(MlflowClient(uri, registry_uri=uri), uri, {"roc_auc": auc}) for auc in (0.80, 0.83)]
    base = ["gate-metrics", "promote", "--comment", "false", "--model-version"]
    assert cli.main([*base, versions[0]]) == 0
    assert cli.main([*base, versions[1]]) == 0
    assert cli.main([*base, versions[1]]) == 0  # already the champion: no message
    assert webhook.texts() == [
        f":white_check_mark: promoted {MODEL} version {versions[0]} (the first champion)",
        f":white_check_mark: promoted {MODEL} version {versions[1]} (champion before: version {versions[0]})"]
