#include <catch2/catch.hpp>

#include <numeric>
#include <string>

#include "golden.hpp"
#include "medfair/error.hpp"
#include "medfair/stats/bootstrap.hpp"

using medfair::test::golden_number;
using medfair::test::golden_vector;
using namespace medfair::stats;

TEST_CASE("splitmix64 reference outputs") {
  // First outputs of Vigna's splitmix64.c for seed 1234567.
  SplitMix64 rng(1234567);
  CHECK(rng.next() == 6457827717110365317ULL);
  CHECK(rng.next() == 3203168211198807973ULL);
  CHECK(rng.next() == 9817491932198370423ULL);
}

TEST_CASE("uniform index stays in range") {
  SplitMix64 rng(7);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 30000; ++i) ++counts.at(rng.uniform_index(3));
  for (int c : counts) CHECK(std::abs(c - 10000) < 400);
  CHECK(rng.uniform_index(1) == 0);
}

TEST_CASE("quantile matches numpy") {
  const auto golden = medfair::test::load_golden("tests.json");
  for (const auto& c : golden["quantile"]) {
    const auto values = golden_vector(c["values"]);
    const auto qs = golden_vector(c["q"]);
    const auto expected = golden_vector(c["expected"]);
    for (std::size_t i = 0; i < qs.size(); ++i) {
      INFO("n = " << values.size() << ", q = " << qs[i]);
      CHECK_CLOSE(quantile(values, qs[i]), expected[i], 1e-12);
    }
  }
}

TEST_CASE("cluster bootstrap is reproducible") {
  const std::vector<double> values{0.1, 0.5, 0.2, 0.9, 0.4, 0.3, 0.8};
  auto mean = [&](const std::vector<std::size_t>& indices) {
    double sum = 0;
    for (auto i : indices) sum += values[i];
    return sum / static_cast<double>(indices.size());
  };
  BootstrapOptions options;
  options.replicates = 500;
  const auto first = cluster_bootstrap(values.size(), mean, options);
  const auto second = cluster_bootstrap(values.size(), mean, options);
  CHECK(first.low == second.low);
  CHECK(first.high == second.high);
  CHECK(first.replicates == 500);
  const double estimate = std::accumulate(values.begin(), values.end(), 0.0) / 7.0;
  CHECK(first.low < estimate);
  CHECK(first.high > estimate);
  options.seed = 99;
  const auto other = cluster_bootstrap(values.size(), mean, options);
  CHECK((other.low != first.low || other.high != first.high));
}

TEST_CASE("cluster bootstrap drops nan replicates") {
  BootstrapOptions options;
  options.replicates = 200;
  // NaN whenever cluster 0 is missing from the resample.
  auto statistic = [](const std::vector<std::size_t>& indices) {
    for (auto i : indices) {
      if (i == 0) return 1.0;
    }
    return std::numeric_limits<double>::quiet_NaN();
  };
  const auto interval = cluster_bootstrap(3, statistic, options);
  CHECK(interval.replicates < 200);
  CHECK(interval.replicates > 100);
  CHECK(interval.low == 1.0);
}

TEST_CASE("cluster bootstrap rejects bad options") {
  auto statistic = [](const std::vector<std::size_t>&) { return 0.0; };
  BootstrapOptions options;
  options.level = 1.0;
  CHECK_THROWS_WITH(cluster_bootstrap(3, statistic, options), Catch::Contains("level is 1"));
  options = {};
  options.replicates = 0;
  CHECK_THROWS_WITH(cluster_bootstrap(3, statistic, options), Catch::Contains("replicates is 0"));
  CHECK_THROWS_WITH(cluster_bootstrap(0, statistic), Catch::Contains("no clusters"));
}
