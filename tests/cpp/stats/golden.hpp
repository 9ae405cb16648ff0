#pragma once
// Reads the golden vectors that tests/golden/stats/make_golden.py writes with
// scipy, statsmodels and numpy, and compares numbers with a relative tolerance.

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace medfair::test {

inline nlohmann::json load_golden(const std::string& name) {
  std::ifstream in(std::string(MEDFAIR_SOURCE_DIR) + "/tests/golden/stats/" + name);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

// Golden numbers, where non-finite values are the strings "nan", "inf", "-inf".
inline double golden_number(const nlohmann::json& value) {
  if (value.is_string()) {
    const auto text = value.get<std::string>();
    if (text == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (text == "inf") return std::numeric_limits<double>::infinity();
    if (text == "-inf") return -std::numeric_limits<double>::infinity();
    FAIL("unexpected golden string " << text);
  }
  return value.get<double>();
}

inline std::vector<double> golden_vector(const nlohmann::json& value) {
  std::vector<double> out;
  for (const auto& v : value) out.push_back(golden_number(v));
  return out;
}

inline std::vector<std::vector<double>> golden_table(const nlohmann::json& value) {
  std::vector<std::vector<double>> out;
  for (const auto& row : value) out.push_back(golden_vector(row));
  return out;
}

// True when both are NaN, equal infinities, or within `relative` of each
// other (absolute 1e-300 near zero).
inline bool close(double actual, double expected, double relative) {
  if (std::isnan(expected)) return std::isnan(actual);
  if (std::isinf(expected)) return actual == expected;
  return std::abs(actual - expected) <= relative * std::abs(expected) + 1e-300;
}

}  // namespace medfair::test

#define CHECK_CLOSE(actual, expected, relative)                                                         \
  do {                                                                                                  \
    const double check_actual_ = (actual);                                                              \
    const double check_expected_ = (expected);                                                          \
    INFO(#actual " = " << check_actual_ << ", expected " << check_expected_);                           \
    CHECK(medfair::test::close(check_actual_, check_expected_, relative));                              \
  } while (false)
