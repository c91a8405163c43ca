"""``leanops weekly-drift``: a scheduled Evidently report that opens one issue and can trigger retraining.

The public face: ``register`` (the subcommand), ``run``, ``NAME``. The rooms: ``cli`` (flags), ``settings``,
``commands`` (run, dispatch, stale-check), ``data`` (reference and current windows), ``detect`` and ``stats``
(drift per column and of the predictions), ``evidently_report`` (the HTML report), ``report`` (result file,
outputs, summary, the issue's text) and ``alert`` (the issue, the retrain dispatch).
"""

from .cli import register
from .commands import run
from .settings import NAME

__all__ = ["NAME", "register", "run"]
