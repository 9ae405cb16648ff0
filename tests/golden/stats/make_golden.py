"""Generate the golden vectors for medfair's stats layer.

Every expected value comes from scipy.stats, statsmodels or numpy, run on
seeded random and hand-made adversarial inputs (ties, zero differences,
all-equal rows, single blocks, the boundaries of scipy's Wilcoxon method
selection). Non-finite numbers are written as the strings "nan", "inf" and
"-inf", since JSON has no literals for them.

Run from the repository root:
    python tests/golden/stats/make_golden.py
"""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import statsmodels
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.contingency_tables import cochrans_q
from statsmodels.stats.multitest import multipletests

OUT = Path(__file__).resolve().parent
rng = np.random.default_rng(20240607)


def num(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def nums(values):
    return [num(v) for v in values]


def friedman_cases():
    tables = {
        "random_10x4": rng.normal(size=(10, 4)),
        "random_40x3": rng.normal(size=(40, 3)),
        "random_200x8": rng.uniform(size=(200, 8)),
        "integer_ties_25x5": rng.integers(0, 3, size=(25, 5)).astype(float),
        "one_block": np.array([[0.2, 0.5, 0.1, 0.9]]),
        "some_equal_rows": np.vstack([np.full((3, 4), 0.5), rng.normal(size=(6, 4))]),
        "all_rows_equal": np.tile(np.array([[0.3], [0.7], [0.1]]), (1, 3)),
        "probabilities_12x6": rng.beta(2, 5, size=(12, 6)).round(2),
    }
    cases = []
    for name, table in tables.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.friedmanchisquare(*table.T)
        n, k = table.shape
        cases.append({"name": name, "table": table.tolist(), "statistic": num(res.statistic),
                      "p_value": num(res.pvalue), "kendall_w": num(res.statistic / (n * (k - 1)))})
    return cases


def cochran_cases():
    tables = {
        "random_30x4": rng.integers(0, 2, size=(30, 4)),
        "random_8x2": rng.integers(0, 2, size=(8, 2)),
        "skewed_60x6": (rng.uniform(size=(60, 6)) < np.linspace(0.2, 0.8, 6)).astype(int),
        "constant_rows_mixed": np.array([[1, 1, 1], [0, 0, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0]]),
    }
    cases = []
    for name, table in tables.items():
        res = cochrans_q(table)
        cases.append({"name": name, "table": table.astype(float).tolist(), "statistic": num(res.statistic),
                      "p_value": num(res.pvalue)})
    return cases


def wilcoxon_cases():
    samples = {
        "exact_n5": (rng.normal(size=5), rng.normal(size=5)),
        "exact_n20": (rng.normal(size=20), rng.normal(size=20)),
        "exact_n50": (rng.normal(size=50), rng.normal(size=50)),
        "asymptotic_n51": (rng.normal(size=51), rng.normal(size=51)),
        "asymptotic_n300": (rng.normal(size=300), rng.normal(size=300) + 0.1),
        "ties_permutation_n10": (rng.integers(0, 4, size=10).astype(float), rng.integers(0, 4, size=10).astype(float)),
        "zeros_permutation_n13": (np.r_[np.zeros(3), rng.normal(size=10)], np.zeros(13)),
        "ties_asymptotic_n14": (rng.integers(0, 4, size=14).astype(float), rng.integers(0, 4, size=14).astype(float)),
        "zeros_asymptotic_n40": (np.r_[np.zeros(5), rng.integers(-3, 4, size=35)].astype(float), np.zeros(40)),
        "all_zero_n5": (np.ones(5), np.ones(5)),
        "all_zero_n60": (np.ones(60), np.ones(60)),
        "single_pair": (np.array([0.4]), np.array([0.1])),
        "one_sided_n8": (np.arange(1, 9, dtype=float), np.zeros(8)),
    }
    cases = []
    for name, (x, y) in samples.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.wilcoxon(x, y)
            res_z = stats.wilcoxon(x, y, method="asymptotic")
        d = x - y
        nz = d[d != 0]
        r = stats.rankdata(np.abs(nz))
        r_plus, r_minus = r[nz > 0].sum(), r[nz < 0].sum()
        rb = (r_plus - r_minus) / (r_plus + r_minus) if r_plus + r_minus > 0 else float("nan")
        cases.append({"name": name, "x": x.tolist(), "y": y.tolist(), "statistic": num(res.statistic),
                      "p_value": num(res.pvalue), "r_plus": num(r_plus), "r_minus": num(r_minus),
                      "rank_biserial": num(rb), "asymptotic_z": num(res_z.zstatistic),
                      "asymptotic_p_value": num(res_z.pvalue)})
    return cases


def paired_t_cases():
    samples = {
        "random_n2": (rng.normal(size=2), rng.normal(size=2)),
        "random_n30": (rng.normal(size=30), rng.normal(size=30)),
        "shifted_n500": (rng.normal(size=500) + 0.05, rng.normal(size=500)),
        "constant_difference": (np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.5, 2.5])),
        "all_zero": (np.array([0.3, 0.3, 0.3]), np.array([0.3, 0.3, 0.3])),
        "symmetric_zero_mean": (np.array([1.0, -1.0, 2.0, -2.0]), np.zeros(4)),
    }
    cases = []
    for name, (x, y) in samples.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.ttest_rel(x, y)
        d = x - y
        sd = np.std(d, ddof=1)
        with np.errstate(all="ignore"):
            dz = np.mean(d) / sd
        cases.append({"name": name, "x": x.tolist(), "y": y.tolist(), "statistic": num(res.statistic),
                      "p_value": num(res.pvalue), "df": num(res.df), "cohen_dz": num(dz)})
    return cases


def holm_cases():
    inputs = {
        "random_10": rng.uniform(size=10) ** 3,
        "ties": np.array([0.01, 0.01, 0.04, 0.04, 0.5]),
        "single": np.array([0.03]),
        "ones_and_zeros": np.array([0.0, 1.0, 0.0, 0.2]),
        "stepdown_stop": np.array([0.001, 0.02, 0.011, 0.3, 0.0125]),
    }
    cases = []
    for name, p in inputs.items():
        reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="holm")
        cases.append({"name": name, "p_values": p.tolist(), "alpha": 0.05, "adjusted": nums(adjusted),
                      "reject": [bool(r) for r in reject]})
    return cases


def quantile_cases():
    cases = []
    for n in [1, 2, 7, 100, 2001]:
        values = rng.normal(size=n)
        qs = [0.0, 0.025, 0.05, 0.5, 0.9, 0.95, 0.975, 1.0]
        cases.append({"values": values.tolist(), "q": qs, "expected": nums(np.quantile(values, qs))})
    return cases


def mixedlm_cases():
    cases = []
    designs = [
        ("balanced_30x4", 30, 4, 0.6, [0.0, 0.3, -0.2, 0.1]),
        ("balanced_80x6", 80, 6, 1.0, [0.5, 0.0, 0.05, -0.1, 0.2, 0.0]),
        ("small_random_effect_40x3", 40, 3, 0.25, [0.0, 0.2, 0.1]),
    ]
    for name, n_clusters, n_groups, sd_u, effects in designs:
        cluster = np.repeat(np.arange(n_clusters), n_groups)
        group = np.tile(np.arange(n_groups), n_clusters)
        u = rng.normal(scale=sd_u, size=n_clusters)
        y = np.array(effects)[group] + u[cluster] + rng.normal(scale=0.5, size=len(group))
        x = np.column_stack([np.ones(len(group))] + [(group == g).astype(float) for g in range(1, n_groups)])
        cases.append((name, y, x, cluster))
    # Unbalanced: clusters of 1 to 6 observations and a continuous covariate.
    sizes = rng.integers(1, 7, size=50)
    cluster = np.repeat(np.arange(50), sizes)
    covariate = rng.normal(size=len(cluster))
    flag = (rng.uniform(size=len(cluster)) < 0.4).astype(float)
    u = rng.normal(scale=0.8, size=50)
    y = 1.0 + 0.5 * covariate - 0.3 * flag + u[cluster] + rng.normal(scale=0.7, size=len(cluster))
    x = np.column_stack([np.ones(len(cluster)), covariate, flag])
    cases.append(("unbalanced_50", y, x, cluster))

    out = []
    for name, y, x, cluster in cases:
        for reml in [True, False]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = sm.MixedLM(y, x, groups=cluster).fit(reml=reml)
            out.append({"name": f"{name}_{'reml' if reml else 'ml'}", "reml": reml, "y": y.tolist(), "x": x.tolist(),
                        "cluster": cluster.tolist(), "coefficients": nums(fit.fe_params),
                        "standard_errors": nums(fit.bse_fe), "p_values": nums(fit.pvalues[: x.shape[1]]),
                        "group_variance": num(fit.cov_re.iloc[0, 0] if hasattr(fit.cov_re, "iloc") else fit.cov_re[0, 0]),
                        "residual_variance": num(fit.scale), "log_likelihood": num(fit.llf)})
    return out


def main():
    golden = {
        "generator": {"scipy": scipy.__version__, "statsmodels": statsmodels.__version__, "numpy": np.__version__,
                      "pandas": pd.__version__},
        "friedman": friedman_cases(),
        "cochran_q": cochran_cases(),
        "wilcoxon": wilcoxon_cases(),
        "paired_t": paired_t_cases(),
        "holm": holm_cases(),
        "quantile": quantile_cases(),
    }
    (OUT / "tests.json").write_text(json.dumps(golden, indent=1) + "\n")
    mixed = {"generator": golden["generator"], "cases": mixedlm_cases()}
    (OUT / "mixedlm.json").write_text(json.dumps(mixed) + "\n")


if __name__ == "__main__":
    main()
