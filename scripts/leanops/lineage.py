"""``leanops lineage``: one record of what produced what is deployed, kept with the model version.

``leanops lineage record`` (the last job of ml-pipeline on the default branch) ties together the data hashes
(``dvc.lock`` and each data file's MD5, from the training run's tags), the validation result, the commit, the
parameters, the MLflow run and model version, the gate report, the image digest, the canary verdict and who
promoted it. It writes one JSON file and the markdown of it to the job summary, and keeps both with the model
version: the JSON is logged to the version's run as ``lineage/<time>-<commit>.json`` and the version gets the
tags ``leanops.lineage.*`` (``leanops.image`` names its image, so an unchanged model is never rebuilt).

``leanops lineage image`` prints the image recorded for a model version (output ``image``, empty when none);
``leanops lineage show`` prints the latest record of a version (or of the alias ``champion``) for an auditor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from . import config, gh
from .errors import BadInput
from .flags import add_flag
from .fsutil import atomic_write, atomic_write_json

SCHEMA = "leanops.lineage/v1"
DEFAULT_OUTPUT = ".leanops/lineage/lineage.json"
ARTIFACT_DIR = "lineage"
TAG_IMAGE = "leanops.image"
TAG_PREFIX = "leanops.lineage."
TAG_LOCK = "leanops.dvc_lock_sha256"  # written by train-with-cache on its runs
DEP_PREFIX = "dvc.dep."
TAG_REFRESH = "leanops.refresh"  # written by train-with-cache --refresh on its run: where the data came from, when


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("lineage", help="the deployment's lineage record, kept with the model version")
    inner = p.add_subparsers(dest="lineage_command", metavar="{record,image,show}")
    common = argparse.ArgumentParser(add_help=False)
    add_flag(common, "--working-directory", help="the folder holding leanops.yml", default=".")
    add_flag(common, "--model-name", help="registered model name (default: model.name in leanops.yml)", default="")
    add_flag(common, "--model-version", help="the model version (train-with-cache's model-version)", default="")
    add_flag(common, "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, leanops.yml, "
             "else the embedded store)", default="")

    rec = inner.add_parser("record", parents=[common], help="write the record, keep it with the model version")
    add_flag(rec, "--run-id", help="the MLflow run of the model (default: the version's run)", default="")
    add_flag(rec, "--skipped", help="true when training was skipped (nothing changed)", default=False, kind="bool")
    add_flag(rec, "--data-valid", help="data-validate's success output (true|false|'' when unknown)", default="")
    add_flag(rec, "--validation-result", help="data-validate's result.json", default="")
    add_flag(rec, "--gate-passed", help="gate-metrics' passed output", default="")
    add_flag(rec, "--gate-report", help="gate-metrics' report.json", default="")
    add_flag(rec, "--image", help="the deployed image, REGISTRY/IMAGE@sha256:...", default="")
    add_flag(rec, "--canary-verdict", help="canary-deploy's verdict (promoted, rolled-back; '' when none)",
             default="")
    add_flag(rec, "--champion-version", help="the champion after this run (the promote job's output)", default="")
    add_flag(rec, "--output", help=f"the JSON record (default {DEFAULT_OUTPUT})", default=DEFAULT_OUTPUT)
    rec.set_defaults(func=run_record)

    img = inner.add_parser("image", parents=[common], help="the image recorded for a model version (output image)")
    img.set_defaults(func=run_image)

    show = inner.add_parser("show", parents=[common], help="print the latest record of a version (or the champion)")
    show.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


# ---------------------------------------------------------------------------- settings


def _settings(args: argparse.Namespace) -> tuple[Path, str, str]:
    from . import tracking

    root = Path(args.working_directory)
    if not root.is_dir():
        raise BadInput(f"working-directory: {args.working_directory!r} is not a directory; expected an existing "
                       "folder")
    cfg_path = root / config.DEFAULT_FILE
    cfg = config.load(args.config or (cfg_path if cfg_path.is_file() else None))
    name = args.model_name or cfg.model_name or ""
    if not name:
        raise BadInput("model.name: missing; expected the registered model name in leanops.yml (or model-name)",
                       file=str(cfg.path or cfg_path))
    configured = cfg.section("train-with-cache").get("tracking-uri")
    uri, _local = tracking.resolve_uri(args.tracking_uri or None, configured, root)
    return root, name, uri


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _read_json(path: str, what: str) -> Any:
    if not path:
        return None
    p = Path(path)
    if not p.is_file() and p.parent.is_dir():
        # a downloaded artifact may keep the uploaded folder's name as a level of its own
        p = next(iter(sorted(p.parent.rglob(p.name))), p)
    if not p.is_file():
        gh.warning(f"{what}: {path} not found; the record says so", title="leanops lineage")
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"not valid JSON: {' '.join(str(exc).split())[:200]}; expected {what}", file=path) from None


def _bool(text: str) -> bool | None:
    return {"true": True, "false": False}.get(str(text).strip().lower())


# ---------------------------------------------------------------------------- the record


def validation_part(valid: str, result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"success": _bool(valid)}
    if isinstance(result, dict):
        out["success"] = result.get("success", out["success"])
        for key in ("evaluated", "failed", "warnings", "suite"):
            if key in result:
                out[key] = result[key]
        out["datasets"] = [{k: d.get(k) for k in ("path", "rows") if k in d} for d in result.get("datasets") or []
                           if isinstance(d, dict)]
    else:
        out["result"] = "not available"
    return out


def gate_part(passed: str, report: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"passed": _bool(passed)}
    if not isinstance(report, dict):
        out["report"] = "not available"
        return out
    out["passed"] = report.get("passed", out["passed"])
    champion = report.get("champion") or {}
    out["champion_version"] = champion.get("version") if isinstance(champion, dict) else None
    out["gates"] = [{k: g.get(k) for k in ("metric", "candidate", "champion", "delta", "threshold", "verdict")}
                    for g in report.get("gates") or [] if isinstance(g, dict)]
    return out


def build_record(args: argparse.Namespace, name: str, uri: str, *, version: Any, run: Any) -> dict[str, Any]:
    """The record from the CLI's inputs, the model version and its run (mlflow objects or None)."""
    from . import tracking

    run_tags: dict[str, str] = dict(run.data.tags) if run is not None else {}
    params: dict[str, str] = dict(run.data.params) if run is not None else {}
    metrics: dict[str, float] = dict(run.data.metrics) if run is not None else {}
    version_tags: dict[str, str] = dict(version.tags or {}) if version is not None else {}
    image = args.image.strip()
    commit = gh.commit_sha(args.working_directory)
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    run_id_env = os.environ.get("GITHUB_RUN_ID", "")
    return {
        "schema": SCHEMA,
        "created_at": _now(),
        "source": {
            "repository": repo, "commit": commit, "ref": os.environ.get("GITHUB_REF", ""),
            "event": os.environ.get("GITHUB_EVENT_NAME", ""), "actor": os.environ.get("GITHUB_ACTOR", ""),
            "workflow_run": f"{server}/{repo}/actions/runs/{run_id_env}" if repo and run_id_env else "",
        },
        "data": {
            "dvc_lock_sha256": run_tags.get(TAG_LOCK, ""),
            "files": {k[len(DEP_PREFIX):]: v for k, v in sorted(run_tags.items()) if k.startswith(DEP_PREFIX)},
            "refreshed": refreshed_part(run_tags.get(TAG_REFRESH, "")),
        },
        "validation": validation_part(args.data_valid, _read_json(args.validation_result, "data-validate's result")),
        "training": {
            "run_id": run.info.run_id if run is not None else args.run_id,
            "skipped": bool(args.skipped), "params": params, "metrics": metrics,
            "tracking_uri": tracking.mask_uri(uri),
        },
        "model": {
            "name": name, "version": str(version.version) if version is not None else args.model_version,
            "uri": f"models:/{name}/{version.version if version is not None else args.model_version}",
            "aliases": sorted(version.aliases or []) if version is not None else [],
        },
        "gate": gate_part(args.gate_passed, _read_json(args.gate_report, "gate-metrics' report")),
        "image": {"ref": image, "digest": image.rsplit("@", 1)[1] if "@" in image else ""},
        "canary": {"verdict": args.canary_verdict or "not run"},
        "promotion": {
            "champion_version": args.champion_version,
            "promoted_by": version_tags.get("leanops.promoted_by", ""),
            "promoted_at": version_tags.get("leanops.promoted_at", ""),
            "promoted_run": version_tags.get("leanops.promoted_run_url", ""),
        },
    }


def refreshed_part(text: str) -> list[dict[str, Any]]:
    """train-with-cache --refresh's record on the run: each refreshed stage, what it read, its hashes, when."""
    try:
        data = json.loads(text) if text else []
    except json.JSONDecodeError:
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _refreshed_text(items: list[dict[str, Any]]) -> str:
    parts = []
    for r in items:
        source = r.get("source") or {}
        where = ", ".join(f"{k}={v}" for k, v in sorted((source.get("params") or {}).items())) or ", ".join(
            source.get("deps") or []) or source.get("repo", "")
        parts.append(f"`{r.get('name')}` ({r.get('how')}) at {r.get('refreshed_at')}"
                     + (f" from {where}" if where else ""))
    return "; ".join(parts) or "not refreshed (the committed data)"


def markdown(rec: dict[str, Any]) -> str:
    m, src, gate, val = rec["model"], rec["source"], rec["gate"], rec["validation"]

    def yes_no(value: Any) -> str:
        return {True: "✅ passed", False: "❌ failed"}.get(value, "unknown")

    data = ", ".join(f"`{path}` md5 `{md5[:12]}`" for path, md5 in rec["data"]["files"].items()) or "not recorded"
    params = ", ".join(f"{k}={v}" for k, v in sorted(rec["training"]["params"].items())) or "none"
    rows = [
        ["model", f"{m['name']} version {m['version']}" + (f" ({', '.join(m['aliases'])})" if m["aliases"] else "")],
        ["commit", f"`{src['commit'][:12]}` {src['ref']}".strip()],
        ["inputs (DVC deps)", data],
        ["data refreshed", _refreshed_text(rec["data"].get("refreshed") or [])],
        ["dvc.lock", f"`{rec['data']['dvc_lock_sha256'][:16]}`" if rec["data"]["dvc_lock_sha256"] else "not recorded"],
        ["validation", yes_no(val.get("success"))
         + (f", {val['evaluated']} expectations" if "evaluated" in val else "")],
        ["training", f"run `{rec['training']['run_id']}`" + (" (skipped: nothing changed)"
                                                              if rec["training"]["skipped"] else "")],
        ["params", params],
        ["gate", yes_no(gate.get("passed")) + (f" against version {gate['champion_version']}"
                                               if gate.get("champion_version") else "")],
        ["image", f"`{rec['image']['ref']}`" if rec["image"]["ref"] else "none"],
        ["canary", rec["canary"]["verdict"]],
        ["champion", f"version {rec['promotion']['champion_version']}" if rec["promotion"]["champion_version"]
         else "unchanged"],
        ["approved by", rec["promotion"]["promoted_by"] or src["actor"] or "unknown"],
    ]
    link = f"\n[the workflow run]({src['workflow_run']})\n" if src["workflow_run"] else ""
    return f"## leanops lineage: {m['name']} version {m['version']}\n\n" + gh.md_table(["", ""], rows) + link


def keep(uri: str, name: str, version: str, run_id: str, record_file: Path, rec: dict[str, Any]) -> str:
    """Log the record to the version's run and tag the version; returns the artifact path."""
    from . import tracking

    client = tracking.mlflow_client(uri)
    stamp = rec["created_at"].replace(":", "").replace("-", "")[:15]
    artifact = f"{ARTIFACT_DIR}/{stamp}-{(rec['source']['commit'] or 'local')[:12]}.json"
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / Path(artifact).name
        named.write_bytes(record_file.read_bytes())
        tracking.mlflow_call(uri, f"log the record to run {run_id}", client.log_artifact, run_id, str(named),
                             ARTIFACT_DIR)
    tags = {f"{TAG_PREFIX}record": artifact, f"{TAG_PREFIX}at": rec["created_at"],
            f"{TAG_PREFIX}commit": rec["source"]["commit"], f"{TAG_PREFIX}canary": rec["canary"]["verdict"],
            f"{TAG_PREFIX}workflow-run": rec["source"]["workflow_run"]}
    if rec["image"]["ref"]:
        tags[TAG_IMAGE] = rec["image"]["ref"]
    for key, value in tags.items():
        tracking.mlflow_call(uri, f"tag version {version}", client.set_model_version_tag, name, version, key,
                             str(value))
    return artifact


def run_record(args: argparse.Namespace) -> int:
    from . import tracking

    root, name, uri = _settings(args)
    if not args.model_version:
        raise BadInput("model-version: missing; expected train-with-cache's model-version output")
    tracking.configure_mlflow(uri)
    client = tracking.mlflow_client(uri)
    version = tracking.mlflow_call(uri, f"model {name} version {args.model_version}", client.get_model_version, name,
                                   args.model_version, missing=None)
    if version is None:
        raise BadInput(f"model-version: {name} has no version {args.model_version} at {tracking.mask_uri(uri)}")
    run_id = args.run_id or version.run_id or ""
    run = tracking.mlflow_call(uri, f"run {run_id}", client.get_run, run_id, missing=None) if run_id else None
    rec = build_record(args, name, uri, version=version, run=run)
    out = Path(args.output)
    record_file = atomic_write_json(out if out.is_absolute() else root / out, rec)
    text = markdown(rec)
    atomic_write(record_file.with_suffix(".md"), text)
    gh.add_summary(text)
    if run is not None:
        artifact = keep(uri, name, str(version.version), run.info.run_id, record_file, rec)
        gh.step(f"lineage: kept with {name} version {version.version} (run {run.info.run_id}, {artifact})")
    else:
        gh.warning(f"lineage: {name} version {version.version} has no run; the record is only in the job",
                   title="leanops lineage")
    gh.set_outputs({"record-file": str(record_file.resolve())})
    gh.step(f"lineage: {record_file}")
    return 0


def run_image(args: argparse.Namespace) -> int:
    from . import tracking

    _root, name, uri = _settings(args)
    image = ""
    if args.model_version:
        detail = tracking.version_detail(uri, name, args.model_version)
        image = (detail.tags.get(TAG_IMAGE, "") if detail else "").strip()
    gh.set_output("image", image)
    gh.step(f"lineage: {name} version {args.model_version or '?'}: "
            + (f"image {image} (recorded; not rebuilt)" if image else "no recorded image"))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from . import tracking

    _root, name, uri = _settings(args)
    detail = (tracking.version_detail(uri, name, args.model_version) if args.model_version
              else tracking.alias_detail(uri, name, "champion"))
    which = f"version {args.model_version}" if args.model_version else "the alias champion"
    if detail is None:
        raise BadInput(f"model-version: {name} has no {which} at {tracking.mask_uri(uri)}")
    artifact = detail.tags.get(f"{TAG_PREFIX}record", "")
    if not artifact:
        raise BadInput(f"{name} version {detail.info.version} has no lineage record; expected a deployment by "
                       "ml-pipeline (leanops lineage record)")
    with tempfile.TemporaryDirectory() as tmp:
        path = tracking.download_artifact(uri, detail.info.run_id, artifact, Path(tmp))
        if path is None:
            raise BadInput(f"{name} version {detail.info.version}: the record {artifact} is missing from run "
                           f"{detail.info.run_id}")
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    print(markdown(rec))
    return 0
