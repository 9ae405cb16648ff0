// GenerationCache on a scratch SQLite file, and generate_cached on SmolLM2.

#include <catch2/catch.hpp>
#include <fstream>

#include "medfair/align/generation_cache.hpp"
#include "medfair/error.hpp"
#include "test_support.hpp"

using medfair::align::CachedGeneration;
using medfair::align::CacheKey;
using medfair::align::GenerationCache;

TEST_CASE("cache store find and reopen") {
  const auto path = medfair::test::scratch_dir("align_cache") / "store.sqlite";
  std::filesystem::remove(path);
  const CacheKey key{"model-a", "<|im_start|>user\nhello", "{\"temperature\":0.7}", 18446744073709551615ULL};
  {
    GenerationCache cache(path);
    CHECK_FALSE(cache.find(key).has_value());
    cache.store(key, CachedGeneration{"hi there", {1, 2, 3}, "eos"});
    CHECK(cache.size() == 1);
  }
  GenerationCache reopened(path);
  auto found = reopened.find(key);
  REQUIRE(found.has_value());
  CHECK(found->text == "hi there");
  CHECK(found->token_ids == std::vector<int64_t>{1, 2, 3});
  CHECK(found->finish_reason == "eos");
  CHECK(reopened.hits() == 1);

  // Each part of the key matters.
  for (CacheKey other : {CacheKey{"model-b", key.prompt, key.settings, key.seed},
                         CacheKey{key.model, key.prompt + " ", key.settings, key.seed},
                         CacheKey{key.model, key.prompt, "{}", key.seed}, CacheKey{key.model, key.prompt, key.settings, 1}}) {
    CHECK_FALSE(reopened.find(other).has_value());
  }
}

TEST_CASE("cache rejects a non-sqlite file") {
  const auto path = medfair::test::scratch_dir("align_cache") / "not_a_cache.sqlite";
  std::ofstream(path) << "this is plain text, not an SQLite database, and it is long enough to have a header";
  CHECK_THROWS_WITH(GenerationCache(path), Catch::Contains("is not a usable generation cache"));
}

TEST_CASE("cache rejects a missing folder") {
  const auto path = medfair::test::scratch_dir("align_cache") / "no_such_folder" / "cache.sqlite";
  CHECK_THROWS_WITH(GenerationCache(path), Catch::Contains("cannot open the generation cache"));
}
