"""`leanops canary-deploy` without an engine: the analysis (against scipy and by hand), the verdicts, the router's
nginx configuration, settings from leanops.yml and flags, the record, the summary, the Kubernetes manifests
(validated against the schemas for every step) and the planned kubectl sequence, and the workflow wiring."""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from leanops import config, serve
from leanops.canary_deploy import analysis as an
from leanops.canary_deploy import settings
from leanops.canary_deploy.controller import Report, mermaid, summary
from leanops.canary_deploy.docker_target import render_conf, router_recipe_hash
from leanops.canary_deploy.kubernetes import KubernetesTarget, deployment, httproute, ingress, service, validate
from leanops.canary_deploy.record import Entry, Record
from leanops.errors import BadInput, InfraError

ROOT = Path(__file__).resolve().parents[2]
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def metrics_text(latencies: list[float], statuses: list[int], classes: list[int], values: list[float] = ()) -> str:
    """The exposition of a real ``leanops serve`` metrics registry after the given requests."""
    from prometheus_client import generate_latest

    from leanops import serve

    m = serve.Metrics(serve.ModelState(model_dir=Path("."), name="churn", version="3"))
    for lat, status in zip(latencies, statuses, strict=True):
        m.requests.labels(**m.base, path="/predict", status=str(status)).inc()
        m.latency.labels(**m.base, path="/predict").observe(lat)
    m.requests.labels(**m.base, path="/health", status="200").inc()
    m.observe_predictions([*classes, *values])
    return generate_latest(m.registry).decode()


# ---------------------------------------------------------------------------- analysis


def test_snapshot_parses_serve_metrics_and_a_window_is_the_difference() -> None:
    before = an.Snapshot.parse(metrics_text([0.004] * 10, [200] * 10, [0] * 10))
    after = an.Snapshot.parse(metrics_text([0.004] * 10 + [0.02] * 10, [200] * 10 + [500] * 4 + [200] * 6,
                                           [0] * 10 + [1] * 6))
    assert before.version == "3" and before.total() == 10  # /health is not counted
    w = an.window(before, after)
    assert w.requests == 10 and w.errors == 4 and w.error_rate == 0.4
    assert w.distribution == {"class=1": 6.0}
    assert 0.01 < w.p95 <= 0.025
    restarted = an.window(after, before)  # counters went down: the server restarted, the window is `after` alone
    assert restarted.requests == 10


def test_quantile_interpolates_like_histogram_quantile() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, math.inf: 100.0}
    assert an.quantile(0.5, buckets) == pytest.approx(0.1)
    assert an.quantile(0.75, buckets) == pytest.approx(0.15)
    assert an.quantile(0.95, {0.1: 0.0, math.inf: 10.0}) == 0.1  # in +Inf: the highest finite bound
    assert math.isnan(an.quantile(0.95, {})) and math.isnan(an.quantile(0.95, {0.1: 0.0, math.inf: 0.0}))


def test_value_buckets_become_counts_per_bucket() -> None:
    after = an.Snapshot.parse(metrics_text([0.01] * 4, [200] * 4, [], [0.3, 0.3, 0.6, 0.95]))
    assert an.window(None, after).distribution == {"value<=0.5": 2.0, "value<=0.75": 1.0, "value<=1": 1.0}


def test_distances_against_scipy_and_by_hand() -> None:
    from scipy.spatial.distance import jensenshannon

    a = {"class=0": 70.0, "class=1": 30.0}
    b = {"class=0": 40.0, "class=1": 60.0}
    assert an.jensen_shannon(a, b) == pytest.approx(jensenshannon([0.7, 0.3], [0.4, 0.6], base=2), rel=1e-3)
    by_hand = (0.4 - 0.7) * math.log(0.4 / 0.7) + (0.6 - 0.3) * math.log(0.6 / 0.3)
    assert an.psi(a, b) == pytest.approx(by_hand, rel=1e-3)
    assert an.psi(a, a) == pytest.approx(0.0, abs=1e-9) and an.jensen_shannon(a, a) == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(an.psi(a, {"class=2": 5.0}))  # disjoint: large but finite
    assert math.isnan(an.psi(a, {})) and math.isnan(an.jensen_shannon({}, b))


def stats(n: float = 100, errors: float = 0, p95: float = 0.01, dist: dict | None = None) -> an.Stats:
    return an.Stats(requests=n, errors=errors, p95=p95, distribution=dist or {"class=0": n * 0.7, "class=1": n * 0.3})


def test_judge_pass_fail_inconclusive() -> None:
    t = an.Thresholds(min_requests=50)
    assert an.judge(stats(), stats(400), t).outcome == an.PASS
    v = an.judge(stats(errors=5), stats(400), t)
    assert v.outcome == an.FAIL and v.reason.startswith("error rate 5.0% vs stable 0.0%")
    v = an.judge(stats(p95=0.05), stats(400, p95=0.01), t)
    assert v.outcome == an.FAIL and "p95 latency 50.0 ms vs stable 10.0 ms" in v.reason
    assert an.judge(stats(p95=0.003), stats(400, p95=0.001), t).outcome == an.PASS  # 3x but within the slack
    v = an.judge(stats(dist={"class=1": 100}), stats(400), t)
    assert v.outcome == an.FAIL and v.reason.startswith("prediction psi")
    v = an.judge(stats(n=20), stats(400), t)
    assert v.outcome == an.INCONCLUSIVE and "fewer than min-requests 50" in v.reason
    v = an.judge(stats(p95=math.nan, dist={}), stats(400), t)
    assert v.outcome == an.INCONCLUSIVE and "p95 latency unknown" in v.reason
    # a failure beats an inconclusive
    assert an.judge(stats(n=20, errors=20, dist={}), stats(400), t).outcome == an.FAIL
    js = an.Thresholds(distance="jensen-shannon", max_prediction_distance=0.1)
    assert an.judge(stats(dist={"class=1": 100}), stats(400), js).reason.startswith("prediction jensen-shannon")


# ---------------------------------------------------------------------------- router


def test_router_conf_weights_and_weight_zero_left_out() -> None:
    conf = render_conf([("leanops-x-aaa", 90), ("leanops-x-bbb", 10)])
    assert "server leanops-x-aaa:8080 weight=90" in conf and "server leanops-x-bbb:8080 weight=10" in conf
    assert "proxy_next_upstream error timeout non_idempotent;" in conf and "keepalive 32;" in conf
    # the router drops an idle upstream connection before the model server does (else a reused one is a 502)
    idle = re.search(r"keepalive_timeout (\d+)s;", conf)
    assert idle and int(idle.group(1)) < serve.KEEP_ALIVE
    only = render_conf([("leanops-x-aaa", 100), ("leanops-x-bbb", 0)])
    assert "leanops-x-bbb" not in only
    with pytest.raises(ValueError):
        render_conf([("a", 0)])
    assert router_recipe_hash("debian:bookworm-slim") != router_recipe_hash("other:1")
    dockerfile = (ROOT / "scripts/leanops/canary_deploy/router/Dockerfile").read_text()
    assert "ARG BASE_IMAGE=debian:bookworm-slim" in dockerfile and "apt-get install" in dockerfile


# ---------------------------------------------------------------------------- settings


def ns(**kw: object) -> argparse.Namespace:
    base = dict(name="", image="", target="", steps="", router_publish="", router_base_image="",
                manifests_dir="canary-manifests", dry_run=False)
    base.update(kw)
    return argparse.Namespace(**base)


def load(tmp_path: Path, text: str) -> config.Config:
    (tmp_path / "leanops.yml").write_text(text)
    return config.load(tmp_path / "leanops.yml")


def test_settings_defaults_config_and_flags(tmp_path: Path) -> None:
    s, name, target = settings(ns(), load(tmp_path, "version: 1\nmodel:\n  name: Churn\n"))
    assert (name, target) == ("churn", "docker")
    assert [(x.weight, x.window) for x in s.steps] == [(10, 60), (50, 60), (100, 60)]
    assert s.thresholds.max_prediction_distance == 0.2 and s.on_inconclusive == "rollback"
    cfg = load(tmp_path, "version: 1\nmodel:\n  name: churn\ncanary-deploy:\n  target: kubernetes\n  steps:\n"
                         "    - {weight: 25, window: 30}\n    - {weight: 100}\n  distance: jensen-shannon\n"
                         "  on-inconclusive: extend\n  latency-slack-ms: 2\n")
    s, _, target = settings(ns(), cfg)
    assert target == "kubernetes" and [(x.weight, x.window) for x in s.steps] == [(25, 30), (100, 60)]
    assert s.thresholds.max_prediction_distance == 0.1 and s.on_inconclusive == "extend"
    s, _, _ = settings(ns(steps="5:2, 100:3", target="docker"), cfg)
    assert [(x.weight, x.window) for x in s.steps] == [(5, 2), (100, 3)]


def test_bad_settings_are_bad_input(tmp_path: Path) -> None:
    cfg = load(tmp_path, "version: 1\nmodel:\n  name: churn\n")
    with pytest.raises(BadInput, match="must rise strictly"):
        settings(ns(steps="50:1,10:1"), cfg)
    with pytest.raises(BadInput, match="WEIGHT:WINDOW_SECONDS"):
        settings(ns(steps="half"), cfg)
    with pytest.raises(BadInput, match="not a valid deployment name"):
        settings(ns(name="Bad_Name"), cfg)
    with pytest.raises(BadInput, match=r"canary-deploy.on-inconclusive: expected one of rollback, extend") as err:
        load(tmp_path, "version: 1\nmodel:\n  name: churn\ncanary-deploy:\n  on-inconclusive: ignore\n")
    assert err.value.line == 5 and err.value.file and err.value.file.endswith("leanops.yml")
    with pytest.raises(BadInput, match="unknown key 'weights'"):
        load(tmp_path, "version: 1\ncanary-deploy:\n  weights: [1]\n")


def test_cli_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "leanops.yml").write_text("version: 1\nmodel:\n  name: churn\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "leanops", "canary-deploy", *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=tmp_path)
    res = run()
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "leanops canary-deploy: error: image: empty; expected REGISTRY/IMAGE@sha256:... (build-push-image's image "
        "output)"]
    res = run("--image", "reg.example.com/churn:latest", "--target", "kubernetes", "--dry-run")
    assert res.returncode == 2 and "is not pinned by digest" in res.stderr.strip().splitlines()[-1]
    res = run("rollback", "--target", "kubernetes", "--dry-run")
    assert res.returncode == 2 and "has no deployment record" in res.stderr and "Traceback" not in res.stderr


# ---------------------------------------------------------------------------- record and report


def test_record_promote_and_roll_back() -> None:
    r = Record(name="churn")
    a, b, c = (Entry(image=f"r/x@sha256:{ch * 64}", model_version=v) for ch, v in (("a", "1"), ("b", "2"), ("c", "3")))
    for e in (a, b, c):
        r.promote(e)
    assert r.stable == c and r.previous == [b, a]
    again = Record.from_json(r.to_json(), "x")
    assert again == r and again.stable is not None and again.stable.digest == "sha256:" + "c" * 64
    assert r.roll_back() == b and r.previous == [a] and r.stable == b
    with pytest.raises(InfraError, match="damaged"):
        Record.from_json("{", "router:/var/lib/leanops/record.json")


def test_summary_table_and_mermaid_chart() -> None:
    report = Report(name="churn", target="docker", image="r/x@" + DIGEST_B, verdict="rolled-back",
                    reason="step 2 (50%): p95 latency", stable=Entry(image="r/x@" + DIGEST_A))
    report.steps = [
        {"step": 1, "weight": 10, "window_s": 5, "verdict": "pass", "reason": "within every threshold",
         "canary_requests": 50, "stable_requests": 450, "canary_error_rate": 0.0, "stable_error_rate": 0.0,
         "canary_p95_ms": 9.5, "stable_p95_ms": 9.0, "distance": 0.01},
        {"step": 2, "weight": 50, "window_s": 5, "verdict": "fail", "reason": "p95 latency 60 ms",
         "canary_requests": 250, "stable_requests": 700, "canary_error_rate": 0.0, "stable_error_rate": 0.0,
         "canary_p95_ms": 60.0, "stable_p95_ms": 9.0, "distance": 0.02},
    ]
    text = summary(report, "psi")
    assert "| 1 | 10% | 50 / 450 | 0.00% / 0.00% | 9.5 / 9.0 | 0.010 | pass: within every threshold |" in text
    assert "| 2 | 50% |" in text and "fail: p95 latency 60 ms" in text
    chart = mermaid(report)
    assert chart.startswith("```mermaid\nxychart-beta") and "bar [9.5, 60.0]" in chart and "line [9.0, 9.0]" in chart
    d = report.to_dict()
    assert d["stable_digest"] == DIGEST_A and json.dumps(d)


# ---------------------------------------------------------------------------- kubernetes


@pytest.mark.parametrize("traffic", ["ingress-nginx", "gateway-api"])
def test_manifests_of_every_step_validate(tmp_path: Path, traffic: str) -> None:
    k = KubernetesTarget("churn", tmp_path, namespace="ml", traffic=traffic, host="churn.example.com", dry_run=True)
    stable, canary = Entry(image="r.example.com/churn@" + DIGEST_A), Entry(image="r.example.com/churn@" + DIGEST_B)
    for m in k._base(stable):
        validate(m)
    for w in (0, 10, 50, 100):
        for m in k._split(w):
            validate(m)
    validate(deployment("churn", "canary", canary.image, 1))
    bad = deployment("churn", "stable", stable.image, 2)
    bad["spec"]["replicas"] = "two"
    with pytest.raises(InfraError, match="does not match the Kubernetes 1.30 schema"):
        validate(bad)
    typo = ingress("churn", "", "nginx", "churn-canary", 10)
    typo["spec"]["rule"] = []
    with pytest.raises(InfraError):
        validate(typo)
    route = httproute("churn", "churn.example.com", "gw", 10)
    assert [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]] == [90, 10]
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(InfraError, match="not a valid HTTPRoute"):
        validate(route)
    assert service("churn", None)["spec"]["selector"] == {"app.kubernetes.io/name": "churn",
                                                          "app.kubernetes.io/managed-by": "leanops"}


def dry(tmp_path: Path, image: str, *extra: str, traffic: str = "ingress-nginx") -> subprocess.CompletedProcess[str]:
    (tmp_path / "leanops.yml").write_text(
        "version: 1\nmodel:\n  name: churn\ncanary-deploy:\n  target: kubernetes\n"
        f"  kubernetes:\n    namespace: ml\n    traffic: {traffic}\n    host: churn.example.com\n")
    return subprocess.run([sys.executable, "-m", "leanops", "canary-deploy", "--image", image, "--dry-run",
                           "--manifests-dir", "k8s", *extra], capture_output=True, text=True, cwd=tmp_path)


def planned(tmp_path: Path) -> list[str]:
    plan = json.loads((tmp_path / "k8s" / "plan.json").read_text())
    return [" ".join(p["command"]).replace(str(tmp_path / "k8s") + "/", "") for p in plan]


@pytest.mark.parametrize("traffic", ["ingress-nginx", "gateway-api"])
def test_kubectl_plan_first_deploy_then_canary(tmp_path: Path, traffic: str) -> None:
    res = dry(tmp_path, "r.example.com/churn@" + DIGEST_A, traffic=traffic)
    assert res.returncode == 0, res.stderr
    assert planned(tmp_path) == [
        "kubectl --namespace ml apply -f 01-stable.yaml",
        "kubectl --namespace ml rollout status deployment/churn-stable --timeout=120s",
        "kubectl --namespace ml apply -f 02-record.yaml",
    ]
    kinds = [d["kind"] for d in yaml.safe_load_all((tmp_path / "k8s" / "01-stable.yaml").read_text())]
    split = ["Ingress", "Ingress"] if traffic == "ingress-nginx" else ["HTTPRoute"]
    assert kinds == ["Deployment", "Service", "Service", "Service", *split]
    res = dry(tmp_path, "r.example.com/churn@" + DIGEST_B, "--steps", "10:60,50:60,100:60", traffic=traffic)
    assert res.returncode == 0, res.stderr
    assert planned(tmp_path) == [
        "kubectl --namespace ml apply -f 01-canary.yaml",
        "kubectl --namespace ml rollout status deployment/churn-canary --timeout=120s",
        "kubectl --namespace ml apply -f 02-weight-10.yaml",
        "kubectl --namespace ml apply -f 03-weight-50.yaml",
        "kubectl --namespace ml apply -f 04-weight-100.yaml",
        "kubectl --namespace ml apply -f 05-promote.yaml",
        "kubectl --namespace ml rollout status deployment/churn-stable --timeout=120s",
        "kubectl --namespace ml apply -f 06-weight-0.yaml",
        "kubectl --namespace ml delete deployment churn-canary --ignore-not-found",
        "kubectl --namespace ml apply -f 07-record.yaml",
    ]
    for f in sorted((tmp_path / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            validate(doc)
    weights = yaml.safe_load((tmp_path / "k8s" / "03-weight-50.yaml").read_text())
    if traffic == "ingress-nginx":
        assert weights["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] == "50"
    else:
        assert [b["weight"] for b in weights["spec"]["rules"][0]["backendRefs"]] == [50, 50]
    promoted = yaml.safe_load((tmp_path / "k8s" / "05-promote.yaml").read_text())
    assert promoted["spec"]["template"]["spec"]["containers"][0]["image"] == "r.example.com/churn@" + DIGEST_B
    record = json.loads((tmp_path / "k8s" / "record.json").read_text())
    assert record["stable"]["image"].endswith(DIGEST_B) and record["previous"][0]["image"].endswith(DIGEST_A)
    res = subprocess.run([sys.executable, "-m", "leanops", "canary-deploy", "rollback", "--dry-run", "--manifests-dir",
                          "k8s"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert planned(tmp_path) == [
        "kubectl --namespace ml apply -f 01-rollback.yaml",
        "kubectl --namespace ml rollout status deployment/churn-stable --timeout=120s",
        "kubectl --namespace ml apply -f 02-record.yaml",
    ]


def test_kubectl_plan_of_an_abort(tmp_path: Path) -> None:
    k = KubernetesTarget("churn", tmp_path, namespace="ml", dry_run=True)
    k.start_canary(Entry(image="r.example.com/churn@" + DIGEST_B))
    k.set_weight(10)
    k.abort()
    assert [" ".join(p["command"][3:]) for p in k.plan][-2:] == [
        f"apply -f {tmp_path}/03-weight-0.yaml", "delete deployment churn-canary --ignore-not-found"]


# ---------------------------------------------------------------------------- wiring


def test_reusable_workflow_deploys_one_at_a_time_per_environment_without_cache() -> None:
    wf = yaml.safe_load((ROOT / ".github/workflows/canary-deploy.yml").read_text())
    call = wf[True]["workflow_call"]  # `on` parses as True
    job = wf["jobs"]["deploy"]
    assert job["environment"] == "${{ inputs.environment }}"
    assert job["concurrency"] == {"group": "leanops-canary-deploy-${{ inputs.environment }}",
                                  "cancel-in-progress": False}
    assert job["permissions"] == {"contents": "read", "packages": "read"} and wf["permissions"] == {}
    assert not any("cache" in str(s.get("uses", "")) for s in job["steps"])
    assert set(call["outputs"]) == {"verdict", "stable-digest", "report-file"}
    for name, spec in call["inputs"].items():
        assert "Default:" in spec["description"], name
    action = yaml.safe_load((ROOT / "actions/canary-deploy/action.yml").read_text())
    env = action["runs"]["steps"][1]["env"]
    from leanops.cli import build_parser

    flags = {a.option_strings[0] for a in build_parser()._subparsers._group_actions[0].choices[  # type: ignore[union-attr]
        "canary-deploy"]._actions if a.option_strings}
    for name in action["inputs"]:
        if name not in ("working-directory", "python", "registry-username", "registry-password"):
            assert env[f"LEANOPS_{name.upper().replace('-', '_')}"] == f"${{{{ inputs.{name} }}}}", name
            assert f"--{name}" in flags, name
    assert action["runs"]["steps"][0]["with"]["extras"] == "canary-deploy"
