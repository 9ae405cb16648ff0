#pragma once
// An on-disk cache of generated texts in SQLite, keyed by model identity,
// rendered prompt, sampling settings and seed, so an interrupted preference
// run resumes without regenerating and a rerun with the same settings
// generates nothing.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "medfair/models/causal_lm.hpp"
#include "medfair/models/generation.hpp"

struct sqlite3;

namespace medfair::align {

/// One generated text as the cache stores it.
struct CachedGeneration {
  std::string text;
  /// Token ids of a local model; empty for endpoint and file teachers.
  std::vector<int64_t> token_ids;
  /// "eos", "stop", "length", or the endpoint's finish_reason.
  std::string finish_reason;
};

/// The key of one generation. `model` identifies the weights or endpoint (a
/// SHA-256 or "model@url", never an API key), `prompt` is the exact rendered
/// prompt and `settings` the canonical JSON of the sampling settings without
/// the seed.
struct CacheKey {
  std::string model;
  std::string prompt;
  std::string settings;
  uint64_t seed = 0;
};

/// A SQLite file of generations. Each store() commits at once (WAL journal),
/// so a killed process loses at most the generation in progress. Thread-safe.
class GenerationCache {
 public:
  /// Opens or creates the cache file. Throws IOError naming the path when
  /// SQLite cannot open it, and FormatError when it is not a medfair cache.
  explicit GenerationCache(const std::filesystem::path& path);
  ~GenerationCache();
  GenerationCache(const GenerationCache&) = delete;
  GenerationCache& operator=(const GenerationCache&) = delete;

  std::optional<CachedGeneration> find(const CacheKey& key) const;
  /// Inserts or replaces one entry. Throws IOError when the write fails.
  void store(const CacheKey& key, const CachedGeneration& value);
  /// Number of entries.
  size_t size() const;
  /// Lookups answered from the cache since it was opened.
  size_t hits() const;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  mutable std::mutex mutex_;
  mutable size_t hits_ = 0;
};

/// Canonical JSON of the settings that change a generation's output
/// (everything but the seed and the batch size).
std::string sampling_settings_json(const SamplingOptions& options);

/// Generates one answer per conversation with a local model, through the cache
/// when one is given: conversations are rendered with the model's chat
/// template, the entries found are reused, and the rest are generated in
/// batches and stored as they finish. `seeds` has one entry per conversation;
/// `model_id` names the weights in the cache key (see eval::sha256_file).
std::vector<CachedGeneration> generate_cached(const CausalLM& model, const std::string& model_id,
                                              const std::vector<Conversation>& conversations,
                                              const SamplingOptions& options, const std::vector<uint64_t>& seeds,
                                              GenerationCache* cache);

}  // namespace medfair::align
