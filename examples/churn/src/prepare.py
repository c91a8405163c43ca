"""Stage ``prepare``: split the raw table into train and test, stratified on the target."""

from __future__ import annotations

import sys

import pandas as pd
from common import RAW, TARGET, TEST, TRAIN, params, rel, write_atomic
from sklearn.model_selection import train_test_split


def main() -> int:
    p = params("prepare")
    df = pd.read_csv(RAW)
    train, test = train_test_split(
        df, test_size=float(p["test_size"]), random_state=int(p["seed"]), stratify=df[TARGET]
    )
    for frame, path in ((train, TRAIN), (test, TEST)):
        write_atomic(path, lambda tmp, frame=frame: frame.to_csv(tmp, index=False, lineterminator="\n"))
    print(f"prepare: {rel(TRAIN)} {len(train)} rows, {rel(TEST)} {len(test)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
