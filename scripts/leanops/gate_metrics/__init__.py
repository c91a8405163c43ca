"""``leanops gate-metrics``: the candidate against thresholds and against the champion.

The public face: ``register`` (the subcommand), ``run``, ``SECTION``. The rooms: ``cli`` (flags and settings),
``gate`` (the command: measure, compare, judge), ``sources`` (where the candidate's and champion's metrics
come from), ``gates`` (thresholds and verdicts), ``bootstrap`` (paired intervals), ``measure`` (latency,
fairness), ``promote`` (moving the aliases) and ``report`` (summary, comment, annotations).
"""

from .cli import register, run
from .gate import SECTION

__all__ = ["SECTION", "register", "run"]
