"""``leanops build-push-image``: the model server image, built reproducibly and pushed by digest.

The public face: ``register`` (the subcommand) and ``run``. The rooms: ``cli`` (flags and the command),
``plan`` (settings), ``model`` (fetching the model and its digest), ``image`` (context and ``docker build``),
``publish`` (push by digest) and ``report`` (outputs, summary).
"""

from .cli import register, run

__all__ = ["register", "run"]
