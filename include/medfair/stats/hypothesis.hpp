#pragma once
// Hypothesis tests for paired (within-vignette) comparisons of groups, each
// matching a named scipy.stats or statsmodels function. Inputs are plain
// std::vector values so that this header needs neither Eigen nor Boost.
//
// NaN policy: every function here rejects NaN and infinite inputs with
// DataError. Callers drop incomplete vignettes before calling (the fairness
// metrics do so and report how many they dropped).

#include <cstddef>
#include <string>
#include <vector>

namespace medfair::stats {

/// Row-major table of blocks x treatments: one row per vignette, one column
/// per demographic group. Every row must have the same length.
using BlockTable = std::vector<std::vector<double>>;

/// Friedman test over k >= 3 related samples.
struct FriedmanResult {
  double statistic = 0;  ///< Tie-corrected chi-square; NaN when every row is constant.
  double p_value = 0;    ///< Upper tail of chi-square with k - 1 degrees of freedom.
  double kendall_w = 0;  ///< Kendall's coefficient of concordance, statistic / (n (k - 1)).
  std::size_t n_blocks = 0;
  std::size_t n_groups = 0;
};

/// Runs the Friedman test on `blocks` (n rows >= 1, k columns >= 3), ranking
/// within each row with average ranks for ties. Matches
/// scipy.stats.friedmanchisquare(*columns), including its tie correction.
/// Throws DataError on a ragged table, k < 3, n = 0 or a non-finite value.
FriedmanResult friedman_test(const BlockTable& blocks);

/// Cochran's Q test for k >= 2 related binary samples.
struct CochranQResult {
  double statistic = 0;  ///< Q; NaN when every row is all 0 or all 1.
  double p_value = 0;    ///< Upper tail of chi-square with k - 1 degrees of freedom.
  std::size_t n_blocks = 0;
  std::size_t n_groups = 0;
};

/// Runs Cochran's Q on a table of 0/1 outcomes (rows = vignettes, columns =
/// groups). Matches statsmodels.stats.contingency_tables.cochrans_q when the
/// table contains both values. Throws DataError on a value other than 0 or 1,
/// a ragged table, k < 2 or n = 0.
CochranQResult cochran_q(const BlockTable& outcomes);

/// Method behind the Wilcoxon p-value.
enum class WilcoxonMethod {
  exact,        ///< Exact null distribution of the signed-rank statistic (no ties, no zeros).
  permutation,  ///< All 2^n sign flips enumerated (ties or zeros, n <= 13).
  asymptotic,   ///< Normal approximation with tie correction, no continuity correction.
};

/// Returns "exact", "permutation" or "asymptotic".
std::string to_string(WilcoxonMethod method);

/// Wilcoxon signed-rank test of paired differences, two-sided.
struct WilcoxonResult {
  double statistic = 0;      ///< min(R+, R-), as scipy reports for two-sided tests.
  double p_value = 0;        ///< Two-sided p-value; NaN when asymptotic and every difference is zero.
  double r_plus = 0;         ///< Sum of ranks of positive differences (zeros dropped).
  double r_minus = 0;        ///< Sum of ranks of negative differences.
  double z = 0;              ///< (R+ - mean) / sd under the null; NaN unless the method is asymptotic.
  double rank_biserial = 0;  ///< Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-); NaN when all differences are zero.
  std::size_t n = 0;         ///< Number of pairs, zeros included.
  std::size_t n_zero = 0;    ///< Number of zero differences.
  WilcoxonMethod method = WilcoxonMethod::exact;
};

/// Runs the Wilcoxon signed-rank test on d = x - y, replicating the defaults
/// of scipy.stats.wilcoxon in scipy 1.17 (zero_method="wilcox",
/// correction=False, alternative="two-sided", method="auto"): with n > 50
/// pairs the normal approximation is used; with n <= 50 and no ties and no
/// zeros the exact distribution; with ties or zeros and n <= 13 the exact
/// permutation distribution over all 2^n sign flips; otherwise the normal
/// approximation with tie correction. Throws DataError on unequal lengths,
/// an empty input or a non-finite value.
WilcoxonResult wilcoxon_signed_rank(const std::vector<double>& x, const std::vector<double>& y);

/// Same test on given differences.
WilcoxonResult wilcoxon_signed_rank(const std::vector<double>& differences);

/// Paired t-test, two-sided.
struct PairedTResult {
  double statistic = 0;        ///< mean(d) / (sd(d) / sqrt(n)); +-inf when sd is 0 and the mean is not, NaN when both are 0.
  double p_value = 0;          ///< Two-sided p-value from Student's t with n - 1 degrees of freedom.
  double df = 0;               ///< n - 1.
  double mean_difference = 0;  ///< mean(x - y).
  double cohen_dz = 0;         ///< Standardised mean difference mean(d) / sd(d), sd with ddof = 1.
  std::size_t n = 0;
};

/// Runs the paired t-test on x - y. Matches scipy.stats.ttest_rel(x, y).
/// Throws DataError on unequal lengths, fewer than 2 pairs or a non-finite value.
PairedTResult paired_t_test(const std::vector<double>& x, const std::vector<double>& y);

/// Holm step-down adjusted p-values.
struct HolmResult {
  std::vector<double> adjusted;  ///< Adjusted p-values, in the input order; NaN inputs stay NaN.
  std::vector<bool> reject;      ///< Whether each hypothesis is rejected at the family-wise level alpha.
};

/// Applies the Holm correction to `p_values` at family-wise error rate
/// `alpha`. Matches statsmodels.stats.multitest.multipletests(p, alpha,
/// method="holm"). NaN p-values are left out of the family (the family size
/// is the number of non-NaN values) and are never rejected. Throws DataError
/// on a p-value outside [0, 1] and ConfigError on alpha outside (0, 1).
HolmResult holm_correction(const std::vector<double>& p_values, double alpha = 0.05);

/// Average ranks (1-based) of `values`, ties sharing the mean of their ranks,
/// as scipy.stats.rankdata(method="average").
std::vector<double> average_ranks(const std::vector<double>& values);

}  // namespace medfair::stats
