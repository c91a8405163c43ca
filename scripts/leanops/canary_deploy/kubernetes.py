"""The ``kubernetes`` target: stable and canary Deployments behind one Service, traffic split with an
ingress-nginx canary Ingress (``canary-weight``) or a Gateway API ``HTTPRoute`` (weighted backendRefs).

leanops renders the manifests for each step into ``manifests-dir`` (numbered files, applied in order) and runs
``kubectl``; ``dry-run`` renders and writes the plan (``plan.json``, ``plan.sh``) without running anything.
The deployment record is a ConfigMap. Every manifest is validated against the Kubernetes schemas
(``kubernetes-validate``, bundled, offline) and the HTTPRoute against the Gateway API v1 schema shipped here.

Pods run hardened: a non-root numeric user (the image's 65532), a read-only root filesystem with an ``emptyDir``
at ``/tmp`` (the server's only writable place: HOME and temporary files), every capability dropped, no privilege
escalation, the runtime's default seccomp profile, no service-account token mounted, and CPU/memory requests and
limits (``kubernetes.resources`` in leanops.yml; defaults below). The kubeconfig given as data
(``LEANOPS_KUBECONFIG_DATA``) is written under ``RUNNER_TEMP`` (else a private temporary directory), mode 0600,
and removed when the process ends, whether it succeeded or failed.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .. import gh
from ..errors import BadInput, InfraError
from ..fsutil import atomic_write, atomic_write_json
from .analysis import Snapshot
from .record import Entry, Record

K8S_VERSION = "1.30"
PORT = 8080
HTTPROUTE_SCHEMA = Path(__file__).resolve().parent / "schemas" / "httproute-v1.json"
USER = 65532  # the model server image's numeric non-root user (templates/Dockerfile: USER 65532:65532)
# requests: what the scheduler reserves (a loaded scikit-learn model server rests at ~300 MB); limits: a request
# is at most 4 MiB of JSON (serve's limit), so 1 GiB leaves room for a few in flight. No CPU limit: it only
# throttles (slower start, worse p95) without protecting anything the request does not already.
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {"requests": {"cpu": "250m", "memory": "512Mi"},
                                                "limits": {"memory": "1Gi"}}
TMP_SIZE = "256Mi"  # the emptyDir at /tmp


def pod_resources(overrides: dict[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """The defaults with leanops.yml's ``kubernetes.resources`` laid over them per key; an empty value drops one
    (``limits: {memory: ""}``: no memory limit)."""
    out = copy.deepcopy(DEFAULT_RESOURCES)
    for kind in ("requests", "limits"):
        for key, value in ((overrides or {}).get(kind) or {}).items():
            if value in ("", None):
                out[kind].pop(key, None)
            else:
                out[kind][key] = str(value)
    return {kind: values for kind, values in out.items() if values}


# ---------------------------------------------------------------------------- manifests


def _labels(name: str, track: str | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "leanops"}
    if track:
        out["leanops.io/track"] = track
    return out


def deployment(name: str, track: str, image: str, replicas: int,
               res: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2, "failureThreshold": 3}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"{name}-{track}", "labels": _labels(name, track),
                     "annotations": {"leanops.io/image": image}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _labels(name, track)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(name, track)},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "automountServiceAccountToken": False,  # the model server never calls the API server
                    "securityContext": {"runAsNonRoot": True, "runAsUser": USER, "runAsGroup": USER,
                                        "fsGroup": USER, "seccompProfile": {"type": "RuntimeDefault"}},
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}],
                    "containers": [{
                        "name": "model", "image": image, "imagePullPolicy": "IfNotPresent",
                        "ports": [{"name": "http", "containerPort": PORT}],
                        "env": [{"name": "LEANOPS_HOST", "value": "0.0.0.0"},  # noqa: S104 - in the pod
                                {"name": "LEANOPS_PORT", "value": str(PORT)}],
                        "readinessProbe": probe,
                        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
                        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                        "resources": res if res is not None else pod_resources(),
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - the pod's own emptyDir
                        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True, "privileged": False,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    }


def service(name: str, track: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"{name}-{track}" if track else name, "labels": _labels(name, track)},
        "spec": {"selector": _labels(name, track),
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
    }


# what the Ingress or HTTPRoute exposes: the predictions and liveness only (Exact paths). /ready, /metrics and
# /metrics/samples stay inside the cluster: the kubelet probes the pods, leanops reads them through the API server
PUBLIC_PATHS = ("/predict", "/health")


def ingress(name: str, host: str, ingress_class: str, backend: str, canary_weight: int | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"{name}-canary" if canary_weight is not None else name, "labels": _labels(name)}
    if canary_weight is not None:
        meta["annotations"] = {"nginx.ingress.kubernetes.io/canary": "true",
                               "nginx.ingress.kubernetes.io/canary-weight": str(canary_weight),
                               "nginx.ingress.kubernetes.io/canary-weight-total": "100"}
    rule: dict[str, Any] = {"http": {"paths": [{"path": path, "pathType": "Exact", "backend": {
        "service": {"name": backend, "port": {"name": "http"}}}} for path in PUBLIC_PATHS]}}
    if host:
        rule["host"] = host
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {"ingressClassName": ingress_class, "rules": [rule]}}


def httproute(name: str, host: str, gateway: str, weight: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "parentRefs": [{"name": gateway}],
        "rules": [{"matches": [{"path": {"type": "Exact", "value": path}} for path in PUBLIC_PATHS],
                   "backendRefs": [{"name": f"{name}-stable", "port": 80, "weight": 100 - weight},
                                   {"name": f"{name}-canary", "port": 80, "weight": weight}]}],
    }
    if host:
        spec["hostnames"] = [host]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "labels": _labels(name)}, "spec": spec}


def record_configmap(name: str, record: Record) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{name}-leanops-record", "labels": _labels(name)},
            "data": {"record.json": record.to_json()}}


def validate(manifest: dict[str, Any]) -> None:
    """Against the Kubernetes schemas (strict: no unknown fields); HTTPRoute against the shipped Gateway API one."""
    import jsonschema

    where = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
    if manifest.get("kind") == "HTTPRoute":
        try:
            jsonschema.Draft202012Validator(json.loads(HTTPROUTE_SCHEMA.read_text())).validate(manifest)
        except jsonschema.ValidationError as exc:
            raise InfraError(f"rendered {where} is not a valid HTTPRoute: {exc.message}") from None
        return
    import kubernetes_validate

    try:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise InfraError(f"rendered {where} does not match the Kubernetes {K8S_VERSION} schema: "
                         f"{' '.join(str(exc.message).split())[:200]}") from None


# ---------------------------------------------------------------------------- the target


class KubernetesTarget:
    kind = "kubernetes"

    def __init__(self, name: str, out: Path, *, namespace: str = "default", traffic: str = "ingress-nginx",
                 host: str = "", replicas: int = 2, gateway: str = "leanops", ingress_class: str = "nginx",
                 dry_run: bool = False, ready_timeout: float = 120.0,
                 resources: dict[str, Any] | None = None) -> None:
        self.name, self.out, self.namespace, self.traffic = name, out, namespace, traffic
        self.resources = pod_resources(resources)
        self.host, self.replicas, self.gateway, self.ingress_class = host, replicas, gateway, ingress_class
        self.dry_run, self.ready_timeout = dry_run, ready_timeout
        self.plan: list[dict[str, Any]] = []
        self.stable: Entry | None = None
        self.canary: Entry | None = None
        self._n = 0
        self.weight = 0
        self._kubeconfig = ""
        self._kubeconfig_dir = ""  # a private directory of our own, when RUNNER_TEMP is not set

    def describe(self) -> str:
        return f"kubernetes namespace {self.namespace} ({self.traffic}" + (", dry run" if self.dry_run else "") + ")"

    # ------------------------------------------------------------------ kubectl

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        data = os.environ.get("LEANOPS_KUBECONFIG_DATA", "")
        if data and not self._kubeconfig:
            gh.mask(data)
            self._write_kubeconfig(data)
        if self._kubeconfig:
            env["KUBECONFIG"] = self._kubeconfig
        return env

    def _write_kubeconfig(self, data: str) -> None:
        """Under ``RUNNER_TEMP`` (the runner empties it after each job; never a shared /tmp), else in a private
        directory (0700); the file itself 0600 (mkstemp); removed at exit, after a failure too."""
        atexit.register(self.close)  # before the file exists: no window where it is left behind
        runner_temp = os.environ.get("RUNNER_TEMP", "")
        if runner_temp and Path(runner_temp).is_dir():
            parent = runner_temp
        else:
            parent = self._kubeconfig_dir = tempfile.mkdtemp(prefix="leanops-kube-")
        fd, self._kubeconfig = tempfile.mkstemp(prefix="leanops-kubeconfig-", dir=parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(data)

    def close(self) -> None:
        """Remove the kubeconfig written from data (and its private directory); safe to call more than once."""
        if self._kubeconfig:
            Path(self._kubeconfig).unlink(missing_ok=True)
            self._kubeconfig = ""
        if self._kubeconfig_dir:
            import shutil

            shutil.rmtree(self._kubeconfig_dir, ignore_errors=True)
            self._kubeconfig_dir = ""

    def kubectl(self, *args: str, what: str, check: bool = True) -> str:
        cmd = ["kubectl", "--namespace", self.namespace, *args]
        self.plan.append({"what": what, "command": cmd})
        if self.dry_run:
            return ""
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=self._env(), timeout=600)
        except FileNotFoundError:
            raise InfraError("kubectl not found on PATH; the kubernetes target applies manifests with it") from None
        if res.returncode != 0 and check:
            last = (res.stderr.strip().splitlines() or ["no message"])[-1]
            raise InfraError(f"kubectl {' '.join(args[:2])} ({what}) failed: {last}")
        return res.stdout

    def apply(self, label: str, manifests: list[dict[str, Any]]) -> Path:
        for m in manifests:
            validate(m)
        self._n += 1
        path = self.out / f"{self._n:02d}-{label}.yaml"
        atomic_write(path, yaml.safe_dump_all(manifests, sort_keys=False))
        self.kubectl("apply", "-f", str(path), what=label)
        return path

    def write_plan(self) -> None:
        atomic_write_json(self.out / "plan.json", self.plan)
        lines = ["#!/bin/sh", "# the kubectl commands leanops canary-deploy runs, in order", "set -e"]
        lines += [f"# {p['what']}\n{shlex.join(p['command'])}" for p in self.plan]
        atomic_write(self.out / "plan.sh", "\n".join(lines) + "\n", mode=0o755)

    # ------------------------------------------------------------------ manifests per phase

    def _split(self, weight: int) -> list[dict[str, Any]]:
        if self.traffic == "gateway-api":
            return [httproute(self.name, self.host, self.gateway, weight)]
        return [ingress(self.name, self.host, self.ingress_class, f"{self.name}-canary", weight)]

    def _base(self, stable: Entry) -> list[dict[str, Any]]:
        out = [deployment(self.name, "stable", stable.image, self.replicas, self.resources), service(self.name, None),
               service(self.name, "stable"), service(self.name, "canary")]
        if self.traffic == "ingress-nginx":
            out.append(ingress(self.name, self.host, self.ingress_class, f"{self.name}-stable", None))
        return out

    # ------------------------------------------------------------------ what the controller calls

    def pull(self, image: str) -> Entry:
        if "@sha256:" not in image:
            raise BadInput(f"image: {image!r} is not pinned by digest; expected REGISTRY/IMAGE@sha256:...")
        return Entry(image=image)

    def read_record(self) -> Record | None:
        if self.dry_run:  # the record a previous dry run left: plans chain like real deploys
            saved = self.out / "record.json"
            return Record.from_json(saved.read_text(), str(saved)) if saved.is_file() else None
        text = self.kubectl("get", "configmap", f"{self.name}-leanops-record", "-o", "json", "--ignore-not-found",
                            what="read the deployment record")
        if not text.strip():
            return None
        data = json.loads(text).get("data", {}).get("record.json", "")
        record = Record.from_json(data, f"configmap/{self.name}-leanops-record") if data else None
        self.stable = record.stable if record else None
        return record

    def write_record(self, record: Record) -> None:
        self.apply("record", [record_configmap(self.name, record)])
        if self.dry_run:
            atomic_write(self.out / "record.json", record.to_json())
            self.write_plan()

    def prepare(self, record: Record | None) -> bool:
        for old in [*self.out.glob("[0-9][0-9]-*.yaml"), self.out / "plan.json", self.out / "plan.sh"]:
            old.unlink(missing_ok=True)  # this run's files only
        if self.dry_run:
            return bool(record and record.stable)
        if not (record and record.stable):
            return False
        out = self.kubectl("get", "deployment", f"{self.name}-stable", "--ignore-not-found", "-o", "name",
                           what="is a stable deployed")
        return bool(out.strip())

    def _rollout(self, track: str) -> str:
        res = self.kubectl("rollout", "status", f"deployment/{self.name}-{track}",
                           f"--timeout={int(self.ready_timeout)}s", what=f"wait for the {track} to be ready",
                           check=False)
        return "" if self.dry_run or "successfully rolled out" in res else f"{track} not ready: {res.strip()[-200:]}"

    def first_deploy(self, entry: Entry) -> None:
        self.apply("stable", self._base(entry) + self._split(0))
        why = self._rollout("stable")
        if why:
            raise InfraError(f"the first stable did not start: {why}")
        self.stable = entry

    def start_canary(self, entry: Entry) -> str:
        self.canary = entry
        self.apply("canary", [deployment(self.name, "canary", entry.image, 1, self.resources),
                              service(self.name, "canary")])
        return self._rollout("canary")

    def set_weight(self, weight: int) -> None:
        self.apply(f"weight-{weight}", self._split(weight))
        self.weight = weight

    def scrape(self, role: str) -> Snapshot | None:
        """Sum of the pods' ``/metrics`` of one track, read through the API server's pod proxy."""
        if self.dry_run:
            return None
        names = self.kubectl("get", "pods", "-l", f"leanops.io/track={role},app.kubernetes.io/name={self.name}",
                             "-o", "jsonpath={.items[*].metadata.name}", what=f"{role} pods")
        texts = [self.kubectl("get", "--raw", f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{PORT}/proxy/metrics",
                              what=f"scrape {role}", check=False) for pod in names.split()]
        return Snapshot.parse("\n".join(t for t in texts if t.strip())) if any(t.strip() for t in texts) else None

    def canary_problem(self) -> str:
        if self.dry_run:
            return ""
        out = self.kubectl("get", "deployment", f"{self.name}-canary", "-o",
                           "jsonpath={.status.readyReplicas}", what="canary ready replicas", check=False)
        return "" if out.strip() not in ("", "0") else "the canary has no ready pod"

    def abort(self) -> None:
        self.set_weight(0)
        self.kubectl("delete", "deployment", f"{self.name}-canary", "--ignore-not-found", what="stop the canary")
        if self.dry_run:
            self.write_plan()

    def promote(self) -> None:
        assert self.canary is not None
        if self.weight != 100:
            self.set_weight(100)
        self.apply("promote", [deployment(self.name, "stable", self.canary.image, self.replicas, self.resources)])
        why = self._rollout("stable")
        if why:
            raise InfraError(f"the promoted stable did not roll out: {why}")
        self.set_weight(0)
        self.kubectl("delete", "deployment", f"{self.name}-canary", "--ignore-not-found", what="remove the canary")
        self.stable, self.canary = self.canary, None

    def switch_to(self, entry: Entry) -> None:
        self.apply("rollback", [deployment(self.name, "stable", entry.image, self.replicas, self.resources)])
        why = self._rollout("stable")
        if why:
            raise InfraError(f"the previous stable did not roll out: {why}")
        self.stable = entry
