"""``leanops train-with-cache``: run the DVC pipeline, record it in MLflow, skip the work when nothing changed.

The public face: ``register`` (the subcommand), ``run``, ``SECTION``, ``ALIAS``. The rooms: ``cli`` (flags and
the command's entry), ``settings``, ``freshness`` (cache key, the quick up-to-date check), ``repro`` (``dvc
repro``, run-cache transfers), ``metrics``, ``registry`` (MLflow runs and versions), ``commands`` (run, key,
select) and ``report`` (outputs, result file, summary). The DVC project itself is read through the core
(``leanops.dvcproject``).
"""

from .cli import register, run
from .registry import ALIAS
from .settings import SECTION

__all__ = ["ALIAS", "SECTION", "register", "run"]
