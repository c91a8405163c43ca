"""The deployment record: which image is stable, and the stables before it (newest first) for ``rollback``.

It lives with the deployment, not on the runner (runners are thrown away): in a volume of the router on
the Docker host, in a ConfigMap on Kubernetes. A copy goes into the report file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InfraError

KEEP = 10  # previous stables kept


@dataclass
class Entry:
    image: str  # REGISTRY/IMAGE@sha256:...
    model_name: str = ""
    model_version: str = ""
    deployed_at: str = ""
    commit: str = ""
    run_url: str = ""

    @property
    def digest(self) -> str:
        return self.image.rsplit("@", 1)[1] if "@" in self.image else ""


@dataclass
class Record:
    name: str
    stable: Entry | None = None
    previous: list[Entry] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Record:
        try:
            data: dict[str, Any] = json.loads(text)
            stable = Entry(**data["stable"]) if data.get("stable") else None
            return cls(name=str(data["name"]), stable=stable, previous=[Entry(**e) for e in data.get("previous", [])])
        except (ValueError, KeyError, TypeError) as exc:
            raise InfraError(f"{where}: the deployment record is damaged ({exc}); expected leanops' JSON") from None

    def promote(self, entry: Entry) -> None:
        if self.stable is not None:
            self.previous = [self.stable, *self.previous][:KEEP]
        self.stable = entry

    def roll_back(self) -> Entry:
        """The previous stable becomes stable; the current one is dropped (a second rollback goes further back)."""
        back = self.previous.pop(0)
        self.stable = back
        return back


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_url() -> str:
    if not os.environ.get("GITHUB_RUN_ID"):
        return ""
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    return f"{server}/{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
