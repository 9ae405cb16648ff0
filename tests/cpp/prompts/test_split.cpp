// split_vignettes on made-up ids and on the real Q-Pain vignettes.

#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "medfair/error.hpp"
#include "medfair/prompts/loaders.hpp"
#include "medfair/prompts/split.hpp"
#include "test_support.hpp"

using medfair::prompts::split_vignettes;
using medfair::prompts::VignetteSplit;

namespace {

std::vector<std::string> numbered_ids(int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back("case-" + std::to_string(i));
  return ids;
}

}  // namespace

TEST_CASE("split sizes and disjoint sides") {
  const auto ids = numbered_ids(20);
  VignetteSplit split = split_vignettes(ids, 0.25, 0);
  CHECK(split.test.size() == 5);
  CHECK(split.train.size() == 15);
  std::set<std::string> train(split.train.begin(), split.train.end());
  for (const std::string& id : split.test) CHECK_FALSE(train.contains(id));
}

TEST_CASE("split deterministic and order independent") {
  auto ids = numbered_ids(30);
  VignetteSplit first = split_vignettes(ids, 0.5, 3);
  VignetteSplit again = split_vignettes(ids, 0.5, 3);
  CHECK(first.train == again.train);
  CHECK(first.test == again.test);

  std::reverse(ids.begin(), ids.end());
  VignetteSplit reversed = split_vignettes(ids, 0.5, 3);
  CHECK(std::set<std::string>(reversed.test.begin(), reversed.test.end()) ==
        std::set<std::string>(first.test.begin(), first.test.end()));
  // Each side keeps the input order.
  CHECK(std::is_sorted(reversed.test.begin(), reversed.test.end(),
                       [&](const std::string& a, const std::string& b) {
                         return std::find(ids.begin(), ids.end(), a) < std::find(ids.begin(), ids.end(), b);
                       }));

  VignetteSplit other_seed = split_vignettes(numbered_ids(30), 0.5, 4);
  CHECK(other_seed.test != first.test);
}

TEST_CASE("split edge fractions") {
  const auto ids = numbered_ids(7);
  CHECK(split_vignettes(ids, 0.0, 0).test.empty());
  CHECK(split_vignettes(ids, 1.0, 0).train.empty());
  CHECK(split_vignettes({}, 0.5, 0).train.empty());
}

TEST_CASE("split rejects bad input") {
  CHECK_THROWS_WITH(split_vignettes({"a"}, 1.5, 0), Catch::Contains("test_fraction must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(split_vignettes({"a", "b", "a"}, 0.5, 0), Catch::Contains("vignette id \"a\" appears twice"));
}

TEST_CASE("split qpain half", "[real]") {
  medfair::prompts::Task task = medfair::prompts::load_qpain(medfair::test::shared_data_dir() / "qpain");
  std::vector<std::string> ids;
  for (const auto& vignette : task.vignettes) ids.push_back(vignette.id);
  VignetteSplit split = split_vignettes(ids, 0.5, 0);
  CHECK(split.train.size() + split.test.size() == ids.size());
  CHECK(split.test.size() == 28);  // round(27.5) away from zero
}
