"""A fair comparison: the champion judged on the candidate's evaluation rows, never on its own old ones.

When the champion's logged predictions do not cover the candidate's evaluation rows (new data, a new split),
the champion model is loaded from the registry (verified by its digest first) and scored on the candidate's
evaluation rows (``bootstrap.evaluation-data``, else the CSV/Parquet input of the stage that writes the
predictions); its gated metrics are recomputed on those rows and the paired bootstrap runs on the same
examples. When it cannot be scored (the model does not load, the columns differ, the rows are not here), the
gate compares nothing with the champion: absolute thresholds only, and the report says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import gh, models
from ..errors import BadInput, LeanopsError
from ..tasks import canonical
from .bootstrap import Predictions, align, computable, point, recode
from .gates import DP_RATIO, EO_DIFF, GROUP_MAE_DIFF, Gate, Verdict
from .report import annotation_path
from .sources import Settings, Side, candidate_file

ABSOLUTE_ONLY = "absolute thresholds only"
FAIRNESS = (DP_RATIO, EO_DIFF, GROUP_MAE_DIFF)


class Unscorable(Exception):
    """The champion cannot be scored on the candidate's rows: ``reason`` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Comparison:
    """What the champion is compared on: its table (None: no paired bootstrap) and, when nothing may be compared
    with it, why (``absolute``)."""

    table: Predictions | None
    absolute: str = ""
    rescored: bool = False


def evaluation_rows(s: Settings) -> tuple[Path | None, str]:
    """``bootstrap.evaluation-data``, else the CSV/Parquet input of the stage writing the predictions."""
    explicit = s.bootstrap.get("evaluation-data")
    if explicit:
        return s.root / str(explicit), str(explicit)
    from .gate import latency_rows

    lat = s.section.get("latency") or {}
    if lat.get("data"):  # latency rows need no ids: only the predictions' own stage input is the evaluation set
        return _stage_input(s)
    return latency_rows(s)


def _stage_input(s: Settings) -> tuple[Path | None, str]:
    from .gate import predictions_path
    from .sources import dvc_entries

    _, predictions = predictions_path(s)
    stages = {stage for path, stage in dvc_entries(s.root, "outs") + dvc_entries(s.root, "metrics")
              if os.path.normpath(path) == os.path.normpath(predictions)}
    for path, stage in dvc_entries(s.root, "deps"):
        if stage in stages and path.endswith((".csv", ".parquet")):
            return s.root / path, path
    return None, ""


def compare(s: Settings, champ: Side, cand: Predictions, champ_table: Predictions | None,
            gates: list[Gate], notes: list[str]) -> Comparison:
    """The champion's table on the candidate's rows: its own predictions when they pair, else re-scored."""
    if champ_table is not None:
        _, _, why = align(cand, champ_table)
        if not why:
            return Comparison(champ_table)
        why = f"its predictions {champ.predictions_shown} do not pair with the candidate's ({why})"
    else:
        if s.champion != "mlflow":
            return Comparison(None)  # a metrics file alone: nothing says which rows it was measured on
        why = "it has no logged predictions"
    if s.champion != "mlflow" or not champ.version:
        return _absolute(s, f"the champion cannot be re-scored: {why}, and a {s.champion} champion has no "
                            "registered model to score on the candidate's rows", notes)
    try:
        table, shown = rescore(s, champ, cand)
    except Unscorable as exc:
        return _absolute(s, f"the champion could not be re-scored on the candidate's evaluation set: {exc.reason} "
                            f"({why})", notes)
    recomputed = _recompute(champ, table, gates, s)
    champ.predictions_shown = f"the champion re-scored on {shown}"
    champ.origin += f"; re-scored on {len(table):,} rows of the candidate's evaluation set"
    notes.append(f"champion re-scored on {len(table):,} rows of the candidate's evaluation set ({shown}): {why}; "
                 f"its {', '.join(recomputed) or 'gated metrics'} are recomputed on those rows, so both models are "
                 "judged on the same examples")
    gh.step(notes[-1])
    return Comparison(table, rescored=True)


def _absolute(s: Settings, reason: str, notes: list[str]) -> Comparison:
    notes.append(f"⚠️ {ABSOLUTE_ONLY}: {reason}; nothing is compared with the champion on different data")
    gh.warning(notes[-1], file=annotation_path(s.file), line=s.line("bootstrap"), title="leanops gate-metrics")
    return Comparison(None, absolute=reason)


def rescore(s: Settings, champ: Side, cand: Predictions) -> tuple[Predictions, str]:
    """The champion model (verified by digest) scored on the candidate's rows; labels from the candidate's table."""
    import numpy as np

    path, shown = evaluation_rows(s)
    shipped = candidate_file(s, shown) if path is not None and not path.is_file() else None
    if shipped is not None:
        path, shown = shipped
    if path is None:
        raise Unscorable("no evaluation rows (set gate-metrics.bootstrap.evaluation-data to the evaluation "
                         "CSV/Parquet with the id column)")
    if not path.is_file():
        raise Unscorable(f"the evaluation rows {shown} are not in the workspace")
    frame = _read(path, shown, cand.id_name)
    ids = frame[cand.id_name].astype(str)
    if ids.duplicated().any():
        raise Unscorable(f"{shown}: column {cand.id_name!r} repeats {ids[ids.duplicated()].iloc[0]!r}")
    frame.index = ids.to_numpy()
    missing = [i for i in cand.ids if i not in frame.index]
    if missing:
        raise Unscorable(f"{len(missing)} of the candidate's {len(cand):,} {cand.id_name} values are not in {shown} "
                         f"(first {missing[0]!r})")
    rows = frame.loc[cand.ids]
    uri = f"models:/{s.model_name}/{champ.version}"
    try:
        with gh.group(f"re-score the champion {uri} on {shown}"):
            model, _ = models.load_verified(uri, s.tracking_uri())
    except LeanopsError as exc:
        raise Unscorable(f"the model does not load: {exc.one_line()}") from None
    except Exception as exc:  # noqa: BLE001 - whatever stops the model loading, the champion cannot be scored
        raise Unscorable(f"the model does not load: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    schema = model.metadata.get_input_schema() if model.metadata is not None else None
    names = [str(n) for n in schema.input_names()] if schema is not None and schema.has_input_names() else []
    absent = [n for n in names if n not in rows.columns]
    if absent:
        raise Unscorable(f"the columns differ: {shown} lacks the champion's input columns {', '.join(absent)}")
    features = rows[names] if names else rows.drop(columns=[cand.id_name])
    try:
        y_pred, proba = _predict(model, features)
    except Exception as exc:  # noqa: BLE001 - the champion refused the rows
        raise Unscorable(f"the champion cannot predict the rows of {shown}: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}") from None
    if len(y_pred) != len(cand):
        raise Unscorable(f"the champion returned {len(y_pred)} predictions for {len(cand)} rows")
    table = Predictions(f"the champion re-scored on {shown}", list(cand.ids), cand.y_true, None, None,
                        dict(cand.columns), cand.id_name, cand.task)
    if cand.classes:  # label-encoded classification: the champion's labels in the candidate's codes
        table.true_text = list(cand.true_text)
        table.pred_text = [canonical(str(p)) for p in y_pred]
        unknown = sorted(set(table.pred_text) - set(cand.classes))
        if unknown:
            raise Unscorable(f"the champion predicts labels the candidate's evaluation set lacks: "
                             f"{', '.join(unknown[:5])}")
        table.proba_of = {canonical(str(c)): np.asarray(col, dtype=float) for c, col in (proba or {}).items()}
        recode(table, list(cand.classes))
        if len(cand.classes) == 2 and cand.classes[1] in table.proba_of:
            table.y_score = table.proba_of[cand.classes[1]]
        return table, shown
    try:
        table.y_pred = np.asarray(y_pred, dtype=float)
    except (TypeError, ValueError):
        raise Unscorable("the champion's predictions are not numbers, the candidate's labels are") from None
    positive = (proba or {}).get("1")
    if positive is None and proba and len(proba) == 2:
        positive = list(proba.values())[1]
    table.y_score = None if positive is None else np.asarray(positive, dtype=float)
    return table, shown


def _read(path: Path, shown: str, id_name: str) -> Any:
    import pandas as pd

    try:
        if path.suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype={id_name: str})
    except Exception as exc:  # noqa: BLE001 - any reader failure: the rows cannot be used
        raise Unscorable(f"cannot read {shown}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    if id_name not in frame.columns:
        raise Unscorable(f"the columns differ: {shown} has no id column {id_name!r} (the predictions' id)")
    return frame


def _predict(model: Any, features: Any) -> tuple[Any, dict[str, Any] | None]:
    """Labels (or values) and, for a classifier with predict_proba, each class's probability (by label text)."""
    raw = None
    try:
        raw = model.get_raw_model()  # the scikit-learn estimator behind the pyfunc: predict_proba
    except Exception:  # noqa: BLE001 - a flavour without one: pyfunc's predict alone
        raw = None
    if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
        proba = raw.predict_proba(features)
        by_class = {canonical(str(c)): proba[:, j] for j, c in enumerate(raw.classes_)}
        return raw.predict(features), by_class
    return model.predict(features), None


def _recompute(champ: Side, table: Predictions, gates: list[Gate], s: Settings) -> list[str]:
    """The champion's gated metrics on the re-scored rows; those that cannot be recomputed are not compared.
    Fairness is left to the gate, which measures it on the re-scored table (it holds the candidate's columns)."""
    done = []
    for gate in gates:
        if gate.metric in FAIRNESS:
            continue
        if computable(gate.metric, table):
            champ.metrics[gate.metric] = point(gate.metric, table)
            done.append(gate.metric)
        else:
            champ.metrics.pop(gate.metric, None)  # measured on other rows: never compared
    for name in FAIRNESS:
        champ.metrics.pop(name, None)
    column = (s.section.get("fairness") or {}).get("sensitive-column")
    if column and column in table.columns:
        done.append(f"fairness over {column}")
    return done


def mark_absolute(verdicts: list[Verdict], reason: str) -> None:
    """The verdicts of a gate judged on absolute thresholds only: each says why nothing was compared."""
    for v in verdicts:
        v.notes = [f"regression not checked: {ABSOLUTE_ONLY}, the champion was not scored on these rows"
                   if n == "no champion: regression not checked" else n for n in v.notes]


def check_settings(s: Settings) -> None:
    """bootstrap.evaluation-data, when set, is a CSV or Parquet path."""
    name = s.bootstrap.get("evaluation-data")
    if name is not None and (not isinstance(name, str) or not name.endswith((".csv", ".parquet", ".pq"))):
        raise BadInput(f"bootstrap.evaluation-data: expected a CSV or Parquet path, got {name!r}", file=s.file,
                       line=s.line("bootstrap", "evaluation-data"))
