#pragma once
// Helpers of the text-layer Catch2 tests.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace medfair::test {

inline std::filesystem::path text_golden_dir() {
  return std::filesystem::path(MEDFAIR_SOURCE_DIR) / "tests" / "golden" / "text";
}

inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline nlohmann::json read_json_file(const std::filesystem::path& path) {
  return nlohmann::json::parse(read_text_file(path));
}

}  // namespace medfair::test

// Checks that `expr` throws `type` with a message matching `matcher`. The
// expression runs twice, once per check.
#define MEDFAIR_CHECK_THROWS(expr, type, matcher) \
  do {                                            \
    CHECK_THROWS_AS(expr, type);                  \
    CHECK_THROWS_WITH(expr, matcher);             \
  } while (false)
