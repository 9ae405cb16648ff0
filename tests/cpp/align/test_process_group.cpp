// process_group_data_parallel's input check. A real gloo group cannot be
// built here because the torch wheel ships no gloo headers, so
// tests/python/test_align_ddp.py trains through torch.distributed's group.
// This file uses REQUIRE only, because c10's logging headers, which the c10d
// headers pull in, define their own CHECK macro.

#include <catch2/catch.hpp>

#include "medfair/align/process_group.hpp"
#include "medfair/error.hpp"

using namespace medfair::align;

TEST_CASE("process_group_data_parallel: null group") {
  REQUIRE_THROWS_AS(process_group_data_parallel(nullptr), medfair::ConfigError);
  REQUIRE_THROWS_WITH(process_group_data_parallel(nullptr), Catch::Contains("the process group is null"));
}
