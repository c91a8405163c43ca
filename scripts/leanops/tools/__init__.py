"""The kit's own tooling: the act harness, releases, docs generation and ``leanops init``.

Nothing here runs inside an adopter's pipeline jobs. Tools may use the core (``leanops.*`` modules) and the
capabilities' public names; no capability and no core module imports a tool.
"""
