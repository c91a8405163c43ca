"""Issue 17: every job that reaches a service holds its credential, and no other job holds it.

The adopter's caller (each template, as `leanops init` writes it) is followed through every reusable workflow of
the kit (``test_workflows.pipeline_runs``) on a pull request and on a push to the default branch. For each job
that can run:

- the tracking server: a job handed ``MLFLOW_TRACKING_URI`` also sets ``MLFLOW_TRACKING_USERNAME``, ``_PASSWORD``
  and ``_TOKEN`` (a server with a login); a job without the address holds none of them;
- the object store (the DVC remote, MLflow's artifacts): a job that runs a kit action reading or writing it and
  restores no cache (a job that restores one holds no secret: test_workflows)
  (data-validate, train-with-cache, gate-metrics' gate, build-push-image, weekly-drift) sets
  ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` and ``AWS_ENDPOINT_URL`` from the
  adopter's secrets; any other job sets none and receives none;
- on a pull request only the read-only storage credential (``AWS_READ_*``) reaches a job; the one that may
  write (``AWS_ACCESS_KEY_ID``...) only reaches jobs in the GitHub environment, on trusted refs;
- the database (data in PostgreSQL): ``PGPASSWORD`` reaches the jobs that run data-validate or weekly-drift (the
  two that read a table or a query) and ml-pipeline's refresh job (its refresh stages read the source table), as a
  secret and in ``env:``, and no other job.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .test_workflows import MAIN_PLAN, PR_PLAN, JobRun, pipeline_runs

ROOT = Path(__file__).resolve().parents[2]
TRACKING_ENV = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"}
STORAGE_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"}
STORAGE_WRITE = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}  # the adopter's secrets
STORAGE_READ = {"AWS_READ_ACCESS_KEY_ID", "AWS_READ_SECRET_ACCESS_KEY", "AWS_READ_SESSION_TOKEN"}
STORAGE_SECRETS = STORAGE_WRITE | STORAGE_READ | {"AWS_ENDPOINT_URL"}
# the kit's actions that read or write the object store: DVC-tracked data, the run-cache, a model's files
STORAGE_ACTIONS = {"data-validate", "train-with-cache", "gate-metrics", "build-push-image", "weekly-drift"}
DATABASE_ACTIONS = {"data-validate", "weekly-drift"}  # data: / current: postgresql://... with a table or query
TEMPLATES = ("ml-pipeline.yml", "train-with-cache.yml", "gate-metrics.yml", "data-validate.yml",
             "build-push-image.yml", "weekly-drift.yml")
EVENTS = {"pull_request": ("refs/pull/7/merge", PR_PLAN), "push": ("refs/heads/main", MAIN_PLAN)}


def runs_action(run: JobRun, actions: set[str]) -> bool:
    job = yaml.safe_load((ROOT / ".github/workflows" / run.workflow).read_text())["jobs"][run.job]
    return any((m := re.match(r"leanops/leanops/actions/([a-z-]+)@", str(step.get("uses", "")))) and
               m.group(1) in actions for step in job.get("steps") or [])


def reaches_storage(run: JobRun) -> bool:
    """Does the job run a kit action that reads or writes the object store? (gate-metrics' promote only moves
    an alias: the tracking server, not the store.) A job that restores a cache holds no secret at all
    (test_workflows): its DVC cache comes from actions/cache, as a pull request's training does."""
    if run.restores_cache:
        return False
    job = yaml.safe_load((ROOT / ".github/workflows" / run.workflow).read_text())["jobs"][run.job]
    for step in job.get("steps") or []:
        m = re.match(r"leanops/leanops/actions/([a-z-]+)@", str(step.get("uses", "")))
        if m and m.group(1) in STORAGE_ACTIONS and (step.get("with") or {}).get("command") != "promote":
            return True
    return False


def problems(runs: list[JobRun], event: str) -> list[str]:
    found = []
    for r in runs:
        where = f"{r.workflow} job {r.job}"
        if "MLFLOW_TRACKING_URI" in r.env_names:
            if missing := TRACKING_ENV - r.env_names:
                found.append(f"{where}: reaches the tracking server without {sorted(missing)}")
        elif held := TRACKING_ENV & r.env_names:
            found.append(f"{where}: holds {sorted(held)} but never reaches the tracking server")
        if reaches_storage(r):
            if missing := STORAGE_ENV - r.env_names:
                found.append(f"{where}: reaches the object store without {sorted(missing)}")
            elif not r.secrets & STORAGE_SECRETS:
                found.append(f"{where}: reaches the object store but no storage secret of the caller reaches it")
        elif held := ({n for n in r.env_names if n.startswith("AWS_")} | (r.secrets & STORAGE_SECRETS)):
            found.append(f"{where}: holds {sorted(held)} but never reaches the object store")
        if runs_action(r, DATABASE_ACTIONS) or (r.workflow, r.job) == ("ml-pipeline.yml", "refresh"):
            if "PGPASSWORD" not in r.env_names or "PGPASSWORD" not in r.secrets:
                found.append(f"{where}: reads the database without PGPASSWORD")
        elif "PGPASSWORD" in r.env_names | r.secrets:
            found.append(f"{where}: holds PGPASSWORD but never reads the database")
        if event == "pull_request" and r.secrets & STORAGE_WRITE:
            found.append(f"{where}: a pull request's job receives {sorted(r.secrets & STORAGE_WRITE)}")
        if r.secrets & STORAGE_WRITE and r.environment in ("", None):
            found.append(f"{where}: receives {sorted(r.secrets & STORAGE_WRITE)} outside the environment")
    return found


@pytest.mark.parametrize("event", sorted(EVENTS))
@pytest.mark.parametrize("template", TEMPLATES)
def test_each_job_holds_the_credentials_of_the_services_it_reaches_and_no_other(template: str, event: str) -> None:
    ref, plan = EVENTS[event]
    runs = pipeline_runs(event, ref, plan, template)
    assert runs, template
    assert problems(runs, event) == []


def test_the_whole_pipeline_reaches_the_store_where_expected() -> None:
    """ml-pipeline on a push: which jobs hold the object store's credential, and which may write."""
    runs = pipeline_runs("push", "refs/heads/main", MAIN_PLAN)
    storage = {(r.workflow, r.job) for r in runs if r.secrets & STORAGE_SECRETS}
    assert {("data-validate.yml", "validate"), ("train-with-cache.yml", "train-trusted"),
            ("gate-metrics.yml", "gate"), ("build-push-image.yml", "image")} <= storage, storage
    writers = {(r.workflow, r.job) for r in runs if r.secrets & STORAGE_WRITE}
    assert writers == {("train-with-cache.yml", "train-trusted")}, writers
    pr = pipeline_runs("pull_request", "refs/pull/7/merge", PR_PLAN)
    train = next(r for r in pr if r.workflow == "train-with-cache.yml" and r.job == "train")
    assert train.restores_cache and not train.secrets, train  # the DVC cache from actions/cache, no secret
    validate = next(r for r in pr if r.workflow == "data-validate.yml")
    assert validate.secrets & STORAGE_SECRETS == STORAGE_READ - {"AWS_READ_SESSION_TOKEN"} | {"AWS_ENDPOINT_URL"}
    assert not validate.restores_cache, validate


def test_the_check_finds_a_missing_and_a_stray_credential() -> None:
    runs = pipeline_runs("push", "refs/heads/main", MAIN_PLAN)
    image = next(r for r in runs if r.workflow == "build-push-image.yml")
    stripped = JobRun(image.workflow, image.job, image.secrets - STORAGE_SECRETS, image.env_names - STORAGE_ENV,
                      image.environment, image.restores_cache, image.write_permissions)
    assert problems([stripped], "push") == [
        "build-push-image.yml job image: reaches the object store without ['AWS_ACCESS_KEY_ID', "
        "'AWS_ENDPOINT_URL', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']"]
    comment = next(r for r in runs if r.workflow == "gate-metrics.yml" and r.job == "comment") if any(
        r.job == "comment" for r in runs) else next(r for r in runs if r.workflow == "canary-deploy.yml")
    stray = JobRun(comment.workflow, comment.job, comment.secrets | {"AWS_ACCESS_KEY_ID"},
                   comment.env_names | {"AWS_ACCESS_KEY_ID"}, comment.environment, comment.restores_cache,
                   comment.write_permissions)
    assert any("never reaches the object store" in p for p in problems([stray], "push"))
    assert any("a pull request's job receives" in p for p in problems([stray], "pull_request"))
    stray = JobRun(image.workflow, image.job, image.secrets | {"PGPASSWORD"}, image.env_names | {"PGPASSWORD"},
                   image.environment, image.restores_cache, image.write_permissions)
    assert "build-push-image.yml job image: holds PGPASSWORD but never reads the database" in problems([stray], "push")
    validate = next(r for r in runs if r.workflow == "data-validate.yml")
    assert problems([JobRun(validate.workflow, validate.job, validate.secrets - {"PGPASSWORD"}, validate.env_names,
                            validate.environment, validate.restores_cache, validate.write_permissions)], "push") == [
        "data-validate.yml job validate: reads the database without PGPASSWORD"]
