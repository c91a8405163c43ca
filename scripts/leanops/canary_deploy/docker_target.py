"""The ``docker`` target: one Docker host (``DOCKER_HOST``: the local socket or ``ssh://``), reached with the
Docker SDK for Python.

On a user-defined network ``leanops-NAME``: the model containers ``leanops-NAME-<digest 12>`` (labelled with
the app and the digest) behind the router ``leanops-NAME-router`` (Debian's nginx, built on the host from
``router/``), which publishes the service port. Weights are nginx upstream weights in
``/var/lib/leanops/router.conf``, a volume of the router that also holds the deployment record; a change is
checked with ``nginx -t`` and applied with ``nginx -s reload`` (graceful: no connection is dropped).

Metrics and readiness are read *inside* each model container (``docker exec`` of the image's Python), so
nothing but the router's port is published and an ``ssh://`` host works the same as the local socket.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import os
import tarfile
import time
from pathlib import Path
from typing import Any

from .. import gh
from ..errors import BadInput, InfraError
from .analysis import Snapshot
from .record import Entry, Record

ROUTER_DIR = Path(__file__).resolve().parent / "router"
STATE = "/var/lib/leanops"
CONF = "router.conf"
RECORD = "record.json"
PORT = 8080
APP_LABEL = "io.leanops.canary.app"
DIGEST_LABEL = "io.leanops.canary.digest"
FETCH = ("import sys, urllib.request\n"
         "try:\n"
         f"    r = urllib.request.urlopen('http://127.0.0.1:{PORT}' + sys.argv[1], timeout=15)\n"
         "    sys.stdout.write(r.read().decode())\n"
         "except Exception as e:\n"
         "    sys.stdout.write(str(e)); sys.exit(1)\n")
# /metrics and the per-request samples in one exec: a JSON list of the answers (null: no answer)
SCRAPE = ("import json, sys, urllib.request\n"
          "out = []\n"
          "for path in sys.argv[1:]:\n"
          "    try:\n"
          f"        out.append(urllib.request.urlopen('http://127.0.0.1:{PORT}' + path, timeout=15).read().decode())\n"
          "    except Exception:\n"
          "        out.append(None)\n"
          "sys.stdout.write(json.dumps(out))\n")
# warm-up: POST the model's serving example (MLflow's serving_input_example.json), else one record of neutral
# values in the signature's columns; prints how many were answered 200
WARM = ("import json, os, sys, urllib.request\n"
        "d = os.environ.get('LEANOPS_MODEL_DIR', '/opt/leanops/model')\n"
        "p = os.path.join(d, 'serving_input_example.json')\n"
        "if os.path.isfile(p):\n"
        "    body = open(p, encoding='utf-8').read()\n"
        "else:\n"
        "    import yaml\n"
        "    sig = (yaml.safe_load(open(os.path.join(d, 'MLmodel'), encoding='utf-8')) or {}).get('signature') or {}\n"
        "    cols = sig.get('inputs') or '[]'\n"
        "    cols = json.loads(cols) if isinstance(cols, str) else cols\n"
        "    zero = {'double': 0.5, 'float': 0.5, 'long': 1, 'integer': 1, 'string': 'a', 'boolean': False,\n"
        "            'datetime': '2024-01-01T00:00:00'}\n"
        "    body = json.dumps({'records': [{c['name']: zero.get(c.get('type'), 0) for c in cols if c.get('name')}]})\n"
        "ok = 0\n"
        "for i in range(int(sys.argv[1])):\n"
        "    try:\n"
        f"        req = urllib.request.Request('http://127.0.0.1:{PORT}/predict', data=body.encode(),\n"
        "                                     headers={'Content-Type': 'application/json'})\n"
        "        ok += urllib.request.urlopen(req, timeout=30).status == 200\n"
        "    except Exception:\n"
        "        pass\n"
        "sys.stdout.write(str(ok))\n")
SAMPLES_PATH = "/metrics/samples"


def render_conf(backends: list[tuple[str, int]], turns: tuple[str, str] | None = None) -> str:
    """The router's nginx configuration: one upstream with the weighted model containers (weight 0: left out).

    ``turns`` (a 100% step: the canary and its reference): instead of the weights, the whole load goes to the
    first on even seconds and to the second on odd ones (a ``map`` of nginx's clock, no reload between turns), so
    both take the whole load over the same time on the same host, and each request reaches one of them."""
    servers = [(host, w) for host, w in backends if w > 0]
    if not servers:
        raise ValueError("at least one backend with a weight above 0")
    lines = [f"    server {host}:{PORT} weight={w} max_fails=1 fail_timeout=5s;" for host, w in servers]
    by_turns: list[str] = []
    for k, host in enumerate(turns or ()):
        by_turns += [f"upstream leanops_turn_{k} {{", f"    server {host}:{PORT};", "    keepalive 32;",
                     "    keepalive_timeout 30s;", "}"]
    if turns:
        by_turns += ["# the whole load by turns of a second: the first on even seconds, the second on odd ones",
                     "map $msec $leanops_turn {", '    "~[02468]\\." leanops_turn_0;', "    default leanops_turn_1;",
                     "}"]
    return "\n".join([
        "# written by leanops canary-deploy; weights in percent",
        "upstream leanops_model {",
        *lines,
        "    keepalive 32;",
        "    keepalive_timeout 30s;  # below the model server's keep-alive (serve: 75 s): nginx closes idle first",
        "}",
        *by_turns,
        "server {",
        f"    listen {PORT};",
        "    client_max_body_size 20m;",
        "    location = /leanops/router/health { return 200 \"ok\\n\"; }",
        "    # the model servers' metrics and readiness details stay inside the network (leanops reads them in each",
        "    # container); matched on the normalised path (decoded, slashes merged), so /%6detrics or //ready too",
        "    location ~ ^/(metrics|ready|openapi\\.json|docs|redoc)(/|$) { return 404; }",
        "    location / {",
        f"        proxy_pass http://{'$leanops_turn' if turns else 'leanops_model'};",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Connection \"\";",
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        # another backend only when this one could not be reached: nginx resends a POST (a prediction)",
        "        # only if none of it was sent yet (no non_idempotent); GET /health also after a timeout. One retry.",
        "        proxy_next_upstream error timeout;",
        "        proxy_next_upstream_tries 2;",
        "        proxy_connect_timeout 2s;",
        "        proxy_read_timeout 120s;",
        "    }",
        "}",
        "",
    ])


LOOPBACK = "127.0.0.1"


def publish_binding(publish: str) -> tuple[str, int]:
    """``[ADDRESS:]PORT`` -> (host address, port) for the router's published port. A bare PORT binds loopback
    only: a port published on every interface also bypasses host firewalls such as ufw (Docker writes its own
    iptables rules), so a public bind is only ever what was written, e.g. ``0.0.0.0:8080`` or ``[::]:8080``."""
    text = str(publish).strip()
    address, sep, port = text.rpartition(":")
    if not sep:
        address = LOOPBACK
    elif address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    elif ":" in address:
        address = ""  # an IPv6 address needs its brackets: [::1]:8080
    try:
        ipaddress.ip_address(address)
        number = int(port)
    except ValueError:
        number = 0
    if not 0 < number < 65536 or not port.isdigit():
        raise BadInput(f"canary-deploy router publish: {text!r} is not [ADDRESS:]PORT; expected e.g. 8080 or "
                       "127.0.0.1:8080 (loopback, the default) or 0.0.0.0:8080 (every interface, written explicitly)")
    return address, number


def router_recipe_hash(base_image: str) -> str:
    h = hashlib.sha256(base_image.encode())
    for name in sorted(p.name for p in ROUTER_DIR.iterdir() if p.is_file()):
        h.update(name.encode() + b"\0" + (ROUTER_DIR / name).read_bytes())
    return h.hexdigest()[:12]


def _tar(files: dict[str, bytes], mode: int = 0o644) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


class DockerTarget:
    kind = "docker"

    def __init__(self, name: str, *, publish: str = "127.0.0.1:8080", router_base_image: str = "debian:bookworm-slim",
                 router_image: str = "", ready_timeout: float = 120.0, baseline: bool = True) -> None:
        self.name = name
        self.publish = publish
        self.binding = publish_binding(publish)  # checked before anything starts
        self.router_base_image = router_base_image
        self.router_image = router_image
        self.ready_timeout = ready_timeout
        self.network = f"leanops-{name}"
        self.router_name = f"leanops-{name}-router"
        self.volume = f"leanops-{name}-state"
        self.stable_name = ""
        self.canary_name = ""
        self.stable_image = ""
        # a fresh container of the stable's image beside the canary, with the canary's share of the traffic
        self.has_baseline = baseline
        self.baseline_name = ""
        self.weight = 0
        self._client: Any = None
        self._samples: dict[str, list[tuple[int, float, int]]] = {}  # container -> the samples read so far
        self._seq: dict[str, int] = {}  # container -> its last request's sequence number at the last scrape

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import docker
            except ImportError as exc:
                raise InfraError("the Docker SDK is missing; install leanops with the 'canary-deploy' extra") from exc
            try:
                ssh = os.environ.get("DOCKER_HOST", "").startswith("ssh://")
                self._client = docker.from_env(timeout=300, use_ssh_client=ssh)  # ssh: the runner's ssh and keys
                self._client.ping()
            except Exception as exc:  # noqa: BLE001 - any failure: the engine is unreachable
                where = os.environ.get("DOCKER_HOST") or "/var/run/docker.sock"
                raise InfraError(f"Docker engine at {where} unreachable: {_one_line(str(exc), 200)}") from None
        return self._client

    def describe(self) -> str:
        return f"docker host {os.environ.get('DOCKER_HOST') or 'unix:///var/run/docker.sock'}, router " \
               f"{self.router_name} on network {self.network}"

    def _get(self, name: str) -> Any:
        import docker.errors

        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def container_name(self, image: str) -> str:
        digest = image.rsplit("@sha256:", 1)[-1] if "@sha256:" in image else hashlib.sha256(image.encode()).hexdigest()
        return f"leanops-{self.name}-{digest[:12]}"

    def ensure_network(self) -> None:
        if not self.client.networks.list(names=[self.network]):
            self.client.networks.create(self.network, driver="bridge", labels={APP_LABEL: self.name})

    # ------------------------------------------------------------------ images

    def pull(self, image: str) -> Entry:
        """Pull by digest (the local copy when present); the model's name and version from the image labels."""
        import docker.errors

        if "@sha256:" not in image:
            raise BadInput(f"image: {image!r} is not pinned by digest; expected REGISTRY/IMAGE@sha256:... "
                           "(build-push-image's `image` output)")
        try:
            img = self.client.images.get(image)
        except docker.errors.ImageNotFound:
            user, password = os.environ.get("LEANOPS_REGISTRY_USERNAME", ""), \
                os.environ.get("LEANOPS_REGISTRY_PASSWORD", "")
            auth = {"username": user, "password": password} if password else None
            gh.mask(password)
            try:
                img = self.client.images.pull(image, auth_config=auth)
            except docker.errors.APIError as exc:
                raise InfraError(f"pull of {image} failed: {_one_line(str(exc.explanation or exc), 200)}") from None
        labels = img.labels or {}
        return Entry(image=image, model_name=labels.get("io.leanops.model.name", ""),
                     model_version=labels.get("io.leanops.model.version", ""),
                     commit=labels.get("org.opencontainers.image.revision", ""))

    def ensure_router_image(self) -> str:
        import docker.errors

        if self.router_image:
            return self.router_image
        tag = f"leanops-router:{router_recipe_hash(self.router_base_image)}"
        try:
            self.client.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            pass
        files = {p.name: p.read_bytes() for p in ROUTER_DIR.iterdir() if p.is_file()}
        with gh.group(f"router image {tag} (nginx on {self.router_base_image})"):
            try:
                self.client.images.build(fileobj=io.BytesIO(_tar(files)), custom_context=True, tag=tag, rm=True,
                                         forcerm=True, buildargs={"BASE_IMAGE": self.router_base_image},
                                         pull=False)
            except docker.errors.BuildError as exc:
                tail = " ".join(str(x.get("stream", x.get("error", ""))).strip() for x in list(exc.build_log)[-3:])
                raise InfraError(f"router image build failed: {_one_line(tail)}") from None
            except docker.errors.APIError as exc:
                raise InfraError(f"router image build failed: {_one_line(str(exc.explanation or exc))}") from None
            gh.step(f"router image {tag} built")
        return tag

    # ------------------------------------------------------------------ state

    def read_record(self) -> Record | None:
        router = self._get(self.router_name)
        if router is None:
            return None
        text = self._read(router, f"{STATE}/{RECORD}")
        if text is None:
            return None
        record = Record.from_json(text, f"{self.router_name}:{STATE}/{RECORD}")
        if record.stable is not None:
            self.stable_name = self.container_name(record.stable.image)
            self.stable_image = record.stable.image
        return record

    def write_record(self, record: Record) -> None:
        router = self._get(self.router_name)
        if router is None:
            raise InfraError(f"router {self.router_name} is gone; cannot write the deployment record")
        if not router.put_archive(STATE, _tar({f".{RECORD}.tmp": record.to_json().encode()})):
            raise InfraError(f"writing the deployment record into {self.router_name} failed")
        self._exec(router, ["mv", "-f", f"{STATE}/.{RECORD}.tmp", f"{STATE}/{RECORD}"], "save the record")

    @staticmethod
    def _read(container: Any, path: str) -> str | None:
        import docker.errors

        try:
            bits, _ = container.get_archive(path)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
            member = tar.getmembers()[0]
            fh = tar.extractfile(member)
            return fh.read().decode() if fh else None

    def _exec(self, container: Any, cmd: list[str], what: str) -> str:
        res = container.exec_run(cmd)
        out = res.output.decode(errors="replace") if res.output else ""
        if res.exit_code != 0:
            raise InfraError(f"{container.name}: {what} failed (exit {res.exit_code}): {_one_line(out)}")
        return out

    # ------------------------------------------------------------------ model containers

    def start_model(self, image: str, *, restart: bool, suffix: str = "") -> str:
        """A model container for ``image`` on the network (an old one of the same digest is replaced)."""
        name = self.container_name(image) + suffix
        old = self._get(name)
        if old is not None:
            old.remove(force=True)
        self.client.containers.run(
            image, name=name, detach=True, network=self.network,
            labels={APP_LABEL: self.name, DIGEST_LABEL: image.rsplit("@", 1)[-1]},
            restart_policy={"Name": "unless-stopped"} if restart else {"Name": "no"},
            environment={"LEANOPS_HOST": "0.0.0.0", "LEANOPS_PORT": str(PORT)},  # noqa: S104 - inside the network
        )
        return name

    def problem(self, name: str) -> str:
        """Why the container cannot serve ('' while it runs)."""
        import docker.errors

        c = self._get(name)
        try:
            if c is not None:
                c.reload()
        except docker.errors.NotFound:
            c = None
        if c is None:
            return f"container {name} is gone"
        if c.status == "running":
            return ""
        code = c.attrs.get("State", {}).get("ExitCode")
        lines = [ln for ln in c.logs(tail=5).decode(errors="replace").splitlines() if ln.strip()]
        last = _one_line(lines[-1]) if lines else "no output"
        return f"container {name} {c.status} (exit code {code}): {last}"

    def fetch(self, name: str, path: str) -> str | None:
        c = self._get(name)
        if c is None:
            return None
        try:
            res = c.exec_run(["python", "-c", FETCH, path])
        except Exception:  # noqa: BLE001 - an exec into a stopping container: treated as no answer
            return None
        return res.output.decode(errors="replace") if res.exit_code == 0 else None

    def wait_ready(self, name: str, timeout: float | None = None) -> str:
        """'' once ``/ready`` answers; the reason otherwise (exited, or not ready in time)."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while time.monotonic() < deadline:
            why = self.problem(name)
            if why:
                return why
            if self.fetch(name, "/ready") is not None:
                return ""
            time.sleep(0.5)
        return f"container {name} not ready within {timeout or self.ready_timeout:.0f}s"

    def scrape(self, role: str) -> Snapshot | None:
        """``/metrics`` and the latency samples since the last scrape of this container (the samples read so far
        are kept here, so each scrape reads only the new ones); None when ``/metrics`` does not answer."""
        import json

        name = {"canary": self.canary_name, "baseline": self.baseline_name}.get(role, self.stable_name)
        known = self._samples.setdefault(name, [])
        # the first scrape of a server asks for none of its older samples (-1), only where it is
        since = self._seq.get(name, -1)
        answers: list[Any] = [None, None]
        for attempt in range(3 if name else 0):  # a busy server may miss one scrape: not yet inconclusive
            if attempt:
                time.sleep(attempt)
            c = self._get(name)
            try:
                res = c.exec_run(["python", "-c", SCRAPE, "/metrics", f"{SAMPLES_PATH}?since={since}"]) if c else None
                answers = json.loads(res.output.decode(errors="replace")) if res and res.exit_code == 0 else [None] * 2
            except Exception:  # noqa: BLE001 - an exec into a stopping container: treated as no answer
                answers = [None, None]
            if answers[0] is not None:
                break
        if answers[0] is None:
            return None
        snap = Snapshot.parse(answers[0])
        if answers[1] is not None:
            try:
                snap.add_samples(answers[1], known)
                # a restarted server counts from 0 again: read all of its samples next time
                self._seq[name] = snap.seq if snap.seq >= since else 0
            except (ValueError, KeyError, TypeError, IndexError):
                pass  # a server without the samples endpoint (an older image): the histogram serves
        return snap

    def warm_up(self, requests: int) -> int:
        """``requests`` predictions of the model's example to the canary (and the baseline, fresh too), inside its
        container, before it takes traffic (imports, caches, first allocations); how many the canary answered 200."""
        if self.baseline_name:
            self._warm(self.baseline_name, requests)
        return self._warm(self.canary_name, requests)

    def _warm(self, name: str, requests: int) -> int:
        c = self._get(name)
        if c is None or requests <= 0:
            return 0
        try:
            res = c.exec_run(["python", "-c", WARM, str(requests)])
        except Exception:  # noqa: BLE001 - a stopping container: the first window will tell
            return 0
        out = res.output.decode(errors="replace").strip() if res.output else ""
        return int(out) if res.exit_code == 0 and out.isdigit() else 0

    def remove(self, name: str, *, grace: int = 10) -> None:
        c = self._get(name)
        if c is None:
            return
        try:
            c.stop(timeout=grace)
        finally:
            c.remove(force=True)

    def leftovers(self, keep: set[str]) -> list[str]:
        """Model containers of this app that are neither the stable nor the router (an interrupted run's)."""
        found = self.client.api.containers(all=True, filters={"label": f"{APP_LABEL}={self.name}"})
        names = [c["Names"][0].lstrip("/") for c in found]
        return [n for n in names if n not in keep and n != self.router_name]

    # ------------------------------------------------------------------ router

    def router_running(self) -> bool:
        c = self._get(self.router_name)
        return c is not None and c.status == "running"

    def start_router(self, backends: list[tuple[str, int]]) -> None:
        image = self.ensure_router_image()
        old = self._get(self.router_name)
        if old is not None:
            old.remove(force=True)
        if not ipaddress.ip_address(self.binding[0]).is_loopback:
            gh.warning(f"router {self.router_name}: published on {self.publish} (not loopback): anyone who reaches "
                       "this host on that address can send predictions; put a firewall or a proxy in front")
        router = self.client.containers.create(
            image, name=self.router_name, detach=True, network=self.network, labels={APP_LABEL: self.name},
            ports={f"{PORT}/tcp": self.binding}, restart_policy={"Name": "unless-stopped"},
            volumes={self.volume: {"bind": STATE, "mode": "rw"}},
        )
        router.start()
        self.set_backends(backends)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            res = router.exec_run(["nginx", "-t", "-q"])
            if res.exit_code == 0 and self.problem(self.router_name) == "":
                return
            time.sleep(0.3)
        raise InfraError(f"router did not start: {self.problem(self.router_name) or 'nginx -t failed'}")

    def set_backends(self, backends: list[tuple[str, int]], turns: tuple[str, str] | None = None) -> None:
        """Write the weights (or the two containers that take the whole load by turns), check them with
        ``nginx -t`` and reload gracefully; the old file stays on failure."""
        router = self._get(self.router_name)
        if router is None:
            raise InfraError(f"router {self.router_name} is gone")
        conf = render_conf(backends, turns).encode()
        router.put_archive(STATE, _tar({f".{CONF}.new": conf}))
        check = (f"cp {STATE}/{CONF} {STATE}/.{CONF}.old 2>/dev/null || true; "
                 f"mv -f {STATE}/.{CONF}.new {STATE}/{CONF}; "
                 f"if nginx -t -q; then nginx -s reload; else cp {STATE}/.{CONF}.old {STATE}/{CONF}; exit 1; fi")
        res = router.exec_run(["sh", "-c", check])
        if res.exit_code != 0:
            out = res.output.decode(errors="replace") if res.output else ""
            raise InfraError(f"router: the new weights were refused by nginx: {_one_line(out)}")
        time.sleep(0.3)  # new workers take over; the old ones finish their requests

    def router_logs(self) -> str:
        c = self._get(self.router_name)
        return c.logs(tail=20).decode(errors="replace") if c is not None else ""

    def make_permanent(self, name: str) -> None:
        c = self._get(name)
        if c is not None:
            c.update(restart_policy={"Name": "unless-stopped"})

    # ------------------------------------------------------------------ what the controller calls

    dry_run = False

    def prepare(self, record: Record | None) -> bool:
        """The network; remove an interrupted run's canary. True when a stable serves behind the router."""
        self.ensure_network()
        keep = {self.stable_name} if self.stable_name else set()
        for name in self.leftovers(keep):
            gh.step(f"removing {name}, left over from an interrupted deploy")
            self.remove(name, grace=2)
        return bool(record and record.stable and self.stable_name and self.router_running()
                    and not self.problem(self.stable_name))

    def first_deploy(self, entry: Entry) -> None:
        name = self.start_model(entry.image, restart=True)
        why = self.wait_ready(name)
        if why:
            logs = self.problem(name)
            self.remove(name, grace=2)
            raise InfraError(f"the first stable did not start: {logs or why}")
        self.stable_name = name
        self.start_router([(name, 100)])

    def start_canary(self, entry: Entry) -> str:
        self.canary_name = self.start_model(entry.image, restart=False)
        why = self.wait_ready(self.canary_name)
        if not why and self.has_baseline and self.stable_image:
            # after the canary is ready, not beside it: its readiness is its own, never slowed by the baseline's start
            self.baseline_name = self.start_model(self.stable_image, restart=False, suffix="-baseline")
            trouble = self.wait_ready(self.baseline_name)
            if trouble:  # not the canary's fault: compared with the stable instead
                gh.warning(f"baseline {self.baseline_name} did not start ({trouble}); the canary is compared with "
                           "the stable")
                self.remove(self.baseline_name, grace=2)
                self.baseline_name = ""
        return why

    # a 100% step's reference takes the whole load too, over the same time: by turns of a second (``set_weight``)
    turns_full = True

    def set_weight(self, weight: int) -> None:
        """The canary's share; the baseline takes as much (up to what is left), the stable the rest. At 100% the
        canary and the baseline (else the stable) take the whole load by turns of a second: the canary's
        reference at the whole load, on the same host over the same time."""
        base = min(weight, 100 - weight) if self.baseline_name else 0
        turns = (self.canary_name, self.baseline_name or self.stable_name) if weight >= 100 else None
        self.set_backends([(self.stable_name, 100 - weight - base), (self.baseline_name, base),
                           (self.canary_name, weight)], turns=turns)
        self.weight = weight

    def canary_problem(self) -> str:
        return self.problem(self.canary_name)

    def drain_router(self, timeout: float = 30.0) -> None:
        """Until the router's old nginx workers (a reload lets them finish what they accepted) are gone: they may
        still open connections to a backend the new weights left out, so it is stopped only after them."""
        router = self._get(self.router_name)
        deadline = time.monotonic() + timeout
        while router is not None and time.monotonic() < deadline:
            res = router.exec_run(["sh", "-c", "grep -aqs 'shutting [d]own' /proc/[0-9]*/cmdline"])
            if res.exit_code != 0:
                return
            time.sleep(0.2)

    def abort(self) -> None:
        """Canary weight 0 (the stable untouched), then the canary stopped and removed."""
        if self.weight:
            self.set_backends([(self.stable_name, 100)])
            self.weight = 0
            self.drain_router()
        if self.canary_name:
            self.remove(self.canary_name, grace=5)
        self._remove_baseline()

    def _remove_baseline(self) -> None:
        if self.baseline_name:
            self.remove(self.baseline_name, grace=5)
            self.baseline_name = ""

    def promote(self) -> None:
        """All traffic to the canary, which becomes the stable; the old stable drains and is removed."""
        self.make_permanent(self.canary_name)
        self.set_backends([(self.canary_name, 100)])
        old, self.stable_name, self.canary_name = self.stable_name, self.canary_name, ""
        if (old and old != self.stable_name) or self.baseline_name:
            self.drain_router()
        if old and old != self.stable_name:
            self.remove(old, grace=10)
        self._remove_baseline()

    def switch_to(self, entry: Entry) -> None:
        """``rollback``: start ``entry``, send it all traffic at once, remove the current stable."""
        name = self.start_model(entry.image, restart=True) if self.problem(self.container_name(entry.image)) \
            else self.container_name(entry.image)
        why = self.wait_ready(name)
        if why:
            self.remove(name, grace=2)
            raise InfraError(f"the previous stable did not start: {why}")
        self.canary_name = name
        self.promote()
