#pragma once
// Cluster (vignette) bootstrap with a portable random number generator, so
// that the same seed gives the same intervals on every machine and compiler.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace medfair::stats {

/// SplitMix64 generator. Its output is fixed by the algorithm, unlike that of
/// the std:: distributions, which differs between standard libraries;
/// test_bootstrap.cpp checks it against the reference implementation's outputs.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}

  /// Returns the next 64-bit output.
  std::uint64_t next();

  /// Returns an index uniform in [0, n) by Lemire's multiply-and-reject
  /// method, which has no modulo bias. Requires n > 0.
  std::size_t uniform_index(std::size_t n);

 private:
  std::uint64_t state_;
};

/// Options of the percentile cluster bootstrap.
struct BootstrapOptions {
  std::size_t replicates = 2000;  ///< Number of resamples (default 2000).
  double level = 0.95;            ///< Two-sided confidence level in (0, 1) (default 0.95).
  std::uint64_t seed = 20240607;  ///< SplitMix64 seed (default 20240607).
};

/// Percentile interval from bootstrap replicates.
struct BootstrapInterval {
  double low = 0;             ///< Quantile (1 - level) / 2 of the finite replicates.
  double high = 0;            ///< Quantile (1 + level) / 2 of the finite replicates.
  std::size_t replicates = 0; ///< Replicates with a finite statistic, the ones the quantiles use.
};

/// Returns the q-quantile of `values` with linear interpolation between order
/// statistics (numpy.quantile's default method "linear", Hyndman and Fan type
/// 7). NaN when `values` is empty. Throws ConfigError when q is outside [0, 1].
double quantile(std::vector<double> values, double q);

/// Draws `options.replicates` resamples of `n_clusters` cluster indices with
/// replacement and returns the percentile interval of `statistic` over them.
/// Replicate r draws its indices as uniform_index(n_clusters) calls in
/// order, from one SplitMix64 seeded with options.seed that runs through all
/// replicates. `statistic` receives the drawn indices (repeats included). It
/// may return NaN for a resample where it is undefined, for example when a
/// group is left empty. Such replicates are left out, and an interval with
/// no finite replicate is NaN. Throws ConfigError on replicates = 0, a level outside
/// (0, 1) or n_clusters = 0.
BootstrapInterval cluster_bootstrap(std::size_t n_clusters,
                                    const std::function<double(const std::vector<std::size_t>&)>& statistic,
                                    const BootstrapOptions& options = {});

/// Same, for several statistics computed from one resample: `statistics`
/// fills a vector of `n_statistics` values per resample, and the result has
/// one interval per statistic. All intervals share the same resamples.
std::vector<BootstrapInterval> cluster_bootstrap_many(
    std::size_t n_clusters, std::size_t n_statistics,
    const std::function<void(const std::vector<std::size_t>&, std::vector<double>&)>& statistics,
    const BootstrapOptions& options = {});

}  // namespace medfair::stats
