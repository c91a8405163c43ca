"""The tests behind the canary's verdicts, in plain Python (the ``canary-deploy`` extra has no scipy):

- :func:`mann_whitney_u`: the Mann-Whitney U test, normal approximation with the tie correction and the
  continuity correction, as ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")`` (its default for more
  than 8 samples a side or any tie);
- :func:`binomial_sf`: ``P(X >= k)`` of a binomial, exact (the error-rate test);
- :func:`chi2_sf` and :func:`homogeneity`: the chi-square test that two samples of classes (or histogram
  buckets) come from one distribution (the prediction test);
- :func:`psi`, :func:`jensen_shannon` and :func:`distance_noise`: the distances users set a limit on, and
  the distance two samples of one distribution show by chance at a given size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

EPSILON = 1e-4  # floor of a proportion in PSI/JS: an empty bin on one side stays finite


# ---------------------------------------------------------------------------- Mann-Whitney U


@dataclass(frozen=True)
class MannWhitney:
    u: float  # U of the first sample (the canary)
    p: float
    n1: int
    n2: int


def rank_sum(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Sum of the average ranks of ``x`` in ``x + y``, and the tie term ``sum(t^3 - t)``."""
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    r1, ties, i, n = 0.0, 0.0, 0, len(pooled)
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        t = j - i + 1
        rank = (i + j) / 2 + 1  # ranks start at 1
        r1 += rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        ties += t ** 3 - t
        i = j + 1
    return r1, ties


def norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_u(x: Sequence[float], y: Sequence[float], alternative: str = "two-sided") -> MannWhitney:
    """U and the p-value of ``x`` against ``y``; ``alternative`` ``greater`` asks whether ``x`` is stochastically
    larger (the canary slower), as scipy's. NaN p when either side is empty or every value is one tie."""
    n1, n2 = len(x), len(y)
    if not n1 or not n2:
        return MannWhitney(math.nan, math.nan, n1, n2)
    r1, ties = rank_sum(x, y)
    u1 = r1 - n1 * (n1 + 1) / 2
    u2 = n1 * n2 - u1
    if alternative == "greater":
        u = u1
    elif alternative == "less":
        u = u2
    elif alternative == "two-sided":
        u = max(u1, u2)
    else:
        raise ValueError(f"alternative {alternative!r}: expected two-sided, greater or less")
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return MannWhitney(u1, math.nan, n1, n2)
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    p = norm_sf(z) * (2 if alternative == "two-sided" else 1)
    return MannWhitney(u1, min(max(p, 0.0), 1.0), n1, n2)


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    if not s:
        return math.nan
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    s = sorted(values)
    if not s:
        return math.nan
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# ---------------------------------------------------------------------------- binomial


def _log_pmf(k: int, n: int, p: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + \
        (n - k) * math.log1p(-p)


def binomial_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, summed exactly from the pmf (as scipy's ``binom.sf(k - 1, n, p)``)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    # sum the shorter tail: the upper one from k, or 1 - the lower one below k
    if k > n * p:
        total, prev = 0.0, 0.0
        for i in range(k, n + 1):
            term = math.exp(_log_pmf(i, n, p))
            total += term
            if term < prev and term < total * 1e-17:
                break
            prev = term
        return min(total, 1.0)
    total, prev = 0.0, 0.0
    for i in range(k - 1, -1, -1):
        term = math.exp(_log_pmf(i, n, p))
        total += term
        if term < prev and term < total * 1e-17:
            break
        prev = term
    return max(0.0, 1.0 - total)


def binomial_lower_bound(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` lower confidence bound of a proportion (Clopper-Pearson): the ``p`` at which
    ``P(X >= k) = alpha``, found by bisection (0 when ``k`` is 0)."""
    if k <= 0 or n <= 0:
        return 0.0
    lo, hi = 0.0, k / n
    for _ in range(100):
        mid = (lo + hi) / 2
        if binomial_sf(k, n, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------- chi-square


def _gamma_series(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x) by its series (x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_cf(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) by its continued fraction (Lentz; x >= a + 1)."""
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, df: int) -> float:
    """Survival function of the chi-square distribution with ``df`` degrees of freedom."""
    if df <= 0:
        return math.nan
    if x <= 0:
        return 1.0
    a, h = df / 2, x / 2
    return 1.0 - _gamma_series(a, h) if h < a + 1 else _gamma_cf(a, h)


def chi2_isf(p: float, df: int) -> float:
    """The ``x`` with ``chi2_sf(x, df) == p`` (bisection)."""
    lo, hi = 0.0, max(10.0, 10.0 * df)
    while chi2_sf(hi, df) > p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if chi2_sf(mid, df) > p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Homogeneity:
    statistic: float
    df: int
    p: float


def homogeneity(a: dict[str, float], b: dict[str, float]) -> Homogeneity:
    """Pearson's chi-square test that two samples of counts (by class or bucket) share one distribution, as
    ``scipy.stats.chi2_contingency([a, b], correction=False)`` on the bins either side has (NaN p with fewer than
    two bins or an empty side)."""
    keys = sorted(k for k in set(a) | set(b) if a.get(k, 0) + b.get(k, 0) > 0)
    na, nb = sum(a.get(k, 0.0) for k in keys), sum(b.get(k, 0.0) for k in keys)
    if len(keys) < 2 or na <= 0 or nb <= 0:
        return Homogeneity(0.0, 0, math.nan if na <= 0 or nb <= 0 else 1.0)
    n = na + nb
    stat = 0.0
    for k in keys:
        col = a.get(k, 0.0) + b.get(k, 0.0)
        for obs, row in ((a.get(k, 0.0), na), (b.get(k, 0.0), nb)):
            exp = row * col / n
            stat += (obs - exp) ** 2 / exp
    df = len(keys) - 1
    return Homogeneity(stat, df, chi2_sf(stat, df))


# ---------------------------------------------------------------------------- distances


def _proportions(a: dict[str, float], b: dict[str, float]) -> tuple[list[float], list[float]]:
    keys = sorted(set(a) | set(b))
    ta, tb = sum(a.values()), sum(b.values())
    p = [max(a.get(k, 0.0) / ta, EPSILON) for k in keys]
    q = [max(b.get(k, 0.0) / tb, EPSILON) for k in keys]
    sp, sq = sum(p), sum(q)
    return [x / sp for x in p], [x / sq for x in q]


def psi(expected: dict[str, float], actual: dict[str, float]) -> float:
    """Population stability index of ``actual`` against ``expected`` (NaN when either is empty)."""
    if not sum(expected.values()) or not sum(actual.values()):
        return math.nan
    p, q = _proportions(expected, actual)
    return sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))


def jensen_shannon(expected: dict[str, float], actual: dict[str, float]) -> float:
    """Jensen-Shannon distance, base 2 (0 identical .. 1 disjoint), as scipy's ``jensenshannon(p, q, base=2)``."""
    if not sum(expected.values()) or not sum(actual.values()):
        return math.nan
    p, q = _proportions(expected, actual)
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(x: list[float]) -> float:
        return sum(xi * math.log2(xi / mi) for xi, mi in zip(x, m, strict=True) if xi > 0)

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


DISTANCES = {"psi": psi, "jensen-shannon": jensen_shannon}


def distance_noise(kind: str, n1: float, n2: float, bins: int, alpha: float) -> float:
    """The distance two samples of sizes ``n1`` and ``n2`` drawn from one distribution over ``bins`` bins exceed
    with probability ``alpha`` (large-sample): ``PSI ~ (1/n1 + 1/n2) chi2(bins - 1)``; the Jensen-Shannon
    divergence is an eighth of that in nats, the distance its square root in bits."""
    if n1 <= 0 or n2 <= 0:
        return math.inf
    if bins < 2:
        return 0.0
    scaled = chi2_isf(alpha, bins - 1) * (1 / n1 + 1 / n2)
    return scaled if kind == "psi" else math.sqrt(scaled / 8 / math.log(2))
