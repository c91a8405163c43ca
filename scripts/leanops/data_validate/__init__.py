"""``leanops data-validate``: Great Expectations 1.x suites gate the pipeline.

The public face: ``register`` (the subcommand), ``run``, ``NAME``. The rooms: ``cli`` (flags, settings, the
command), ``suite`` (loading GX suites), ``validate`` (running them on a dataset), ``report`` (summary,
annotations, Data Docs), ``profile`` (a starter suite). Datasets are read through the core
(``leanops.datasets``).
"""

from .cli import NAME, register, run, run_init
from .suite import import_gx

__all__ = ["NAME", "import_gx", "register", "run", "run_init"]
