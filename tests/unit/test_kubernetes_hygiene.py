"""The kubernetes target's hygiene (issue 13, path 8): hardened pods, requests and limits from leanops.yml, and a
kubeconfig given as data that lives under RUNNER_TEMP and is gone when leanops exits, after a failure too.

No Kubernetes API server can run here: the rendered manifests are validated against the Kubernetes 1.30 schemas
(``kubernetes-validate``, strict, offline), and kubectl is a stand-in script that records what it was given.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from leanops.canary_deploy.kubernetes import DEFAULT_RESOURCES, USER, KubernetesTarget, pod_resources, validate

ROOT = Path(__file__).resolve().parents[2]
IMAGE_A = "r.example.com/churn@sha256:" + "a" * 64
IMAGE_B = "r.example.com/churn@sha256:" + "b" * 64
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n# leanops-test-credential\n"


def _project(tmp_path: Path, resources: str = "") -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "leanops.yml").write_text(
        "version: 1\nmodel:\n  name: churn\ncanary-deploy:\n  target: kubernetes\n"
        "  kubernetes:\n    namespace: ml\n    host: churn.example.com\n" + resources)
    return tmp_path


def _leanops(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leanops", "canary-deploy", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def _deployments(folder: Path) -> list[dict[str, Any]]:
    return [d for f in sorted(folder.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
            if d and d["kind"] == "Deployment"]


def _assert_hardened(d: dict[str, Any], resources: dict[str, Any]) -> None:
    pod = d["spec"]["template"]["spec"]
    where = d["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False, where
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == USER, where
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, where
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True, where
    assert container["resources"] == resources, where
    tmp = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp"}  # noqa: S108
    assert tmp and all("emptyDir" in v for v in pod["volumes"] if v["name"] in tmp), where
    validate(d)  # the Kubernetes 1.30 schema, strict: a misspelt field fails


def test_every_rendered_deployment_is_hardened_with_default_resources(tmp_path: Path) -> None:
    project = _project(tmp_path)
    res = _leanops(project, "--image", IMAGE_A, "--dry-run", "--manifests-dir", "k8s")
    assert res.returncode == 0, res.stderr
    first = _deployments(project / "k8s")
    res = _leanops(project, "--image", IMAGE_B, "--dry-run", "--manifests-dir", "k8s", "--steps", "50:60,100:60")
    assert res.returncode == 0, res.stderr
    later = _deployments(project / "k8s")  # the canary, then the promoted stable
    assert [d["metadata"]["name"] for d in first + later] == ["churn-stable", "churn-canary", "churn-stable"]
    for d in first + later:
        _assert_hardened(d, DEFAULT_RESOURCES)


def test_resources_from_leanops_yml_are_laid_over_the_defaults(tmp_path: Path) -> None:
    project = _project(tmp_path, "    resources:\n      requests: {cpu: 500m}\n"
                                 "      limits: {memory: 2Gi, cpu: '2'}\n")
    res = _leanops(project, "--image", IMAGE_A, "--dry-run", "--manifests-dir", "k8s")
    assert res.returncode == 0, res.stderr
    (d,) = _deployments(project / "k8s")
    _assert_hardened(d, {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi", "cpu": "2"}})


def test_resource_overrides_and_an_empty_value_drops_a_default() -> None:
    assert pod_resources() == DEFAULT_RESOURCES and pod_resources() is not DEFAULT_RESOURCES
    assert pod_resources({"limits": {"memory": ""}}) == {"requests": DEFAULT_RESOURCES["requests"]}
    assert pod_resources({"requests": {"memory": 1073741824}})["requests"]["memory"] == "1073741824"
    assert DEFAULT_RESOURCES["limits"] == {"memory": "1Gi"}  # pod_resources never changes the defaults


def test_a_bad_quantity_in_leanops_yml_is_bad_input_in_one_line(tmp_path: Path) -> None:
    project = _project(tmp_path, "    resources:\n      limits: {memory: lots}\n")
    res = _leanops(project, "--image", IMAGE_A, "--dry-run", "--manifests-dir", "k8s")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "leanops.yml" in lines[0] and "memory" in lines[0], res.stderr


# ---------------------------------------------------------------------------- the kubeconfig


FAKE_KUBECTL = """#!/bin/sh
# a stand-in kubectl: records where its kubeconfig is, its mode and its content, then fails like an unreachable
# cluster would
{ echo "path=$KUBECONFIG"; stat -c "mode=%a" "$KUBECONFIG"; stat -c "dirmode=%a" "$(dirname "$KUBECONFIG")";
  cat "$KUBECONFIG"; } > "$RECORD"
echo "Unable to connect to the server: dial tcp 10.0.0.1:6443: connect: connection refused" >&2
exit 1
"""


def _kubectl_env(tmp_path: Path, *, runner_temp: Path | None) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    record = tmp_path / "kubectl-saw.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("RUNNER_TEMP", "KUBECONFIG")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", RECORD=str(record), LEANOPS_KUBECONFIG_DATA=KUBECONFIG,
               TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    if runner_temp is not None:
        runner_temp.mkdir()
        env["RUNNER_TEMP"] = str(runner_temp)
    return env, record


def _saw(record: Path) -> dict[str, str]:
    text = record.read_text()
    fields = dict(re.findall(r"^(path|mode|dirmode)=(.*)$", text, re.MULTILINE))
    assert "leanops-test-credential" in text, text  # kubectl was given the data
    return fields


def test_kubeconfig_lives_under_runner_temp_and_is_removed_after_a_failure(tmp_path: Path) -> None:
    runner_temp = tmp_path / "runner-temp"
    env, record = _kubectl_env(tmp_path, runner_temp=runner_temp)
    res = _leanops(_project(tmp_path / "repo"), "--image", IMAGE_A, env=env)
    assert res.returncode == 3, res.stderr  # the cluster did not answer: infrastructure
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("leanops canary-deploy: error: kubectl") and "connection refused" in last, res.stderr
    saw = _saw(record)
    assert Path(saw["path"]).parent == runner_temp and saw["mode"] == "600"
    assert not Path(saw["path"]).exists(), "the kubeconfig outlived the run"
    assert list(runner_temp.iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []
    assert "leanops-test-credential" not in res.stdout + res.stderr


def test_kubeconfig_without_runner_temp_is_in_a_private_directory_removed_with_it(tmp_path: Path) -> None:
    env, record = _kubectl_env(tmp_path, runner_temp=None)
    res = _leanops(_project(tmp_path / "repo"), "--image", IMAGE_A, env=env)
    assert res.returncode == 3, res.stderr
    saw = _saw(record)
    private = Path(saw["path"]).parent
    assert private.parent == tmp_path / "tmp" and saw["dirmode"] == "700" and saw["mode"] == "600"
    assert not private.exists(), "the private directory outlived the run"


def test_close_removes_the_kubeconfig_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))
    monkeypatch.setenv("LEANOPS_KUBECONFIG_DATA", KUBECONFIG)
    k = KubernetesTarget("churn", tmp_path / "k8s")
    path = Path(k._env()["KUBECONFIG"])
    assert path.parent == tmp_path and path.read_text() == KUBECONFIG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert k._env()["KUBECONFIG"] == str(path)  # written once per run
    k.close()
    k.close()
    assert not path.exists()


def test_the_model_server_image_runs_as_the_numeric_non_root_user_the_pods_require() -> None:
    """runAsNonRoot needs a numeric USER in the image (a name cannot be checked by the kubelet)."""
    dockerfile = (ROOT / "templates" / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, re.MULTILINE)
    assert users == [f"{USER}:{USER}"], users


@pytest.mark.parametrize("traffic", ["ingress-nginx", "gateway-api"])
def test_only_predict_and_health_are_routed_from_outside(tmp_path: Path, traffic: str) -> None:
    """/ready, /metrics and /metrics/samples stay inside the cluster (issue 13, path 6, on this target)."""
    project = _project(tmp_path)
    text = (project / "leanops.yml").read_text().replace("    host:", f"    traffic: {traffic}\n    host:")
    (project / "leanops.yml").write_text(text)
    res = _leanops(project, "--image", IMAGE_A, "--dry-run", "--manifests-dir", "k8s")
    assert res.returncode == 0, res.stderr
    routed = [d for f in sorted((project / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
              if d and d["kind"] in ("Ingress", "HTTPRoute")]
    assert routed
    for d in routed:
        validate(d)
        if d["kind"] == "Ingress":
            paths = [(p["path"], p["pathType"]) for r in d["spec"]["rules"] for p in r["http"]["paths"]]
            assert paths == [("/predict", "Exact"), ("/health", "Exact")], paths
        else:
            matches = [(m["path"]["value"], m["path"]["type"]) for r in d["spec"]["rules"] for m in r["matches"]]
            assert matches == [("/predict", "Exact"), ("/health", "Exact")], matches
