"""Generate the SciPy reference values that tests/DiffusionCircuits.Tests/Fixtures/stats/scipy_reference.json holds.

    apt-get install python3-scipy && /usr/bin/python3 tools/stats/make_fixtures.py > tests/DiffusionCircuits.Tests/Fixtures/stats/scipy_reference.json

Tests compare DiffusionCircuits.Statistics with these numbers to 1e-9 relative, so they need no Python. Effect sizes and
multiple-comparison corrections are not in SciPy 1.10: they are computed here with their textbook formulas in numpy.
"""
import json, math, sys

import numpy as np
import scipy
from scipy import stats
from scipy.spatial.distance import jensenshannon

rng = np.random.default_rng(20251124)


def r(x):
    return [float(v) for v in x]


two_sample = {
    "normal_equal_n": (rng.normal(0, 1, 30), rng.normal(0.5, 1, 30)),
    "unequal_n_unequal_var": (rng.normal(0, 1, 12), rng.normal(1, 3, 40)),
    "small_n": (np.array([1.1, 2.3, 0.7]), np.array([3.4, 2.9, 4.4, 5.0])),
    "tiny_exact": (np.array([0.2, 1.7, 3.1, 4.6, 2.2]), np.array([5.5, 6.1, 3.9, 7.2, 8.8, 4.1])),
    "ties": (np.array([1, 2, 2, 3, 3, 3, 4, 5, 5, 6], float), np.array([2, 3, 3, 4, 4, 5, 6, 6, 7, 7, 8], float)),
    "heavy_ties_integer": (rng.integers(0, 4, 25).astype(float), rng.integers(1, 5, 31).astype(float)),
    "extreme_values": (np.array([1e-8, 2e-8, 3e-8, 1e8, 5.0]), np.array([1e9, 2e9, -1e9, 7.0, 8.0, 9.0])),
    "large_separation": (rng.normal(0, 1, 50), rng.normal(6, 1, 60)),
    "skewed": (rng.exponential(1.0, 45), rng.exponential(1.6, 38)),
    "identical_distributions": (rng.normal(2, 0.5, 20), rng.normal(2, 0.5, 20)),
    "exact_boundary_8": (rng.normal(0, 1, 8), rng.normal(0.8, 1, 8)),
    "n9_asymptotic": (rng.normal(0, 1, 9), rng.normal(0.8, 1, 9)),
}

paired = {
    "paired_normal": (rng.normal(0, 1, 25),),
    "paired_small": (np.array([0.5, -0.2, 1.3, 0.9, 2.2, -0.4, 1.1]),),
    "paired_zeros": (np.array([0.0, 0.0, 1.5, -0.5, 2.0, 0.7, -1.2, 0.3, 0.0, 1.1, 2.4, -0.1]),),
    "paired_ties": (np.array([1, 1, 2, 2, -1, 3, 3, 3, -2, 4, 1, 2], float),),
    "paired_large_n": (rng.normal(0.2, 1, 120),),
    "paired_n50_exact": (rng.normal(0.3, 1, 50),),
    "paired_n51_approx": (rng.normal(0.3, 1, 51),),
    "paired_extreme": (np.array([1e-6, 2e-6, -3e-6, 5e5, 7e5, -1e5, 3.0, 4.0, 2e5]),),
}


def hedges(x, y):
    n1, n2 = len(x), len(y)
    sp = math.sqrt(((n1 - 1) * np.var(x, ddof=1) + (n2 - 1) * np.var(y, ddof=1)) / (n1 + n2 - 2))
    d = (np.mean(x) - np.mean(y)) / sp
    df = n1 + n2 - 2
    j = math.exp(math.lgamma(df / 2) - math.log(math.sqrt(df / 2)) - math.lgamma((df - 1) / 2))
    g = d * j
    se = math.sqrt((n1 + n2) / (n1 * n2) + g * g / (2 * (n1 + n2)))
    return d, g, g - 1.959963984540054 * se, g + 1.959963984540054 * se


cases = []
for name, (x, y) in two_sample.items():
    welch = stats.ttest_ind(x, y, equal_var=False)
    student = stats.ttest_ind(x, y, equal_var=True)
    mwu = stats.mannwhitneyu(x, y, alternative="two-sided")
    n1, n2 = len(x), len(y)
    s1, s2 = np.var(x, ddof=1) / n1, np.var(y, ddof=1) / n2
    welch_df = (s1 + s2) ** 2 / (s1 ** 2 / (n1 - 1) + s2 ** 2 / (n2 - 1))
    d, g, glo, ghi = hedges(x, y)
    cases.append({"name": name, "kind": "two_sample", "x": r(x), "y": r(y),
                  "welch_t": float(welch.statistic), "welch_df": float(welch_df), "welch_p": float(welch.pvalue),
                  "student_t": float(student.statistic), "student_p": float(student.pvalue),
                  "mwu_u": float(mwu.statistic), "mwu_p": float(mwu.pvalue),
                  "rank_biserial": float(2 * mwu.statistic / (n1 * n2) - 1),
                  "cohens_d": d, "hedges_g": g, "hedges_g_ci": [glo, ghi]})

for name, (d,) in paired.items():
    y = rng.normal(0, 1, len(d))
    x = y + d
    tt = stats.ttest_rel(x, y)
    w = stats.wilcoxon(x - y)                      # zero_method='wilcox', correction=False, mode auto
    wp = stats.wilcoxon(x - y, zero_method="pratt")
    dd = (x - y)[(x - y) != 0]
    ranks = stats.rankdata(np.abs(dd))
    rp, rm = ranks[dd > 0].sum(), ranks[dd < 0].sum()
    cases.append({"name": name, "kind": "paired", "x": r(x), "y": r(y),
                  "paired_t": float(tt.statistic), "paired_p": float(tt.pvalue),
                  "wilcoxon_w": float(w.statistic), "wilcoxon_p": float(w.pvalue),
                  "wilcoxon_pratt_w": float(wp.statistic), "wilcoxon_pratt_p": float(wp.pvalue),
                  "matched_rank_biserial": float((rp - rm) / (rp + rm))})

# Multiple comparisons (textbook BH step-up and Holm step-down, adjusted p in input order).
def bh(p):
    p = np.asarray(p); m = len(p); order = np.argsort(p)
    adj = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m); out[order] = np.minimum(adj, 1); return out


def holm(p):
    p = np.asarray(p); m = len(p); order = np.argsort(p)
    adj = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m); out[order] = np.minimum(adj, 1); return out


corrections = []
for name, p in {"mixed": [0.01, 0.04, 0.03, 0.005, 0.2, 0.9, 0.049, 0.0001],
                "ties": [0.02, 0.02, 0.02, 0.5, 0.5],
                "all_significant": [1e-10, 1e-8, 1e-6],
                "random": list(rng.uniform(0, 0.2, 15))}.items():
    corrections.append({"name": name, "p": r(p), "bh": r(bh(p)), "holm": r(holm(p)), "bonferroni": r(np.minimum(np.asarray(p) * len(p), 1))})

divergences = []
for name, (p, q) in {"uniform_vs_peaked": ([0.25] * 4, [0.7, 0.1, 0.1, 0.1]),
                     "disjoint": ([0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]),
                     "identical": ([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]),
                     "random64": (rng.dirichlet(np.ones(64)), rng.dirichlet(np.ones(64)))}.items():
    p, q = np.asarray(p, float), np.asarray(q, float)
    divergences.append({"name": name, "p": r(p), "q": r(q), "entropy_p": float(stats.entropy(p)),
                        "entropy_q": float(stats.entropy(q)), "jsd": float(jensenshannon(p, q) ** 2)})

json.dump({"scipy": scipy.__version__, "numpy": np.__version__, "cases": cases, "corrections": corrections,
           "divergences": divergences}, sys.stdout, indent=1)
