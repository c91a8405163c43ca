"""What a person reads and the workflow uses: the outputs and the job summary.
"""

from __future__ import annotations

from .. import gh
from .model import Model
from .plan import Plan


def report(p: Plan, model: Model, *, ref: str, digest: str, tags: list[str], image_id: str, size: int,
           built: float) -> None:
    """The outputs (image, digest, tags, image-id) and the job summary's table."""
    gh.set_output("image", ref)
    gh.set_output("digest", digest)
    gh.set_output("tags", "\n".join(f"{p.repository}:{t}" for t in tags))
    gh.set_output("image-id", image_id)
    gh.add_summary("### build-push-image\n\n" + gh.md_table(["", ""], [
        ["image", f"`{ref}`"], ["tags", ", ".join(f"`{t}`" for t in tags)],
        ["model", f"{model.name} version {model.version} (run `{model.run_id or '-'}`)"],
        ["model files", f"`sha256:{model.sha256[:16]}...`"], ["size", f"{size / 1e6:.0f} MB"],
        ["build", f"{built:.0f} s"], ["pushed", "yes" if digest else "no (--push=false)"],
    ]))
