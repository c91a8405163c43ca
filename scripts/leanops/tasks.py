"""What a model predicts: ``binary``, ``multiclass`` or ``regression`` (``model.task`` in ``leanops.yml``).

When ``model.task`` is absent the task is inferred from the target's values: non-numeric values, or integers
with at most ``MAX_CLASSES`` distinct values, are classes (2 classes: binary, more: multiclass); other numbers
(fractions, or more than ``MAX_CLASSES`` distinct integers) are a regression target. A declared task that the
values contradict (a binary task with fractional or more than two labels, a multiclass task with fractions, a
regression task with text) is a configuration mistake: BadInput naming the line of ``model.task``.
Pure Python: gate-metrics and weekly-drift both decide with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from . import config as cfgmod
from .errors import BadInput

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)
CLASSIFICATION = (BINARY, MULTICLASS)
MAX_CLASSES = 20  # integer targets with more distinct values are a regression target


@dataclass(frozen=True)
class Target:
    """What the values of a target look like."""

    distinct: int
    numeric: bool  # every value is a number
    integral: bool  # every value is a whole number (only when numeric)
    rows: int

    @property
    def discrete(self) -> bool:
        return not self.numeric or (self.integral and self.distinct <= MAX_CLASSES)

    def describe(self) -> str:
        if not self.numeric:
            kind = "non-numeric values"
        elif self.integral:
            kind = "integers"
        else:
            kind = "numbers with fractions"
        return f"{kind}, {self.distinct} distinct in {self.rows} rows"


def canonical(value: str) -> str:
    """A label as text, with ``1.0`` and ``1`` the same label."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def look(values: Iterable[str]) -> Target:
    """The shape of a target's values (text, as read from a file; blanks are left out)."""
    seen: set[str] = set()
    numeric = integral = True
    rows = 0
    for raw in values:
        text = str(raw).strip()
        if not text or text.lower() in ("nan", "none", "null"):
            continue
        rows += 1
        if numeric:
            try:
                number = float(text)
            except ValueError:
                numeric = integral = False
            else:
                integral = integral and math.isfinite(number) and number.is_integer()
        seen.add(canonical(text))
    return Target(len(seen), numeric, integral and numeric, rows)


def infer(target: Target) -> str:
    if target.discrete:
        return BINARY if target.distinct <= 2 else MULTICLASS
    return REGRESSION


def contradiction(task: str, target: Target) -> str:
    """Why the values cannot be a target of ``task`` ("" when they can)."""
    if task == BINARY and not target.discrete:
        return "a regression target" if target.numeric else f"{target.distinct} classes"
    if task == BINARY and target.distinct > 2:
        return f"{target.distinct} classes, a multiclass target"
    if task == MULTICLASS and target.numeric and not target.integral:
        return "a regression target"
    if task == REGRESSION and not target.numeric:
        return "classes (text), a classification target"
    return ""


def declared(cfg: cfgmod.Config) -> str | None:
    value = (cfg.data.get("model") or {}).get("task")
    return str(value) if value else None


@dataclass(frozen=True)
class Decision:
    task: str | None  # None: nothing to decide from
    how: str  # for the report: where the task comes from

    @property
    def known(self) -> bool:
        return self.task is not None


def decide(cfg: cfgmod.Config, values: Iterable[str] | None, what: str) -> Decision:
    """The task: ``model.task`` checked against the target's values, else inferred from them.

    ``what`` names the values for the messages (e.g. "y_true of metrics/predictions.csv").
    """
    task = declared(cfg)
    target = look(values) if values is not None else None
    if task is not None:
        if task not in TASKS:
            raise BadInput(f"model.task: expected one of {', '.join(TASKS)}, got {task!r}",
                           file=str(cfg.path or cfgmod.DEFAULT_FILE), line=cfg.line_of("model", "task"))
        if target is None or target.rows == 0:
            return Decision(task, f"model.task in {cfg.where('model', 'task')}")
        why = contradiction(task, target)
        if why:
            inferred = infer(target)
            raise BadInput(f"model.task is {task} but the target ({what}) holds {target.describe()}: {why}; "
                           f"expected a {task} target, or task: {inferred}",
                           file=str(cfg.path or cfgmod.DEFAULT_FILE), line=cfg.line_of("model", "task"))
        return Decision(task, f"model.task in {cfg.where('model', 'task')}; the target ({what}) agrees: "
                              f"{target.describe()}")
    if target is None or target.rows == 0:
        return Decision(None, f"no model.task in leanops.yml and no target values to infer it from ({what})")
    task = infer(target)
    rule = {BINARY: "2 classes", MULTICLASS: f"more than 2 classes (non-numeric, or at most {MAX_CLASSES} "
                                             "distinct integers)",
            REGRESSION: f"numbers with fractions or more than {MAX_CLASSES} distinct integers"}[task]
    return Decision(task, f"inferred from the target ({what}): {target.describe()}, i.e. {rule}; "
                          "set model.task in leanops.yml to state it")
