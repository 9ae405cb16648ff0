#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "golden.hpp"
#include "medfair/error.hpp"
#include "medfair/stats/hypothesis.hpp"

using medfair::test::golden_number;
using medfair::test::golden_table;
using medfair::test::golden_vector;
using namespace medfair::stats;

namespace {
constexpr double tolerance = 1e-9;
}

TEST_CASE("friedman matches scipy") {
  const auto golden = medfair::test::load_golden("tests.json");
  for (const auto& c : golden["friedman"]) {
    INFO("case " << c["name"].get<std::string>());
    const auto result = friedman_test(golden_table(c["table"]));
    CHECK_CLOSE(result.statistic, golden_number(c["statistic"]), tolerance);
    CHECK_CLOSE(result.p_value, golden_number(c["p_value"]), tolerance);
    CHECK_CLOSE(result.kendall_w, golden_number(c["kendall_w"]), tolerance);
  }
}

TEST_CASE("friedman rejects bad tables") {
  CHECK_THROWS_WITH(friedman_test({{1, 2}, {3, 4}}), Catch::Contains("expected at least 3 groups"));
  CHECK_THROWS_WITH(friedman_test({{1, 2, 3}, {3, 4}}), Catch::Contains("row 1 has 2 values but row 0 has 3"));
  CHECK_THROWS_WITH(friedman_test({}), Catch::Contains("the table has no rows"));
  CHECK_THROWS_WITH(friedman_test({{1, std::nan(""), 3}}), Catch::Contains("row 0, column 1 is nan"));
}

TEST_CASE("cochran q matches statsmodels") {
  const auto golden = medfair::test::load_golden("tests.json");
  for (const auto& c : golden["cochran_q"]) {
    INFO("case " << c["name"].get<std::string>());
    const auto result = cochran_q(golden_table(c["table"]));
    CHECK_CLOSE(result.statistic, golden_number(c["statistic"]), tolerance);
    CHECK_CLOSE(result.p_value, golden_number(c["p_value"]), tolerance);
  }
}

TEST_CASE("cochran q rejects non-binary values") {
  CHECK_THROWS_WITH(cochran_q({{0, 1}, {0.5, 1}}), Catch::Contains("row 1, column 0 is 0.5; expected a binary outcome"));
}

TEST_CASE("cochran q constant table is nan") {
  const auto result = cochran_q({{1, 1, 1}, {0, 0, 0}});
  CHECK(std::isnan(result.statistic));
  CHECK(std::isnan(result.p_value));
}

TEST_CASE("wilcoxon matches scipy") {
  const auto golden = medfair::test::load_golden("tests.json");
  for (const auto& c : golden["wilcoxon"]) {
    const auto name = c["name"].get<std::string>();
    INFO("case " << name);
    const auto result = wilcoxon_signed_rank(golden_vector(c["x"]), golden_vector(c["y"]));
    CHECK_CLOSE(result.statistic, golden_number(c["statistic"]), tolerance);
    CHECK_CLOSE(result.p_value, golden_number(c["p_value"]), tolerance);
    CHECK_CLOSE(result.r_plus, golden_number(c["r_plus"]), tolerance);
    CHECK_CLOSE(result.r_minus, golden_number(c["r_minus"]), tolerance);
    CHECK_CLOSE(result.rank_biserial, golden_number(c["rank_biserial"]), tolerance);
    if (result.method == WilcoxonMethod::asymptotic) {
      CHECK_CLOSE(result.z, golden_number(c["asymptotic_z"]), tolerance);
    }
    const std::string expected_method = name.substr(0, name.find('_'));
    if (expected_method == "exact" || expected_method == "asymptotic") CHECK(to_string(result.method) == expected_method);
    if (name.find("permutation") != std::string::npos) CHECK(result.method == WilcoxonMethod::permutation);
  }
}

TEST_CASE("wilcoxon counts zeros") {
  const auto result = wilcoxon_signed_rank({0.0, 0.0, 1.0, -2.0, 3.0});
  CHECK(result.n == 5);
  CHECK(result.n_zero == 2);
  CHECK(result.r_plus == 4.0);
  CHECK(result.r_minus == 2.0);
  CHECK(result.method == WilcoxonMethod::permutation);
}

TEST_CASE("wilcoxon rejects bad input") {
  CHECK_THROWS_WITH(wilcoxon_signed_rank({1.0, 2.0}, {1.0}), Catch::Contains("x has 2 values but y has 1"));
  CHECK_THROWS_WITH(wilcoxon_signed_rank(std::vector<double>{}), Catch::Contains("no paired differences"));
  CHECK_THROWS_WITH(wilcoxon_signed_rank({1.0, std::numeric_limits<double>::infinity()}, {0.0, 0.0}),
                    Catch::Contains("x[1] is inf"));
}

TEST_CASE("paired t matches scipy") {
  const auto golden = medfair::test::load_golden("tests.json");
  for (const auto& c : golden["paired_t"]) {
    INFO("case " << c["name"].get<std::string>());
    const auto result = paired_t_test(golden_vector(c["x"]), golden_vector(c["y"]));
    CHECK_CLOSE(result.statistic, golden_number(c["statistic"]), tolerance);
    CHECK_CLOSE(result.p_value, golden_number(c["p_value"]), tolerance);
    CHECK_CLOSE(result.df, golden_number(c["df"]), tolerance);
    CHECK_CLOSE(result.cohen_dz, golden_number(c["cohen_dz"]), tolerance);
  }
}

TEST_CASE("paired t needs two pairs") {
  CHECK_THROWS_WITH(paired_t_test({1.0}, {2.0}), Catch::Contains("1 pair(s) given; the test needs at least 2"));
}

TEST_CASE("holm matches statsmodels") {
  const auto golden = medfair::test::load_golden("tests.json");
  for (const auto& c : golden["holm"]) {
    INFO("case " << c["name"].get<std::string>());
    const auto result = holm_correction(golden_vector(c["p_values"]), c["alpha"].get<double>());
    const auto expected = golden_vector(c["adjusted"]);
    REQUIRE(result.adjusted.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      CHECK_CLOSE(result.adjusted[i], expected[i], tolerance);
      CHECK(result.reject[i] == c["reject"][i].get<bool>());
    }
  }
}

TEST_CASE("holm leaves nan out of the family") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto with_nan = holm_correction({0.01, nan, 0.04});
  const auto without = holm_correction({0.01, 0.04});
  CHECK(std::isnan(with_nan.adjusted[1]));
  CHECK_FALSE(with_nan.reject[1]);
  CHECK(with_nan.adjusted[0] == without.adjusted[0]);
  CHECK(with_nan.adjusted[2] == without.adjusted[1]);
}

TEST_CASE("holm rejects bad arguments") {
  CHECK_THROWS_WITH(holm_correction({0.2, 1.5}), Catch::Contains("p_values[1] is 1.5"));
  CHECK_THROWS_AS(holm_correction({0.2}, 0.0), medfair::ConfigError);
}

TEST_CASE("average ranks share ties") {
  const auto ranks = average_ranks({3, 2, 1, 2, 2, 2, 1});
  const std::vector<double> expected{7, 4.5, 1.5, 4.5, 4.5, 4.5, 1.5};
  CHECK(ranks == expected);
}
