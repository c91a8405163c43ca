"""Write data/raw/wine.csv from scikit-learn's bundled wine dataset (no download; identical on every run).

178 wines from three cultivars, 13 chemical measurements each; ``wine_id`` is a key, ``cultivar`` the class
(class_0, class_1, class_2). ``od280/od315_of_diluted_wines`` is renamed ``od280_od315`` (a plain column name).
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_wine

OUT = Path(__file__).resolve().parent / "data" / "raw" / "wine.csv"


def main() -> int:
    wine = load_wine(as_frame=True)
    frame = wine.frame.rename(columns={"od280/od315_of_diluted_wines": "od280_od315"})
    frame.insert(0, "wine_id", range(1, len(frame) + 1))
    frame["cultivar"] = [wine.target_names[i] for i in frame.pop("target")]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_name(f".{OUT.name}.tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(OUT)
    print(f"wrote {OUT.relative_to(OUT.parents[2])}: {len(frame)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
