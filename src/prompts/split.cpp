#include "medfair/prompts/split.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "medfair/error.hpp"
#include "medfair/prompts/rng.hpp"

namespace medfair::prompts {

VignetteSplit split_vignettes(const std::vector<std::string>& ids, double test_fraction, std::uint64_t seed) {
  if (!(test_fraction >= 0.0 && test_fraction <= 1.0)) {
    throw ConfigError(fmt::format("split_vignettes: test_fraction must be in [0, 1], got {}", test_fraction));
  }
  std::set<std::string> unique;
  for (const std::string& id : ids) {
    if (!unique.insert(id).second) {
      throw ConfigError(fmt::format("split_vignettes: vignette id \"{}\" appears twice; ids must be unique", id));
    }
  }

  // Rank by (hash, id): the id breaks the rare hash tie, so the order is total.
  std::vector<std::pair<std::uint64_t, std::string>> ranked;
  ranked.reserve(ids.size());
  for (const std::string& id : ids) ranked.emplace_back(derive_seed(seed, id), id);
  std::sort(ranked.begin(), ranked.end());
  const auto n_test = static_cast<size_t>(std::llround(test_fraction * static_cast<double>(ids.size())));
  std::set<std::string> test;
  for (size_t i = 0; i < n_test; ++i) test.insert(ranked[i].second);

  VignetteSplit split;
  for (const std::string& id : ids) (test.contains(id) ? split.test : split.train).push_back(id);
  return split;
}

}  // namespace medfair::prompts
