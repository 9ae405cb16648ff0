#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "medfair/error.hpp"
#include "medfair/stats/fairness.hpp"

using namespace medfair::stats;

namespace {

// Two axes (race A/B, gender F/M), options Yes/No, P(Yes) given per cell.
AuditRecord record(const std::string& vignette, const std::string& race, const std::string& gender, double p_yes,
                   std::optional<std::size_t> reference = 0) {
  AuditRecord r;
  r.vignette_id = vignette;
  r.group = {race, gender};
  r.probabilities = {p_yes, 1.0 - p_yes};
  r.predicted = p_yes >= 0.5 ? 0 : 1;
  r.reference = reference;
  return r;
}

std::vector<AuditRecord> small_table() {
  return {
      record("v1", "A", "F", 0.9), record("v1", "A", "M", 0.8), record("v1", "B", "F", 0.7), record("v1", "B", "M", 0.6),
      record("v2", "A", "F", 0.4), record("v2", "A", "M", 0.6), record("v2", "B", "F", 0.3), record("v2", "B", "M", 0.2),
      record("v3", "A", "F", 0.5), record("v3", "A", "M", 0.5), record("v3", "B", "F", 0.5), record("v3", "B", "M", 0.85),
      record("v4", "A", "F", 0.1), record("v4", "A", "M", 0.2), record("v4", "B", "F", 0.3), record("v4", "B", "M", 0.35),
  };
}

FairnessOptions small_options() {
  FairnessOptions options;
  options.axes = {"race", "gender"};
  options.options = {"Yes", "No"};
  options.bootstrap.replicates = 300;
  return options;
}

const LevelResult& level(const FairnessReport& report, const std::string& name) {
  for (const auto& l : report.levels) {
    if (l.name == name) return l;
  }
  FAIL("no level " << name);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("fairness group means and gap") {
  const auto report = assess_fairness(small_table(), small_options());
  REQUIRE(report.levels.size() == 3);
  const auto& inter = level(report, "intersectional");
  REQUIRE(inter.groups.size() == 4);
  CHECK(inter.groups[0].name == "A x F");
  CHECK(inter.groups[0].mean[0] == Approx((0.9 + 0.4 + 0.5 + 0.1) / 4));
  CHECK(inter.groups[3].mean[0] == Approx((0.6 + 0.2 + 0.85 + 0.35) / 4));
  // Means: A x F 0.475, A x M 0.525, B x F 0.45, B x M 0.5.
  CHECK(inter.option_gaps[0].value == Approx(0.075));
  CHECK(inter.option_gaps[0].group_high == "A x M");
  CHECK(inter.option_gaps[0].group_low == "B x F");
  CHECK(inter.option_gaps[0].ratio == Approx(0.45 / 0.525));
  CHECK(inter.overall_mean[0] == Approx((0.475 + 0.525 + 0.45 + 0.5) / 4));

  const auto& race = level(report, "race");
  REQUIRE(race.groups.size() == 2);
  CHECK(race.groups[0].mean[0] == Approx((0.85 + 0.5 + 0.5 + 0.15) / 4));
}

TEST_CASE("fairness vignette gaps and flips") {
  const auto report = assess_fairness(small_table(), small_options());
  const auto& inter = level(report, "intersectional");
  REQUIRE(inter.vignette_gaps.size() == 4);
  CHECK(inter.vignette_gaps[0].gap == Approx(0.3));
  CHECK(inter.vignette_gaps[1].gap == Approx(0.4));
  CHECK(inter.vignette_gaps[2].gap == Approx(0.35));
  CHECK(inter.vignette_gaps[3].gap == Approx(0.25));
  // v1 all Yes; v2 has Yes (0.6) and No; v3 all Yes (0.5 counts as Yes); v4 all No.
  CHECK(inter.flips == 1);
  // Race level: v3 gives A (0.5, 0.5) and B (0.5, 0.85), so its race gap is 0.175.
  CHECK(level(report, "race").vignette_gaps[2].gap == Approx(0.175));
}

TEST_CASE("fairness tests match direct calls") {
  const auto report = assess_fairness(small_table(), small_options());
  const auto& inter = level(report, "intersectional");
  const BlockTable table{{0.9, 0.8, 0.7, 0.6}, {0.4, 0.6, 0.3, 0.2}, {0.5, 0.5, 0.5, 0.85}, {0.1, 0.2, 0.3, 0.35}};
  REQUIRE(inter.friedman);
  CHECK(inter.friedman->statistic == Approx(friedman_test(table).statistic));
  REQUIRE(inter.cochran_q);
  const BlockTable outcomes{{1, 1, 1, 1}, {0, 1, 0, 0}, {1, 1, 1, 1}, {0, 0, 0, 0}};
  CHECK(std::isnan(inter.cochran_q->statistic) == std::isnan(cochran_q(outcomes).statistic));
  REQUIRE(inter.pairwise.size() == 6);
  const auto& first = inter.pairwise[0];
  CHECK(first.group_a == "A x F");
  CHECK(first.group_b == "A x M");
  const auto direct = paired_t_test({0.9, 0.4, 0.5, 0.1}, {0.8, 0.6, 0.5, 0.2});
  REQUIRE(first.paired_t);
  CHECK(first.paired_t->statistic == Approx(direct.statistic));
  std::vector<double> p;
  for (const auto& c : inter.pairwise) p.push_back(c.wilcoxon.p_value);
  const auto holm = holm_correction(p);
  for (std::size_t i = 0; i < p.size(); ++i) CHECK(inter.pairwise[i].wilcoxon_p_holm == holm.adjusted[i]);
  // Race has 2 groups: no Friedman test.
  CHECK_FALSE(level(report, "race").friedman);
}

TEST_CASE("fairness accuracy per group") {
  auto rows = small_table();
  for (auto& r : rows) r.reference = r.vignette_id == "v4" ? std::nullopt : std::optional<std::size_t>(0);
  const auto report = assess_fairness(rows, small_options());
  const auto& inter = level(report, "intersectional");
  // A x F: v1 Yes (right), v2 No (wrong), v3 Yes (right): 2/3.
  CHECK(inter.groups[0].accuracy == Approx(2.0 / 3.0));
  CHECK(inter.groups[0].accuracy_vignettes == 3);
  CHECK(inter.groups[1].accuracy == Approx(1.0));
  CHECK(inter.accuracy_gap.value == Approx(1.0 - 2.0 / 3.0));
}

TEST_CASE("fairness bootstrap matches cluster bootstrap") {
  const auto options = small_options();
  const auto report = assess_fairness(small_table(), options);
  const std::vector<double> a_f{0.9, 0.4, 0.5, 0.1};
  const auto direct = cluster_bootstrap(
      4,
      [&](const std::vector<std::size_t>& indices) {
        double sum = 0;
        for (auto i : indices) sum += a_f[i];
        return sum / 4.0;
      },
      options.bootstrap);
  const auto& ci = level(report, "intersectional").groups[0].mean_ci[0];
  CHECK(ci.low == Approx(direct.low).epsilon(1e-12));
  CHECK(ci.high == Approx(direct.high).epsilon(1e-12));
}

TEST_CASE("fairness empty group policy") {
  auto options = small_options();
  options.expected_levels = {{"A", "B", "C"}, {"F", "M"}};
  const auto report = assess_fairness(small_table(), options);
  const auto& inter = level(report, "intersectional");
  REQUIRE(inter.groups.size() == 6);
  CHECK(inter.empty_groups == std::vector<std::string>{"C x F", "C x M"});
  CHECK(inter.groups[4].n_vignettes == 0);
  CHECK(std::isnan(inter.groups[4].mean[0]));
  CHECK(inter.option_gaps[0].value == Approx(0.075));
  CHECK(inter.n_complete_vignettes == 4);
  REQUIRE(inter.friedman);
  CHECK(inter.friedman->n_groups == 4);
  CHECK(inter.pairwise.size() == 6);
  const auto json = to_json(report);
  CHECK(json["levels"]["intersectional"]["by_group"]["C x F"]["p/Yes/mean"].is_null());
  CHECK(json["levels"]["intersectional"]["by_group"]["C x F"]["n_rows"] == 0);
  CHECK(json["levels"]["race"]["empty_groups"] == nlohmann::json::array({"C"}));
}

TEST_CASE("fairness missing variant policy") {
  auto rows = small_table();
  rows.erase(rows.begin() + 5);  // v2, A x M
  const auto report = assess_fairness(rows, small_options());
  const auto& inter = level(report, "intersectional");
  CHECK(inter.n_vignettes == 4);
  CHECK(inter.n_complete_vignettes == 3);
  CHECK(inter.vignette_gaps.size() == 3);
  CHECK(inter.groups[1].n_vignettes == 3);
  CHECK(inter.groups[1].mean[0] == Approx((0.8 + 0.5 + 0.2) / 3));
  CHECK(inter.friedman->n_blocks == 3);
  // The gender level still has every vignette complete, since v2 keeps a female and a male variant.
  CHECK(level(report, "gender").n_complete_vignettes == 4);
}

TEST_CASE("fairness repeated prompts average in cell") {
  auto rows = small_table();
  rows.push_back(record("v1", "A", "F", 0.5));  // second paraphrase of v1, A x F
  const auto report = assess_fairness(rows, small_options());
  const auto& inter = level(report, "intersectional");
  CHECK(inter.groups[0].n_rows == 5);
  CHECK(inter.groups[0].n_vignettes == 4);
  CHECK(inter.groups[0].mean[0] == Approx((0.7 + 0.4 + 0.5 + 0.1) / 4));
  // Cochran's Q needs one row per cell.
  CHECK_FALSE(inter.cochran_q);
}

TEST_CASE("fairness mixed model matches direct fit") {
  const auto report = assess_fairness(small_table(), small_options());
  const auto& race = level(report, "race");
  REQUIRE(race.discrimination);
  CHECK(race.discrimination->reference_group == "A");
  REQUIRE(race.discrimination->terms.size() == 2);
  CHECK(race.discrimination->terms[1].group == "B");
  std::vector<double> y;
  std::vector<std::vector<double>> design;
  std::vector<std::size_t> cluster;
  for (const auto& r : small_table()) {
    const double p = r.probabilities[0];
    y.push_back(std::log(p / (1 - p)));
    design.push_back({1.0, r.group[0] == "B" ? 1.0 : 0.0});
    cluster.push_back(static_cast<std::size_t>(r.vignette_id[1] - '0'));
  }
  const auto direct = fit_random_intercept(y, design, cluster);
  CHECK(race.discrimination->terms[1].coefficient == Approx(direct.coefficients[1]));
  CHECK(race.discrimination->terms[1].standard_error == Approx(direct.standard_errors[1]));
}

TEST_CASE("fairness reference group option") {
  auto options = small_options();
  options.reference_group = {"B", "M"};
  const auto report = assess_fairness(small_table(), options);
  CHECK(level(report, "intersectional").discrimination->reference_group == "B x M");
  CHECK(level(report, "gender").discrimination->reference_group == "M");
  options.reference_group = {"Z", "M"};
  CHECK_THROWS_WITH(assess_fairness(small_table(), options), Catch::Contains("reference group 'Z x M' is not a group"));
}

TEST_CASE("fairness notes unfitted model") {
  // Every probability clipped to the same logit: the model has no residual variance.
  auto rows = small_table();
  for (auto& r : rows) r.probabilities = {1.0, 0.0};
  const auto report = assess_fairness(rows, small_options());
  const auto& inter = level(report, "intersectional");
  CHECK_FALSE(inter.discrimination);
  CHECK_THAT(inter.discrimination_note, Catch::Contains("residual variance is 0"));
  CHECK(to_json(report)["levels"]["intersectional"]["discrimination"].is_null());
}

TEST_CASE("fairness json schema keys") {
  const auto json = to_json(assess_fairness(small_table(), small_options()));
  CHECK(json["schema_version"] == 1);
  CHECK(json["target_option"] == "Yes");
  const auto& metrics = json["levels"]["intersectional"]["metrics"];
  for (const char* key : {"p/Yes/max_gap/value", "p/Yes/max_gap/ci_low", "p/Yes/max_gap/ci_high",
                          "p/Yes/max_gap/group_high", "p/Yes/max_gap/group_low", "p/Yes/ratio/between_groups",
                          "p/Yes/difference/to_overall", "p/Yes/ratio/to_overall", "p/No/max_gap/value", "gap/mean",
                          "gap/mean/ci_low", "gap/median", "gap/q90", "gap/q95", "gap/max", "gap/max/vignette",
                          "flip_rate", "accuracy/max_gap/value", "friedman/statistic", "friedman/p_value",
                          "friedman/kendall_w", "cochran_q/statistic", "cochran_q/p_value"}) {
    INFO(key);
    CHECK(metrics.contains(key));
  }
  CHECK(metrics["flip_rate"] == Approx(0.25));
  CHECK(metrics["gap/max/vignette"] == "v2");
  CHECK(json["levels"]["intersectional"]["by_group"]["A x F"].contains("p/Yes/mean/ci_low"));
  CHECK(json["levels"]["race"]["discrimination"]["terms"].contains("B"));
}

TEST_CASE("fairness rejects bad records") {
  auto options = small_options();
  auto rows = small_table();
  rows[2].probabilities = {0.5};
  CHECK_THROWS_WITH(assess_fairness(rows, options), Catch::Contains("row 2 (vignette 'v1') has 1 probabilities for 2 options"));
  rows = small_table();
  rows[3].group = {"B"};
  CHECK_THROWS_WITH(assess_fairness(rows, options), Catch::Contains("row 3 (vignette 'v1') has 1 group labels for 2 axes"));
  rows = small_table();
  rows[0].probabilities = {1.5, -0.5};
  CHECK_THROWS_WITH(assess_fairness(rows, options), Catch::Contains("probability 1.5 for option 'Yes'"));
  options.expected_levels = {{"A"}, {"F", "M"}};
  CHECK_THROWS_WITH(assess_fairness(small_table(), options), Catch::Contains("race label 'B', which expected_levels"));
  CHECK_THROWS_WITH(assess_fairness({}, small_options()), Catch::Contains("no rows"));
  options = small_options();
  options.target_option = 2;
  CHECK_THROWS_AS(assess_fairness(small_table(), options), medfair::ConfigError);
}

TEST_CASE("gap change pairs vignettes") {
  const std::map<std::string, double> before{{"v1", 0.3}, {"v2", 0.4}, {"v3", 0.2}, {"v4", 0.5}};
  const std::map<std::string, double> after{{"v1", 0.1}, {"v2", 0.2}, {"v3", 0.25}, {"v5", 0.0}};
  const auto change = compare_vignette_gaps(before, after);
  CHECK(change.n_vignettes == 3);
  CHECK(change.only_before == 1);
  CHECK(change.only_after == 1);
  CHECK(change.mean_before == Approx(0.3));
  CHECK(change.mean_after == Approx(0.55 / 3));
  const auto direct = wilcoxon_signed_rank({0.1, 0.2, 0.25}, {0.3, 0.4, 0.2});
  CHECK(change.wilcoxon.p_value == direct.p_value);
  REQUIRE(change.paired_t);
  CHECK_THROWS_WITH(compare_vignette_gaps(before, {{"x", 0.1}}), Catch::Contains("no vignette id is in both runs"));
}
