#pragma once
// A deterministic train/test split by vignette, so the vignettes used to build
// alignment data are never the ones used to audit the aligned model.

#include <cstdint>
#include <string>
#include <vector>

namespace medfair::prompts {

/// Vignette ids on each side of a split, each in input order.
struct VignetteSplit {
  std::vector<std::string> train;
  std::vector<std::string> test;
};

/// Splits vignette ids into train and test. Each id gets a rank from a hash of
/// the id and `seed` (derive_seed), and the round(test_fraction * n) ids of
/// lowest rank go to test. An id's side depends only on the id, the seed and
/// the set of ids, never on their order. Throws ConfigError when
/// test_fraction is outside [0, 1] or an id repeats.
VignetteSplit split_vignettes(const std::vector<std::string>& ids, double test_fraction, std::uint64_t seed);

}  // namespace medfair::prompts
