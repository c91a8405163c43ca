"""``leanops canary-deploy``: stepwise traffic to a new model image, a statistical comparison with the stable
in every window, promote or roll back; ``leanops canary-deploy rollback`` returns to the previous stable.

1. reads the steps and limits from ``leanops.yml`` (``canary-deploy:``; default 10%, 50%, 100% with a 60 s
   window each);
2. on the target (``docker``: a router container with nginx in front of model containers; ``kubernetes``:
   Deployments, Services and an ingress-nginx canary Ingress or a Gateway API HTTPRoute, applied with
   kubectl) starts the canary, warms it with a few requests of the model's example, then per step sets its
   weight and judges windows: per metric (errors: exact binomial test; latency: Mann-Whitney U on per-request
   samples; predictions: chi-square test and PSI or Jensen-Shannon) a difference counts only when significant
   *and* beyond the configured limit; each metric pass / marginal / fail / inconclusive, the window scored;
3. a gross failure (crash, an error rate significantly over the limit) rolls back at once; a failed window needs
   confirmation (``failure-threshold`` in a row); a marginal or inconclusive window is extended with the next
   one's requests, and never promotes;
4. all steps passed: the canary becomes the stable, the old stable is removed, the deployment record (digest,
   model version, time, commit) keeps the previous stables for ``rollback``;
5. outputs ``verdict`` (``promoted``/``rolled-back``), ``stable-digest``, ``report-file``; the job summary
   holds the windows, every metric's samples, effect, p-value and verdict, and a Mermaid chart.

Modules: ``cli`` (flags, settings), ``controller`` (the walk through the steps), ``judge`` (a window's
verdict), ``statistics`` (the tests), ``analysis`` (a server's window from its metrics), ``docker_target`` and
``kubernetes`` (the targets), ``record`` (the deployment record), ``report`` (summary, report file, outputs).
"""

from __future__ import annotations

from .cli import make_target, register, run, settings

__all__ = ["make_target", "register", "run", "settings"]
