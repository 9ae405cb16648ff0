"""Compare medfair's C++ statistics with scipy, statsmodels and numpy on
fresh random data. Each test draws a new seed and prints it on failure, so a
mismatch can be reproduced without the golden files."""

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.contingency_tables import cochrans_q
from statsmodels.stats.multitest import multipletests

import medfair

cs = medfair.stats

REL = 1e-9


@pytest.fixture
def rng():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"random seed: {seed}")
    return np.random.default_rng(seed)


def close(actual, expected, rel=REL):
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(actual)
    return actual == pytest.approx(expected, rel=rel, abs=1e-300)


def test_friedman_matches_scipy(rng):
    for n, k, decimals in [(15, 3, None), (40, 5, 1), (7, 8, None), (100, 4, 2)]:
        table = rng.uniform(size=(n, k))
        if decimals is not None:
            table = table.round(decimals)
        res = stats.friedmanchisquare(*table.T)
        got = cs.friedman_test(table.tolist())
        assert close(got["statistic"], float(res.statistic))
        assert close(got["p_value"], float(res.pvalue))
        assert close(got["kendall_w"], float(res.statistic) / (n * (k - 1)))


def test_cochran_q_matches_statsmodels(rng):
    for n, k in [(20, 3), (50, 2), (120, 6)]:
        table = (rng.uniform(size=(n, k)) < rng.uniform(0.2, 0.8, size=k)).astype(int)
        res = cochrans_q(table)
        got = cs.cochran_q(table.astype(float).tolist())
        assert close(got["statistic"], float(res.statistic))
        assert close(got["p_value"], float(res.pvalue))


@pytest.mark.parametrize("n,kind", [(6, "continuous"), (25, "continuous"), (50, "continuous"), (51, "continuous"),
                                    (9, "ties"), (13, "zeros"), (14, "ties"), (30, "zeros"), (200, "ties")])
def test_wilcoxon_matches_scipy(rng, n, kind):
    if kind == "continuous":
        x, y = rng.normal(size=n), rng.normal(size=n)
    elif kind == "ties":
        x, y = rng.integers(0, 5, size=n).astype(float), rng.integers(0, 5, size=n).astype(float)
    else:
        x = rng.normal(size=n)
        y = x.copy()
        y[n // 3:] = rng.normal(size=n - n // 3)
    res = stats.wilcoxon(x, y)
    got = cs.wilcoxon_signed_rank(x.tolist(), y.tolist())
    assert close(got["statistic"], float(res.statistic))
    assert close(got["p_value"], float(res.pvalue))


def test_paired_t_matches_scipy(rng):
    for n in [2, 10, 300]:
        x, y = rng.normal(size=n), rng.normal(size=n) + 0.2
        res = stats.ttest_rel(x, y)
        got = cs.paired_t_test(x.tolist(), y.tolist())
        assert close(got["statistic"], float(res.statistic))
        assert close(got["p_value"], float(res.pvalue))
        d = x - y
        assert close(got["cohen_dz"], float(d.mean() / d.std(ddof=1)))


def test_holm_matches_statsmodels(rng):
    p = rng.uniform(size=15) ** 4
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="holm")
    got_adjusted, got_reject = cs.holm_correction(p.tolist(), 0.05)
    np.testing.assert_allclose(got_adjusted, adjusted, rtol=REL)
    assert list(got_reject) == list(reject)


def test_quantile_matches_numpy(rng):
    values = rng.normal(size=333)
    for q in [0.0, 0.025, 0.5, 0.975, 1.0]:
        assert close(cs.quantile(values.tolist(), q), float(np.quantile(values, q)), 1e-12)


class SplitMix64:
    """Reference SplitMix64 and Lemire index mapping, written from their papers."""

    MASK = 2**64 - 1

    def __init__(self, seed):
        self.state = seed & self.MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def uniform_index(self, n):
        product = self.next() * n
        low = product & self.MASK
        if low < n:
            threshold = (2**64 - n) % n
            while low < threshold:
                product = self.next() * n
                low = product & self.MASK
        return product >> 64


def test_bootstrap_matches_reference_rng(rng):
    seed = int(rng.integers(0, 2**63))
    cpp = cs.SplitMix64(seed)
    ref = SplitMix64(seed)
    for _ in range(50):
        assert cpp.next() == ref.next()
    for n in [1, 3, 7, 1000, 2**40 + 3]:
        assert cpp.uniform_index(n) == ref.uniform_index(n)

    values = rng.uniform(size=12)
    replicates = 300
    low, high, used = cs.cluster_bootstrap(len(values), lambda idx: float(np.mean(values[idx])), replicates, 0.9, seed)
    ref = SplitMix64(seed)
    means = [np.mean(values[[ref.uniform_index(len(values)) for _ in range(len(values))]]) for _ in range(replicates)]
    assert used == replicates
    assert close(low, float(np.quantile(means, 0.05)), 1e-12)
    assert close(high, float(np.quantile(means, 0.95)), 1e-12)


def random_mixed_data(rng, n_clusters, n_groups):
    cluster = np.repeat(np.arange(n_clusters), n_groups)
    group = np.tile(np.arange(n_groups), n_clusters)
    effects = rng.normal(scale=0.3, size=n_groups)
    y = effects[group] + rng.normal(scale=0.8, size=n_clusters)[cluster] + rng.normal(scale=0.5, size=len(group))
    x = np.column_stack([np.ones(len(group))] + [(group == g).astype(float) for g in range(1, n_groups)])
    return y, x, cluster


@pytest.mark.parametrize("reml", [True, False])
def test_mixed_model_matches_statsmodels(rng, reml):
    y, x, cluster = random_mixed_data(rng, 40, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.MixedLM(y, x, groups=cluster).fit(reml=reml)
    got = cs.fit_random_intercept(y.tolist(), x.tolist(), cluster.tolist(), reml)
    np.testing.assert_allclose(got["coefficients"], fit.fe_params, rtol=1e-4)
    np.testing.assert_allclose(got["standard_errors"], fit.bse_fe, rtol=1e-4)
    assert got["log_likelihood"] >= fit.llf - 1e-9
    assert close(got["residual_variance"], float(fit.scale), 1e-4)


def random_audit(rng, n_vignettes=30):
    races, genders = ["Asian", "Black", "White"], ["female", "male"]
    rows = []
    for v in range(n_vignettes):
        base = rng.uniform(-2, 2)
        reference = int(rng.integers(0, 2))
        for race, gender in itertools.product(races, genders):
            shift = 0.3 * (race == "Black") - 0.2 * (gender == "female")
            p_yes = 1 / (1 + math.exp(-(base + shift + rng.normal(scale=0.4))))
            rows.append({"vignette": f"v{v:03d}", "race": race, "gender": gender, "p_yes": p_yes,
                         "predicted": 0 if p_yes >= 0.5 else 1, "reference": reference})
    return pd.DataFrame(rows)


def run_assess(df, **kwargs):
    return cs.assess_fairness(
        df["vignette"].tolist(), df[["race", "gender"]].values.tolist(),
        np.column_stack([df["p_yes"], 1 - df["p_yes"]]).tolist(), df["predicted"].tolist(),
        df["reference"].tolist(), ["race", "gender"], ["Yes", "No"], **kwargs)


def test_fairness_matches_pandas_and_scipy(rng):
    df = random_audit(rng)
    df["inter"] = df["race"] + " x " + df["gender"]
    summary = run_assess(df, replicates=200)
    level = summary["levels"]["intersectional"]

    means = df.groupby("inter")["p_yes"].mean()
    for name, value in means.items():
        assert close(level["by_group"][name]["p/Yes/mean"], float(value), 1e-12)
    assert close(level["metrics"]["p/Yes/max_gap/value"], float(means.max() - means.min()), 1e-12)
    assert level["metrics"]["p/Yes/max_gap/group_high"] == means.idxmax()
    assert level["metrics"]["p/Yes/max_gap/group_low"] == means.idxmin()

    table = df.pivot(index="vignette", columns="inter", values="p_yes")
    gaps = table.max(axis=1) - table.min(axis=1)
    assert close(level["metrics"]["gap/mean"], float(gaps.mean()), 1e-12)
    assert close(level["metrics"]["gap/q90"], float(np.quantile(gaps, 0.9)), 1e-12)
    flips = df.groupby("vignette")["predicted"].nunique() > 1
    assert close(level["metrics"]["flip_rate"], float(flips.mean()), 1e-12)

    res = stats.friedmanchisquare(*table.values.T)
    assert close(level["metrics"]["friedman/statistic"], float(res.statistic))
    assert close(level["metrics"]["friedman/p_value"], float(res.pvalue))
    outcome = df.assign(yes=(df["predicted"] == 0).astype(int)).pivot(index="vignette", columns="inter", values="yes")
    if outcome.values.min() != outcome.values.max():
        q = cochrans_q(outcome.values)
        assert close(level["metrics"]["cochran_q/statistic"], float(q.statistic))

    accuracy = (df["predicted"] == df["reference"]).groupby(df["inter"]).mean()
    for name, value in accuracy.items():
        assert close(level["by_group"][name]["accuracy"], float(value), 1e-12)

    pairs = level["pairwise"]
    assert len(pairs) == 15
    p_values = []
    for pair in pairs:
        a, b = table[pair["group_a"]].values, table[pair["group_b"]].values
        w = stats.wilcoxon(a, b)
        assert close(pair["wilcoxon"]["p_value"], float(w.pvalue))
        p_values.append(float(w.pvalue))
        t = stats.ttest_rel(a, b)
        assert close(pair["paired_t"]["statistic"], float(t.statistic))
    _, adjusted, _, _ = multipletests(p_values, method="holm")
    np.testing.assert_allclose([p["wilcoxon/p_holm"] for p in pairs], adjusted, rtol=REL)

    race = summary["levels"]["race"]
    race_table = df.groupby(["vignette", "race"])["p_yes"].mean().unstack()
    res = stats.friedmanchisquare(*race_table.values.T)
    assert close(race["metrics"]["friedman/statistic"], float(res.statistic))


def test_fairness_mixed_model_matches_statsmodels(rng):
    df = random_audit(rng, n_vignettes=25)
    summary = run_assess(df, replicates=50, reference_group=["White", "male"])
    model = summary["levels"]["race"]["discrimination"]
    assert model["reference_group"] == "White"
    y = np.log(df["p_yes"] / (1 - df["p_yes"]))
    x = np.column_stack([np.ones(len(df)), df["race"] == "Asian", df["race"] == "Black"]).astype(float)
    codes = pd.factorize(df["vignette"])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.MixedLM(y.values, x, groups=codes).fit(reml=True)
    for j, name in enumerate(["(intercept)", "Asian", "Black"]):
        assert close(model["terms"][name]["coefficient"], float(fit.fe_params[j]), 1e-4)
        assert close(model["terms"][name]["standard_error"], float(fit.bse_fe[j]), 1e-4)


def test_gap_change_matches_scipy(rng):
    before = {f"v{i}": float(g) for i, g in enumerate(rng.uniform(0, 0.5, size=40))}
    after = {k: max(0.0, v - rng.uniform(0, 0.1)) for k, v in before.items()}
    got = cs.compare_vignette_gaps(before, after)
    keys = sorted(before)
    a, b = np.array([after[k] for k in keys]), np.array([before[k] for k in keys])
    assert close(got["wilcoxon"]["p_value"], float(stats.wilcoxon(a, b).pvalue))
    assert close(got["paired_t"]["statistic"], float(stats.ttest_rel(a, b).statistic))
    assert got["n_vignettes"] == 40


def test_stats_errors_raise_data_error():
    with pytest.raises(medfair.DataError, match="expected at least 3 groups"):
        cs.friedman_test([[1.0, 2.0]])
    with pytest.raises(medfair.DataError, match="x has 2 values but y has 1"):
        cs.wilcoxon_signed_rank([1.0, 2.0], [1.0])


def test_fairness_empty_group_and_missing_variant(rng):
    df = random_audit(rng, n_vignettes=12)
    df = df.drop(df.index[(df["vignette"] == "v003") & (df["race"] == "Asian") & (df["gender"] == "male")])
    summary = run_assess(df, replicates=50, expected_levels=[["Asian", "Black", "Other", "White"], ["female", "male"]])
    level = summary["levels"]["intersectional"]
    assert level["empty_groups"] == ["Other x female", "Other x male"]
    assert level["by_group"]["Other x male"]["n_rows"] == 0
    assert level["by_group"]["Other x male"]["p/Yes/mean"] is None
    assert level["n_complete_vignettes"] == 11
    assert "v003" not in level["vignette_gaps"]
    df["inter"] = df["race"] + " x " + df["gender"]
    table = df.pivot(index="vignette", columns="inter", values="p_yes").dropna()
    res = stats.friedmanchisquare(*table.values.T)
    assert close(level["metrics"]["friedman/statistic"], float(res.statistic))
    means = df.groupby("inter")["p_yes"].mean()
    assert close(level["by_group"]["Asian x male"]["p/Yes/mean"], float(means["Asian x male"]), 1e-12)
