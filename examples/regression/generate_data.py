"""Write data/raw/diabetes.csv from scikit-learn's bundled diabetes dataset (no download; identical on every run).

442 patients, ten baseline measurements in their original units (``scaled=False``); ``patient_id`` is a key,
``progression`` the target (a measure of disease progression one year later). ``sex`` (1, 2 in the source)
becomes the groups ``a`` and ``b``: the regression fairness gate's attribute, not a model feature.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_diabetes

OUT = Path(__file__).resolve().parent / "data" / "raw" / "diabetes.csv"


def main() -> int:
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame.insert(0, "patient_id", range(1, len(frame) + 1))
    frame["sex"] = frame["sex"].map({1.0: "a", 2.0: "b"})
    frame = frame.rename(columns={"target": "progression"})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_name(f".{OUT.name}.tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(OUT)
    print(f"wrote {OUT.relative_to(OUT.parents[2])}: {len(frame)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
