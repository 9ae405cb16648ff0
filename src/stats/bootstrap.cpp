#include "medfair/stats/bootstrap.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>

#include "medfair/error.hpp"

namespace medfair::stats {

std::uint64_t SplitMix64::next() {
  // Constants of the reference SplitMix64 (Vigna's splitmix64.c).
  state_ += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::size_t SplitMix64::uniform_index(std::size_t n) {
  const auto range = static_cast<std::uint64_t>(n);
  unsigned __int128 product = static_cast<unsigned __int128>(next()) * range;
  auto low = static_cast<std::uint64_t>(product);
  if (low < range) {
    // Reject the outputs that would make some indices more likely.
    const std::uint64_t threshold = (0 - range) % range;
    while (low < threshold) {
      product = static_cast<unsigned __int128>(next()) * range;
      low = static_cast<std::uint64_t>(product);
    }
  }
  return static_cast<std::size_t>(product >> 64);
}

double quantile(std::vector<double> values, double q) {
  if (!(q >= 0.0 && q <= 1.0)) {
    throw ConfigError(fmt::format("quantile: q is {}; expected a probability in [0, 1]", q));
  }
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  // numpy's "linear" method: position (n - 1) q, interpolated as
  // a + (b - a) * fraction, like numpy's _lerp for fractions below 0.5.
  const double position = static_cast<double>(values.size() - 1) * q;
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(below + 1, values.size() - 1);
  const double fraction = position - static_cast<double>(below);
  const double a = values[below];
  const double b = values[above];
  const double difference = b - a;
  // numpy.lerp evaluates b - (b - a)(1 - t) for t >= 0.5, which rounds
  // differently; follow it so the results agree to the last bit.
  return fraction >= 0.5 ? b - difference * (1.0 - fraction) : a + difference * fraction;
}

std::vector<BootstrapInterval> cluster_bootstrap_many(
    std::size_t n_clusters, std::size_t n_statistics,
    const std::function<void(const std::vector<std::size_t>&, std::vector<double>&)>& statistics,
    const BootstrapOptions& options) {
  if (options.replicates == 0) {
    throw ConfigError("cluster_bootstrap: replicates is 0; expected a positive number of resamples such as 2000");
  }
  if (!(options.level > 0.0 && options.level < 1.0)) {
    throw ConfigError(
        fmt::format("cluster_bootstrap: level is {}; expected a confidence level in (0, 1) such as 0.95", options.level));
  }
  if (n_clusters == 0) {
    throw ConfigError("cluster_bootstrap: there are no clusters to resample; pass at least one vignette");
  }

  SplitMix64 rng(options.seed);
  std::vector<std::vector<double>> replicates(n_statistics);
  for (auto& r : replicates) r.reserve(options.replicates);
  std::vector<std::size_t> indices(n_clusters);
  std::vector<double> values(n_statistics);
  for (std::size_t r = 0; r < options.replicates; ++r) {
    for (auto& index : indices) index = rng.uniform_index(n_clusters);
    std::fill(values.begin(), values.end(), std::numeric_limits<double>::quiet_NaN());
    statistics(indices, values);
    for (std::size_t s = 0; s < n_statistics; ++s) {
      if (std::isfinite(values[s])) replicates[s].push_back(values[s]);
    }
  }

  const double tail = (1.0 - options.level) / 2.0;
  std::vector<BootstrapInterval> intervals(n_statistics);
  for (std::size_t s = 0; s < n_statistics; ++s) {
    intervals[s].replicates = replicates[s].size();
    intervals[s].low = quantile(replicates[s], tail);
    intervals[s].high = quantile(replicates[s], 1.0 - tail);
  }
  return intervals;
}

BootstrapInterval cluster_bootstrap(std::size_t n_clusters,
                                    const std::function<double(const std::vector<std::size_t>&)>& statistic,
                                    const BootstrapOptions& options) {
  auto intervals = cluster_bootstrap_many(
      n_clusters, 1, [&](const std::vector<std::size_t>& indices, std::vector<double>& out) { out[0] = statistic(indices); },
      options);
  return intervals.front();
}

}  // namespace medfair::stats
