#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "medfair/error.hpp"
#include "medfair/log.hpp"

using medfair::log::Level;

TEST_CASE("log sink receives enabled levels only") {
  std::vector<std::string> seen;
  auto previous = medfair::log::set_sink([&](Level level, std::string_view where, std::string_view message) {
    seen.push_back(std::string(medfair::log::level_name(level)) + "|" + std::string(where) + "|" + std::string(message));
  });
  medfair::log::set_level(Level::info);
  medfair::log::debug("test", "hidden");
  medfair::log::info("test", "shown");
  medfair::log::warning("loader", "fallback used");
  medfair::log::set_level(Level::warning);
  medfair::log::set_sink(previous);

  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == "info|test|shown");
  CHECK(seen[1] == "warning|loader|fallback used");
}

TEST_CASE("warning_once drops repeats of a key") {
  int count = 0;
  auto previous = medfair::log::set_sink([&](Level, std::string_view, std::string_view) { ++count; });
  for (int i = 0; i < 5; ++i) medfair::log::warning_once("unique-key-for-test", "test", "repeated");
  medfair::log::warning_once("other-key-for-test", "test", "another");
  medfair::log::set_sink(previous);
  CHECK(count == 2);
}

TEST_CASE("error subclasses are caught as medfair::Error") {
  try {
    throw medfair::FormatError("bad magic");
  } catch (const medfair::Error& error) {
    CHECK(std::string(error.what()) == "bad magic");
  }
}
