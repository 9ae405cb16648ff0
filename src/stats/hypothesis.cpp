// Paired hypothesis tests. Each function follows the formulas of the scipy or
// statsmodels function named in hypothesis.hpp; the p-values come from
// Boost.Math distributions.

#include "medfair/stats/hypothesis.hpp"

#include <algorithm>
#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <cstdint>
#include <fmt/format.h>
#include <limits>
#include <numeric>

#include "medfair/error.hpp"

namespace medfair::stats {

namespace {

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();

// Checks that `table` is rectangular, non-empty, finite and has at least
// `min_columns` columns. `what` names the calling test in messages.
void validate_table(const BlockTable& table, std::size_t min_columns, const char* what) {
  if (table.empty()) {
    throw DataError(fmt::format("{}: the table has no rows; pass at least one vignette (row) of group values", what));
  }
  const std::size_t k = table.front().size();
  if (k < min_columns) {
    throw DataError(fmt::format("{}: expected at least {} groups (columns), found {}", what, min_columns, k));
  }
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (table[i].size() != k) {
      throw DataError(fmt::format("{}: row {} has {} values but row 0 has {}; every vignette needs one value per group",
                                  what, i, table[i].size(), k));
    }
    for (std::size_t j = 0; j < k; ++j) {
      if (!std::isfinite(table[i][j])) {
        throw DataError(fmt::format("{}: row {}, column {} is {}; drop incomplete vignettes before testing", what, i, j,
                                    table[i][j]));
      }
    }
  }
}

void validate_vector(const std::vector<double>& values, const char* what, const char* name) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      throw DataError(fmt::format("{}: {}[{}] is {}; drop incomplete pairs before testing", what, name, i, values[i]));
    }
  }
}

// Upper tail of chi-square with `df` degrees of freedom, NaN-propagating.
double chi_squared_sf(double x, double df) {
  if (std::isnan(x)) return nan_value;
  if (x == std::numeric_limits<double>::infinity()) return 0.0;
  if (x <= 0) return 1.0;
  return boost::math::cdf(boost::math::complement(boost::math::chi_squared(df), x));
}

// Two-sided p-value 2 * P(Z > |z|) of a standard normal statistic.
double normal_two_sided(double z) {
  if (std::isnan(z)) return nan_value;
  if (std::isinf(z)) return 0.0;
  return 2.0 * boost::math::cdf(boost::math::complement(boost::math::normal(), std::abs(z)));
}

// Sums tie-group sizes t into sum(t^3 - t) over the sorted absolute values.
double tie_term(std::vector<double> sorted_values) {
  std::sort(sorted_values.begin(), sorted_values.end());
  double total = 0;
  for (std::size_t i = 0; i < sorted_values.size();) {
    std::size_t j = i;
    while (j < sorted_values.size() && sorted_values[j] == sorted_values[i]) ++j;
    const double t = static_cast<double>(j - i);
    total += t * t * t - t;
    i = j;
  }
  return total;
}

// Number of subsets of {1..n} with each rank sum s, for s in [0, n(n+1)/2]:
// the null distribution of R+ times 2^n. Counts stay below 2^50 for n <= 50,
// so doubles hold them exactly.
std::vector<double> signed_rank_counts(std::size_t n) {
  const std::size_t max_sum = n * (n + 1) / 2;
  std::vector<double> counts(max_sum + 1, 0.0);
  counts[0] = 1.0;
  for (std::size_t rank = 1; rank <= n; ++rank) {
    for (std::size_t s = max_sum; s >= rank; --s) counts[s] += counts[s - rank];
  }
  return counts;
}

}  // namespace

std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<std::size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j < order.size() && values[order[j]] == values[order[i]]) ++j;
    // Positions i..j-1 (0-based) share the mean of ranks i+1..j.
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (std::size_t m = i; m < j; ++m) ranks[order[m]] = rank;
    i = j;
  }
  return ranks;
}

FriedmanResult friedman_test(const BlockTable& blocks) {
  validate_table(blocks, 3, "friedman_test");
  const std::size_t n = blocks.size();
  const std::size_t k = blocks.front().size();
  const double kd = static_cast<double>(k);
  const double nd = static_cast<double>(n);

  // Formula of scipy.stats.friedmanchisquare: within-row average ranks, column
  // rank sums R_j, tie correction c = 1 - sum t(t^2 - 1) / (k (k^2 - 1) n).
  std::vector<double> rank_sums(k, 0.0);
  double ties = 0;
  for (const auto& row : blocks) {
    const auto ranks = average_ranks(row);
    for (std::size_t j = 0; j < k; ++j) rank_sums[j] += ranks[j];
    ties += tie_term(row);
  }
  const double c = 1.0 - ties / (kd * (kd * kd - 1.0) * nd);
  double ssbn = 0;
  for (double r : rank_sums) ssbn += r * r;

  FriedmanResult result;
  result.n_blocks = n;
  result.n_groups = k;
  // Same operation order as scipy, so that all-constant rows give the same
  // NaN or infinity that numpy produces for 0/0 or x/0.
  result.statistic = (12.0 / (kd * nd * (kd + 1.0)) * ssbn - 3.0 * nd * (kd + 1.0)) / c;
  result.p_value = chi_squared_sf(result.statistic, kd - 1.0);
  result.kendall_w = result.statistic / (nd * (kd - 1.0));
  return result;
}

CochranQResult cochran_q(const BlockTable& outcomes) {
  validate_table(outcomes, 2, "cochran_q");
  const std::size_t n = outcomes.size();
  const std::size_t k = outcomes.front().size();
  std::vector<double> column_success(k, 0.0);
  double row_sum = 0;
  double row_sum_squares = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double row_success = 0;
    for (std::size_t j = 0; j < k; ++j) {
      const double value = outcomes[i][j];
      if (value != 0.0 && value != 1.0) {
        throw DataError(fmt::format("cochran_q: row {}, column {} is {}; expected a binary outcome 0 or 1", i, j, value));
      }
      row_success += value;
      column_success[j] += value;
    }
    row_sum += row_success;
    row_sum_squares += row_success * row_success;
  }
  double column_sum_squares = 0;
  for (double c : column_success) column_sum_squares += c * c;

  // Q = (k - 1) (k sum C_j^2 - N^2) / (k N - sum R_i^2), as in statsmodels'
  // cochrans_q, with N the total number of successes.
  const double kd = static_cast<double>(k);
  CochranQResult result;
  result.n_blocks = n;
  result.n_groups = k;
  result.statistic = (kd - 1.0) * (kd * column_sum_squares - row_sum * row_sum) / (kd * row_sum - row_sum_squares);
  result.p_value = chi_squared_sf(result.statistic, kd - 1.0);
  return result;
}

std::string to_string(WilcoxonMethod method) {
  switch (method) {
    case WilcoxonMethod::exact:
      return "exact";
    case WilcoxonMethod::permutation:
      return "permutation";
    case WilcoxonMethod::asymptotic:
      return "asymptotic";
  }
  return "unknown";
}

WilcoxonResult wilcoxon_signed_rank(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) {
    throw DataError(fmt::format("wilcoxon_signed_rank: x has {} values but y has {}; pass paired samples of equal length",
                                x.size(), y.size()));
  }
  validate_vector(x, "wilcoxon_signed_rank", "x");
  validate_vector(y, "wilcoxon_signed_rank", "y");
  std::vector<double> differences(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) differences[i] = x[i] - y[i];
  return wilcoxon_signed_rank(differences);
}

WilcoxonResult wilcoxon_signed_rank(const std::vector<double>& differences) {
  if (differences.empty()) {
    throw DataError("wilcoxon_signed_rank: no paired differences; pass at least one pair");
  }
  validate_vector(differences, "wilcoxon_signed_rank", "differences");

  WilcoxonResult result;
  result.n = differences.size();

  // zero_method="wilcox": zero differences are dropped before ranking.
  std::vector<double> nonzero;
  std::vector<bool> positive;
  for (double d : differences) {
    if (d == 0.0) {
      ++result.n_zero;
    } else {
      nonzero.push_back(std::abs(d));
      positive.push_back(d > 0);
    }
  }
  const std::size_t m = nonzero.size();
  const auto ranks = average_ranks(nonzero);
  for (std::size_t i = 0; i < m; ++i) (positive[i] ? result.r_plus : result.r_minus) += ranks[i];
  const double ties = tie_term(nonzero);
  const bool has_ties = ties > 0;

  // Method selection of scipy 1.17's method="auto" (scipy/stats/_wilcoxon.py).
  if (result.n > 50) {
    result.method = WilcoxonMethod::asymptotic;
  } else if (!has_ties && result.n_zero == 0) {
    result.method = WilcoxonMethod::exact;
  } else if (result.n <= 13) {
    result.method = WilcoxonMethod::permutation;
  } else {
    result.method = WilcoxonMethod::asymptotic;
  }

  const double md = static_cast<double>(m);
  const double total = result.r_plus + result.r_minus;
  result.statistic = std::min(result.r_plus, result.r_minus);
  result.rank_biserial = total > 0 ? (result.r_plus - result.r_minus) / total : nan_value;
  result.z = nan_value;

  switch (result.method) {
    case WilcoxonMethod::asymptotic: {
      const double mean = md * (md + 1.0) * 0.25;
      const double se = std::sqrt((md * (md + 1.0) * (2.0 * md + 1.0) - ties / 2.0) / 24.0);
      const double z = (result.r_plus - mean) / se;  // NaN when every difference is zero
      result.p_value = normal_two_sided(z);
      result.z = -std::abs(z);  // scipy reports -|z| for two-sided tests
      break;
    }
    case WilcoxonMethod::exact: {
      // No ties and no zeros, so R+ is an integer.
      const auto counts = signed_rank_counts(m);
      const auto r = static_cast<std::size_t>(std::llround(result.r_plus));
      double lower = 0;  // P(R+ <= r) * 2^m
      double upper = 0;  // P(R+ >= r) * 2^m
      for (std::size_t s = 0; s < counts.size(); ++s) {
        if (s <= r) lower += counts[s];
        if (s >= r) upper += counts[s];
      }
      const double scale = std::ldexp(1.0, -static_cast<int>(m));
      result.p_value = std::min(1.0, 2.0 * std::min(lower, upper) * scale);
      break;
    }
    case WilcoxonMethod::permutation: {
      // scipy.stats.permutation_test with permutation_type="samples" flips the
      // sign of each difference; with n <= 13 all 2^n flips are enumerated and
      // the test is exact. Flipping a zero changes nothing, so enumerating
      // the 2^m flips of the non-zero differences gives the same proportions.
      // Ranks are multiples of 1/2, so doubled ranks compare exactly.
      std::vector<std::int64_t> doubled(m);
      for (std::size_t i = 0; i < m; ++i) doubled[i] = std::llround(2.0 * ranks[i]);
      const std::int64_t observed = std::llround(2.0 * result.r_plus);
      const std::uint64_t patterns = std::uint64_t{1} << m;
      std::uint64_t at_most = 0;
      std::uint64_t at_least = 0;
      for (std::uint64_t mask = 0; mask < patterns; ++mask) {
        std::int64_t sum = 0;
        for (std::size_t i = 0; i < m; ++i) {
          if (mask & (std::uint64_t{1} << i)) sum += doubled[i];
        }
        if (sum <= observed) ++at_most;
        if (sum >= observed) ++at_least;
      }
      const double p_less = static_cast<double>(at_most) / static_cast<double>(patterns);
      const double p_greater = static_cast<double>(at_least) / static_cast<double>(patterns);
      result.p_value = std::clamp(2.0 * std::min(p_less, p_greater), 0.0, 1.0);
      break;
    }
  }
  return result;
}

PairedTResult paired_t_test(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) {
    throw DataError(
        fmt::format("paired_t_test: x has {} values but y has {}; pass paired samples of equal length", x.size(), y.size()));
  }
  if (x.size() < 2) {
    throw DataError(fmt::format("paired_t_test: {} pair(s) given; the test needs at least 2", x.size()));
  }
  validate_vector(x, "paired_t_test", "x");
  validate_vector(y, "paired_t_test", "y");

  const std::size_t n = x.size();
  const double nd = static_cast<double>(n);
  std::vector<double> d(n);
  for (std::size_t i = 0; i < n; ++i) d[i] = x[i] - y[i];
  const double mean = std::accumulate(d.begin(), d.end(), 0.0) / nd;
  double squares = 0;
  for (double v : d) squares += (v - mean) * (v - mean);
  const double sd = std::sqrt(squares / (nd - 1.0));

  PairedTResult result;
  result.n = n;
  result.df = nd - 1.0;
  result.mean_difference = mean;
  result.statistic = mean / (sd / std::sqrt(nd));
  result.cohen_dz = mean / sd;
  if (std::isnan(result.statistic)) {
    result.p_value = nan_value;
  } else if (std::isinf(result.statistic)) {
    result.p_value = 0.0;
  } else {
    boost::math::students_t distribution(result.df);
    result.p_value = 2.0 * boost::math::cdf(boost::math::complement(distribution, std::abs(result.statistic)));
  }
  return result;
}

HolmResult holm_correction(const std::vector<double>& p_values, double alpha) {
  if (!(alpha > 0.0 && alpha < 1.0)) {
    throw ConfigError(fmt::format("holm_correction: alpha is {}; expected a family-wise error rate in (0, 1)", alpha));
  }
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < p_values.size(); ++i) {
    const double p = p_values[i];
    if (std::isnan(p)) continue;
    if (p < 0.0 || p > 1.0) {
      throw DataError(fmt::format("holm_correction: p_values[{}] is {}; expected a probability in [0, 1]", i, p));
    }
    order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p_values[a] < p_values[b]; });

  HolmResult result;
  result.adjusted.assign(p_values.size(), nan_value);
  result.reject.assign(p_values.size(), false);
  const std::size_t m = order.size();
  // statsmodels' multipletests: adjusted_i = max_{j <= i} (m - j) p_(j),
  // capped at 1; hypotheses are rejected up to the first sorted p_(i) that
  // exceeds alpha / (m - i).
  double running_max = 0;
  bool stopped = false;
  for (std::size_t i = 0; i < m; ++i) {
    const double p = p_values[order[i]];
    running_max = std::max(running_max, p * static_cast<double>(m - i));
    result.adjusted[order[i]] = std::min(running_max, 1.0);
    if (p > alpha / static_cast<double>(m - i)) stopped = true;
    result.reject[order[i]] = !stopped;
  }
  return result;
}

}  // namespace medfair::stats
