"""``leanops data-validate init``: a starter suite profiled from a dataset.
"""

from __future__ import annotations

import math
from typing import Any

from .validate import _jsonable


def profile(df: Any, *, margin: float, max_categories: int) -> list[dict[str, Any]]:
    """A starter suite from one dataset: columns and types, nulls, ranges, allowed sets, keys, row count."""
    import pandas as pd

    rows = len(df)
    meta: dict[str, Any] = {}
    exps: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": [str(c) for c in df.columns], "exact_match": True}, "meta": dict(meta)},
        {"type": "expect_table_row_count_to_be_between",
         "kwargs": {"min_value": max(1, rows // 2), "max_value": rows * 2},
         "meta": {"note": f"{rows} rows when profiled; bounds are half and twice that"}},
    ]
    for name in df.columns:
        col = df[name]
        column = str(name)
        nulls = int(col.isna().sum())
        share = nulls / rows if rows else 0.0
        dtype = str(col.dtype)
        is_bool = pd.api.types.is_bool_dtype(col.dtype)
        is_int = pd.api.types.is_integer_dtype(col.dtype)
        is_float = pd.api.types.is_float_dtype(col.dtype)
        types = [dtype]
        if is_int:
            types = [dtype, "float64"]  # an integer column with a null reads as float64
        elif dtype == "object":
            types = ["str"]  # GX checks each value of an object column
        exps.append({"type": "expect_column_values_to_be_in_type_list",
                     "kwargs": {"column": column, "type_list": types}, "meta": dict(meta)})
        if nulls == 0:
            exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column},
                         "meta": dict(meta)})
        else:
            mostly = max(0.0, math.floor((1.0 - min(1.0, share * (1 + margin) + 0.01)) * 1000) / 1000)
            exps.append({"type": "expect_column_values_to_not_be_null",
                         "kwargs": {"column": column, "mostly": mostly},
                         "meta": {"note": f"{share:.2%} null when profiled"}})
        values = col.dropna()
        if values.empty:
            continue
        distinct = int(values.nunique())
        key = nulls == 0 and distinct == rows and rows > 1 and (is_int or dtype == "object")
        if key and is_int:
            pass  # an integer key has no range to keep: new rows bring new keys (a customer table that grows)
        elif (is_int or is_float) and not is_bool:
            lo, hi = float(values.min()), float(values.max())
            if is_int and distinct <= 2:
                exps.append({"type": "expect_column_values_to_be_in_set",
                             "kwargs": {"column": column, "value_set": sorted(int(v) for v in values.unique())},
                             "meta": dict(meta)})
            else:
                pad = (hi - lo) * margin if hi > lo else abs(hi) * margin or 1.0
                low, high = lo - pad, hi + pad
                if lo >= 0 > low:
                    low = 0.0  # a column that was never negative stays so
                if is_int:
                    low, high = float(math.floor(low)), float(math.ceil(high))
                exps.append({"type": "expect_column_values_to_be_between",
                             "kwargs": {"column": column, "min_value": _num(low, is_int),
                                        "max_value": _num(high, is_int)},
                             "meta": {"note": f"observed {_num(lo, is_int)} to {_num(hi, is_int)}; "
                                      f"widened by {margin:.0%} of the range"}})
        elif (is_bool or dtype in ("object", "string", "category")) and distinct <= max_categories and distinct < rows:
            exps.append({"type": "expect_column_values_to_be_in_set",
                         "kwargs": {"column": column, "value_set": sorted(_jsonable(v) for v in values.unique())},
                         "meta": dict(meta)})
        if key:
            exps.append({"type": "expect_column_values_to_be_unique", "kwargs": {"column": column},
                         "meta": {"note": "unique when profiled: a key" + (" (no range: new rows bring new keys)"
                                                                           if is_int else "")}})
    return exps


def _num(value: float, is_int: bool) -> int | float:
    return int(value) if is_int else round(value, 6)
