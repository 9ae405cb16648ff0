#include <catch2/catch.hpp>

#include <string>

#include "golden.hpp"
#include "medfair/error.hpp"
#include "medfair/stats/mixed_model.hpp"

using medfair::test::golden_number;
using medfair::test::golden_table;
using medfair::test::golden_vector;
using namespace medfair::stats;

TEST_CASE("mixed model matches statsmodels") {
  const auto golden = medfair::test::load_golden("mixedlm.json");
  for (const auto& c : golden["cases"]) {
    INFO("case " << c["name"].get<std::string>());
    std::vector<std::size_t> cluster;
    for (const auto& id : c["cluster"]) cluster.push_back(id.get<std::size_t>());
    MixedModelOptions options;
    options.reml = c["reml"].get<bool>();
    const auto fit = fit_random_intercept(golden_vector(c["y"]), golden_table(c["x"]), cluster, options);
    const auto coefficients = golden_vector(c["coefficients"]);
    const auto errors = golden_vector(c["standard_errors"]);
    const auto p_values = golden_vector(c["p_values"]);
    REQUIRE(fit.coefficients.size() == coefficients.size());
    for (std::size_t j = 0; j < coefficients.size(); ++j) {
      INFO("coefficient " << j);
      // statsmodels stops its quasi-Newton search at gradient norm ~1e-5, so
      // agreement is limited by its convergence, not by this fit.
      CHECK_CLOSE(fit.coefficients[j], coefficients[j], 1e-4);
      CHECK_CLOSE(fit.standard_errors[j], errors[j], 1e-4);
      // A relative error e in z moves the p-value by about z^2 e relative.
      const double z = fit.z_values[j];
      CHECK_CLOSE(fit.p_values[j], p_values[j], 1e-4 * std::max(1.0, z * z));
    }
    CHECK_CLOSE(fit.group_variance, golden_number(c["group_variance"]), 1e-3);
    CHECK_CLOSE(fit.residual_variance, golden_number(c["residual_variance"]), 1e-4);
    CHECK_CLOSE(fit.log_likelihood, golden_number(c["log_likelihood"]), 1e-6);
    // Brent's method finds the exact optimum, so the likelihood is never below statsmodels'.
    CHECK(fit.log_likelihood >= golden_number(c["log_likelihood"]) - 1e-9);
  }
}

TEST_CASE("mixed model rejects bad input") {
  const std::vector<std::vector<double>> design{{1, 0}, {1, 1}, {1, 0}, {1, 1}};
  CHECK_THROWS_WITH(fit_random_intercept({1, 2, 3}, design, {0, 0, 1, 1}),
                    Catch::Contains("y has 3 rows, design has 4 and cluster has 4"));
  CHECK_THROWS_WITH(fit_random_intercept({1, 2, 3, 4}, {{1, 1}, {1, 1}, {1, 1}, {1, 1}}, {0, 0, 1, 1}),
                    Catch::Contains("the design has rank 1 but 2 columns"));
  CHECK_THROWS_WITH(fit_random_intercept({1, 2, std::nan(""), 4}, design, {0, 0, 1, 1}), Catch::Contains("y[2] is nan"));
}

TEST_CASE("mixed model rejects unidentifiable fits") {
  const std::vector<std::vector<double>> design{{1, 0}, {1, 1}, {1, 0}, {1, 1}};
  CHECK_THROWS_WITH(fit_random_intercept({1, 2, 3, 4}, design, {0, 1, 2, 3}),
                    Catch::Contains("each of the 4 clusters has one observation"));
  CHECK_THROWS_WITH(fit_random_intercept({1, 2, 1, 2}, design, {0, 0, 1, 1}),
                    Catch::Contains("the residual variance is 0"));
}

TEST_CASE("mixed model without cluster effect") {
  // Residual sums per cluster are 0, so the REML variance ratio is 0.
  const std::vector<double> y{1, 2.2, 1.2, 2, 1.1, 2.1};
  const std::vector<std::vector<double>> design{{1, 0}, {1, 1}, {1, 0}, {1, 1}, {1, 0}, {1, 1}};
  const auto fit = fit_random_intercept(y, design, {0, 0, 1, 1, 2, 2});
  CHECK(fit.on_boundary);
  CHECK(fit.group_variance == 0.0);
  CHECK(fit.coefficients[1] == Approx(1.0));
}
