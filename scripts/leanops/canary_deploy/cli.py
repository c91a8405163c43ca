"""``leanops canary-deploy``'s flags (each named like its action input, default from ``LEANOPS_*``) and its
settings from ``leanops.yml`` (``canary-deploy:``), then the run: controller, report, outputs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from .. import config, gh
from ..errors import BadInput, CheckFailed
from ..flags import add_flag

DEFAULT_STEPS = ((10, 60.0), (50, 60.0), (100, 60.0))
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("canary-deploy", help="stepwise canary of a model image: analysis, promote or roll back")
    p.add_argument("op", nargs="?", choices=["deploy", "rollback"], default=None, metavar="{deploy,rollback}",
                   help="deploy (default) or rollback to the previous stable (or --operation)")
    add_flag(p, "--image", help="the canary: REGISTRY/IMAGE@sha256:... (build-push-image's image output)",
             default="")
    add_flag(p, "--name", help="the deployment's name (lower case, digits, -; default: model.name in leanops.yml)",
             default="")
    add_flag(p, "--target", help="docker or kubernetes (default: canary-deploy.target in leanops.yml, else docker)",
             default="", choices=["", "docker", "kubernetes"])
    add_flag(p, "--steps", help="WEIGHT:WINDOW_SECONDS,... e.g. 10:60,50:60,100:60 (default: leanops.yml, "
             "else 10:60,50:60,100:60)", default="")
    add_flag(p, "--router-publish", help="docker: the router's published port, [ADDRESS:]PORT; a bare PORT is "
             "loopback only, every interface only when written (0.0.0.0:8080) (default 127.0.0.1:8080)",
             default="")
    add_flag(p, "--router-base-image", help="docker: BASE_IMAGE of the router image (default debian:bookworm-slim)",
             default="")
    add_flag(p, "--manifests-dir", help="kubernetes: where the rendered manifests and the plan go",
             default="canary-manifests")
    add_flag(p, "--dry-run", help="kubernetes: render and plan only, run no kubectl", default=False, kind="bool")
    add_flag(p, "--report-file", help="the JSON report", default="canary-report.json")
    add_flag(p, "--operation", help="deploy, or rollback to the previous stable (same as the positional word)",
             default="deploy", choices=["deploy", "rollback"])
    p.set_defaults(func=run)


def _steps(text: str, cfg: config.Config, section: dict[str, Any]) -> list[Any]:
    from .controller import Step

    if text:
        steps = []
        for part in config.split_list(text):
            weight, _, secs = part.partition(":")
            try:
                steps.append(Step(int(weight), float(secs or DEFAULT_STEPS[0][1])))
            except ValueError:
                raise BadInput(f"steps: {part!r} is not WEIGHT:WINDOW_SECONDS; expected e.g. 10:60,50:60,100:60") \
                    from None
    elif section.get("steps"):
        steps = [Step(int(s["weight"]), float(s.get("window", DEFAULT_STEPS[0][1]))) for s in section["steps"]]
    else:
        steps = [Step(w, s) for w, s in DEFAULT_STEPS]
    where = cfg.where("canary-deploy", "steps") if not text else "steps"
    weights = [s.weight for s in steps]
    if any(not 0 < w <= 100 for w in weights) or weights != sorted(set(weights)) or any(s.window <= 0 for s in steps):
        raise BadInput(f"{where}: weights {weights} must rise strictly within 1..100 and windows be > 0 seconds")
    return steps


def settings(args: argparse.Namespace, cfg: config.Config) -> tuple[Any, str, str]:
    from .controller import Settings
    from .judge import DEFAULT_MAX_DISTANCE, Thresholds

    section = cfg.section("canary-deploy")
    name = (args.name or section.get("name") or cfg.model_name or "").strip().lower()
    if not name and args.image:
        name = args.image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    if not NAME.match(name):
        raise BadInput(f"name: {name!r} is not a valid deployment name; expected lower case letters, digits and -"
                       " (default: model.name in leanops.yml)")
    target = args.target or section.get("target") or "docker"
    distance = section.get("distance", "psi")
    d = Thresholds()
    t = Thresholds(
        min_requests=int(section.get("min-requests", d.min_requests)),
        significance=float(section.get("significance", d.significance)),
        max_error_rate_increase=float(section.get("max-error-rate-increase", d.max_error_rate_increase)),
        min_errors=int(section.get("min-errors", d.min_errors)),
        max_latency_ratio=float(section.get("max-latency-ratio", d.max_latency_ratio)),
        latency_slack_ms=float(section.get("latency-slack-ms", d.latency_slack_ms)),
        distance=distance,
        max_prediction_distance=float(section.get("max-prediction-distance", DEFAULT_MAX_DISTANCE[distance])),
    )
    base = Settings(steps=[])
    s = Settings(steps=_steps(args.steps, cfg, section), thresholds=t,
                 on_inconclusive=section.get("on-inconclusive", base.on_inconclusive),
                 max_extensions=int(section.get("max-extensions", base.max_extensions)),
                 failure_threshold=int(section.get("failure-threshold", base.failure_threshold)),
                 warm_up_requests=int(section.get("warm-up-requests", base.warm_up_requests)))
    return s, name, target


def make_target(args: argparse.Namespace, cfg: config.Config, name: str, kind: str) -> Any:
    section = cfg.section("canary-deploy")
    if kind == "kubernetes":
        from .kubernetes import KubernetesTarget

        k = section.get("kubernetes") or {}
        out = Path(args.manifests_dir)
        return KubernetesTarget(name, out if out.is_absolute() else cfg.root / out, namespace=k.get("namespace",
                                "default"), traffic=k.get("traffic", "ingress-nginx"), host=k.get("host", ""),
                                replicas=int(k.get("replicas", 2)), gateway=k.get("gateway", "leanops"),
                                ingress_class=k.get("ingress-class", "nginx"), dry_run=args.dry_run,
                                ready_timeout=float(section.get("ready-timeout", 120)), resources=k.get("resources"))
    from .docker_target import DockerTarget

    router = section.get("router") or {}
    return DockerTarget(name, publish=str(args.router_publish or router.get("publish") or "127.0.0.1:8080"),
                        router_base_image=args.router_base_image or router.get("base-image") or "debian:bookworm-slim",
                        router_image=router.get("image", ""), ready_timeout=float(section.get("ready-timeout", 120)),
                        baseline=bool(section.get("baseline", True)))


def run(args: argparse.Namespace) -> int:
    from .controller import PROMOTED, Controller
    from .report import publish

    operation = args.op or args.operation
    cfg = config.load(args.config)
    s, name, kind = settings(args, cfg)
    if operation == "deploy" and not args.image:
        raise BadInput("image: empty; expected REGISTRY/IMAGE@sha256:... (build-push-image's image output)")
    target = make_target(args, cfg, name, kind)
    import signal

    def _cancelled(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # a cancelled job: the controller takes the canary out of the traffic first

    signal.signal(signal.SIGTERM, _cancelled)
    ctl = Controller(target, s, name)
    report = ctl.deploy(args.image, gh.commit_sha(cfg.root)) if operation == "deploy" else ctl.rollback()
    path = Path(args.report_file)
    publish(report, path if path.is_absolute() else cfg.root / path)
    if operation == "deploy" and report.verdict != PROMOTED:
        from .. import notify

        notify.canary_rolled_back(name, args.image, report.reason)
        raise CheckFailed(f"rolled back: {report.reason}")
    gh.step(f"{report.verdict}: {report.reason}; stable {report.stable.image if report.stable else '-'}")
    return 0
