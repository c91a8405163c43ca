"""Generate a synthetic, realistic customer-churn table, deterministically.

Nothing is downloaded: every value comes from a seeded numpy generator, and the CSV is formatted by
hand (fixed decimals, ``\\n`` line ends), so the same flags give the same file byte for byte.

    python generate_data.py                      # data/raw/churn.csv, 5000 rows, seed 7
    python generate_data.py --shift 1 --seed 8 --out data/current/churn.csv   # a drifted population

``--shift`` (>= 0) moves the population the way a market change would: more month-to-month
contracts, newer customers (shorter tenure), more fiber and higher monthly charges. The relation
between the features and churn stays the same (covariate shift), so a model still works on shifted
data, but a drift check sees it.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

COLUMNS = (
    "customer_id",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "contract",
    "payment_method",
    "internet_service",
    "support_calls",
    "senior_citizen",
    "gender",
    "churned",
)
CONTRACTS = ("month-to-month", "one-year", "two-year")
PAYMENT_METHODS = ("electronic-check", "mailed-check", "bank-transfer", "credit-card")
INTERNET = ("dsl", "fiber", "none")
GENDERS = ("female", "male")
MAX_TENURE = 72
FIRST_ID = 100001


def _softmax_choice(rng: np.random.Generator, scores: np.ndarray) -> np.ndarray:
    """One category index per row, drawn with probabilities softmax(scores[row])."""
    z = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(len(scores))
    return np.minimum((p.cumsum(axis=1) < u[:, None]).sum(axis=1), scores.shape[1] - 1)


def generate(rows: int = 5000, seed: int = 7, shift: float = 0.0, first_id: int = FIRST_ID) -> dict[str, np.ndarray]:
    """The columns of the table; ``shift`` 0 is the reference population; customer ids from ``first_id``."""
    if rows < 1:
        raise ValueError("rows must be >= 1")
    if shift < 0:
        raise ValueError("shift must be >= 0")
    rng = np.random.default_rng(seed)
    n = rows

    # Who the customers are.
    gender = rng.integers(0, 2, n)
    senior = (rng.random(n) < 0.16).astype(int)

    # Tenure: a block of recent sign-ups plus a long, flat tail; a shift brings more new customers.
    p_new = min(0.30 + 0.25 * shift, 0.95)
    is_new = rng.random(n) < p_new
    new_tenure = 1 + np.floor(rng.exponential(6.0 / (1 + 0.5 * shift), n))
    old_tenure = rng.integers(1, MAX_TENURE + 1, n)
    tenure = np.clip(np.where(is_new, new_tenure, old_tenure), 1, MAX_TENURE).astype(int)

    # Contract: long-standing customers hold longer contracts; a shift favours month-to-month.
    contract_scores = np.column_stack(
        [
            np.zeros(n),
            -1.2 + 0.035 * tenure - 0.8 * shift,
            -2.6 + 0.060 * tenure - 1.2 * shift,
        ]
    )
    contract = _softmax_choice(rng, contract_scores)

    # Internet service; a shift moves customers to fiber.
    internet_scores = np.tile(np.array([0.0, 0.25 + 0.6 * shift, -0.55]), (n, 1))
    internet_scores[:, 0] += 0.3 * senior  # seniors keep dsl a bit more often
    internet = _softmax_choice(rng, internet_scores)

    # Payment: month-to-month customers pay by electronic check more often.
    mtm = (contract == 0).astype(float)
    payment_scores = np.column_stack([0.2 + 0.9 * mtm, -0.1 + 0.3 * senior, np.zeros(n), -0.1 * mtm])
    payment = _softmax_choice(rng, payment_scores)

    # Charges: set by the internet plan, plus noise; a shift raises prices.
    base = np.array([55.0, 85.0, 21.0])[internet]
    spread = np.array([9.0, 11.0, 2.5])[internet]
    monthly = base + spread * rng.standard_normal(n) + (10.0 + 0.04 * base) * shift
    monthly = np.round(np.clip(monthly, 18.25, 150.0), 2)
    drift = rng.normal(1.0, 0.04, n)  # price changes over the customer's life
    total = np.round(np.maximum(monthly * tenure * drift, monthly), 2)

    # Support calls: fiber customers and customers on short contracts call more.
    call_rate = 0.9 + 0.6 * (internet == 1) + 0.4 * mtm
    support_calls = rng.poisson(call_rate)

    # Churn: a logistic relation to the features plus unobserved noise (so a model cannot be perfect).
    # Gender has no effect: the fairness gates of the example should pass on a sound model.
    logit = (
        -1.85
        + 1.25 * mtm
        - 0.55 * (contract == 2)
        - 0.028 * tenure
        + 0.018 * (monthly - 65.0)
        + 0.40 * (internet == 1)
        - 0.50 * (internet == 2)
        + 0.45 * (payment == 0)
        + 0.32 * support_calls
        + 0.35 * senior
        + rng.normal(0.0, 0.9, n)
    )
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)

    return {
        "customer_id": np.arange(first_id, first_id + n),
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "contract": np.array(CONTRACTS)[contract],
        "payment_method": np.array(PAYMENT_METHODS)[payment],
        "internet_service": np.array(INTERNET)[internet],
        "support_calls": support_calls.astype(int),
        "senior_citizen": senior,
        "gender": np.array(GENDERS)[gender],
        "churned": churned,
    }


def to_csv(table: dict[str, np.ndarray]) -> str:
    """Format the table by hand: ints as ints, money with exactly two decimals, ``\\n`` line ends."""
    money = {"monthly_charges", "total_charges"}
    cells = {
        name: [f"{v:.2f}" for v in table[name]] if name in money else [str(v) for v in table[name].tolist()]
        for name in COLUMNS
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(zip(*(cells[name] for name in COLUMNS), strict=True))
    return buf.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="number of customers (default 5000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--shift", type=float, default=0.0, help="drift strength, >= 0 (default 0: the reference population)"
    )
    parser.add_argument("--out", default="data/raw/churn.csv", help="output CSV (default data/raw/churn.csv)")
    parser.add_argument("--first-id", type=int, default=FIRST_ID,
                        help=f"the first customer_id (default {FIRST_ID}): new customers for a table that grows")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be >= 1")
    if not args.shift >= 0:  # also refuses nan
        parser.error("--shift must be >= 0")
    if args.first_id < 1:
        parser.error("--first-id must be >= 1")
    table = generate(args.rows, args.seed, args.shift, args.first_id)
    out = Path(args.out)
    write_atomic(out, to_csv(table))
    rate = float(table["churned"].mean())
    print(f"wrote {out}: {args.rows} rows, churn rate {rate:.3f}, shift {args.shift:g}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
