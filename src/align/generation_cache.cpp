#include "medfair/align/generation_cache.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>

#include "medfair/error.hpp"

namespace medfair::align {

namespace {

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS generations ("
    " model TEXT NOT NULL, prompt TEXT NOT NULL, settings TEXT NOT NULL, seed TEXT NOT NULL,"
    " text TEXT NOT NULL, token_ids TEXT NOT NULL, finish_reason TEXT NOT NULL,"
    " PRIMARY KEY (model, prompt, settings, seed))";

// A prepared statement that finalises itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql, const std::filesystem::path& path) {
    if (sqlite3_prepare_v2(db, sql, -1, &statement_, nullptr) != SQLITE_OK) {
      throw IOError(fmt::format("generation cache {}: cannot prepare a query: {}", path.string(), sqlite3_errmsg(db)));
    }
  }
  ~Statement() { sqlite3_finalize(statement_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int index, const std::string& value) {
    sqlite3_bind_text(statement_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  sqlite3_stmt* get() { return statement_; }

  std::string column(int index) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_, index));
    return text ? std::string(text, static_cast<size_t>(sqlite3_column_bytes(statement_, index))) : std::string();
  }

 private:
  sqlite3_stmt* statement_ = nullptr;
};

void bind_key(Statement& statement, const CacheKey& key) {
  statement.bind(1, key.model);
  statement.bind(2, key.prompt);
  statement.bind(3, key.settings);
  // The seed is stored as decimal text, because SQLite integers are signed 64-bit.
  statement.bind(4, std::to_string(key.seed));
}

}  // namespace

GenerationCache::GenerationCache(const std::filesystem::path& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw IOError(fmt::format("cannot open the generation cache {}: {}; check the folder exists and is writable",
                              path.string(), message));
  }
  sqlite3_busy_timeout(db_, 10000);
  char* error = nullptr;
  // WAL with synchronous=NORMAL keeps every committed entry when the process
  // is killed; only a power loss can drop the last commits.
  const std::string setup = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; ") + kSchema;
  if (sqlite3_exec(db_, setup.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    sqlite3_close(db_);
    db_ = nullptr;
    throw FormatError(fmt::format("{} is not a usable generation cache ({}); delete it or pass another cache path",
                                  path.string(), message));
  }
}

GenerationCache::~GenerationCache() { sqlite3_close(db_); }

std::optional<CachedGeneration> GenerationCache::find(const CacheKey& key) const {
  std::lock_guard lock(mutex_);
  Statement statement(db_,
                      "SELECT text, token_ids, finish_reason FROM generations "
                      "WHERE model = ?1 AND prompt = ?2 AND settings = ?3 AND seed = ?4",
                      path_);
  bind_key(statement, key);
  if (sqlite3_step(statement.get()) != SQLITE_ROW) return std::nullopt;
  CachedGeneration found;
  found.text = statement.column(0);
  nlohmann::json ids = nlohmann::json::parse(statement.column(1), nullptr, /*allow_exceptions=*/false);
  if (ids.is_array()) {
    for (const auto& id : ids) {
      if (id.is_number_integer()) found.token_ids.push_back(id.get<int64_t>());
    }
  }
  found.finish_reason = statement.column(2);
  ++hits_;
  return found;
}

void GenerationCache::store(const CacheKey& key, const CachedGeneration& value) {
  std::lock_guard lock(mutex_);
  Statement statement(db_,
                      "INSERT OR REPLACE INTO generations (model, prompt, settings, seed, text, token_ids, "
                      "finish_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      path_);
  bind_key(statement, key);
  statement.bind(5, value.text);
  statement.bind(6, nlohmann::json(value.token_ids).dump());
  statement.bind(7, value.finish_reason);
  if (sqlite3_step(statement.get()) != SQLITE_DONE) {
    throw IOError(fmt::format("cannot write to the generation cache {}: {}", path_.string(), sqlite3_errmsg(db_)));
  }
}

size_t GenerationCache::size() const {
  std::lock_guard lock(mutex_);
  Statement statement(db_, "SELECT COUNT(*) FROM generations", path_);
  if (sqlite3_step(statement.get()) != SQLITE_ROW) return 0;
  return static_cast<size_t>(sqlite3_column_int64(statement.get(), 0));
}

size_t GenerationCache::hits() const {
  std::lock_guard lock(mutex_);
  return hits_;
}

std::string sampling_settings_json(const SamplingOptions& options) {
  nlohmann::ordered_json settings = {
      {"max_new_tokens", options.max_new_tokens},
      {"temperature", options.temperature},
      {"top_p", options.top_p},
      {"top_k", options.top_k},
      {"repetition_penalty", options.repetition_penalty},
      {"stop", options.stop},
      {"stop_at_eos", options.stop_at_eos},
  };
  return settings.dump();
}

std::vector<CachedGeneration> generate_cached(const CausalLM& model, const std::string& model_id,
                                              const std::vector<Conversation>& conversations,
                                              const SamplingOptions& options, const std::vector<uint64_t>& seeds,
                                              GenerationCache* cache) {
  if (seeds.size() != conversations.size()) {
    throw ConfigError(fmt::format("generate_cached: {} seeds given for {} conversations; pass one seed per "
                                  "conversation",
                                  seeds.size(), conversations.size()));
  }
  const std::string settings = sampling_settings_json(options);
  std::vector<CachedGeneration> results(conversations.size());
  std::vector<CacheKey> keys(conversations.size());
  std::vector<size_t> missing;
  for (size_t i = 0; i < conversations.size(); ++i) {
    keys[i] = CacheKey{model_id, model.apply_chat_template(conversations[i], true), settings, seeds[i]};
    std::optional<CachedGeneration> found = cache ? cache->find(keys[i]) : std::nullopt;
    if (found) {
      results[i] = std::move(*found);
    } else {
      missing.push_back(i);
    }
  }

  // Generate the rest one batch at a time, storing each batch before the
  // next starts, so an interrupted call keeps what it finished.
  const size_t batch = static_cast<size_t>(std::max<int64_t>(1, options.batch_size));
  for (size_t start = 0; start < missing.size(); start += batch) {
    const size_t end = std::min(missing.size(), start + batch);
    std::vector<std::vector<int64_t>> prompt_ids;
    std::vector<uint64_t> batch_seeds;
    for (size_t k = start; k < end; ++k) {
      prompt_ids.push_back(model.encode_prompt(keys[missing[k]].prompt));
      batch_seeds.push_back(seeds[missing[k]]);
    }
    std::vector<Generation> generated = generate(model, prompt_ids, options, batch_seeds);
    for (size_t k = start; k < end; ++k) {
      Generation& output = generated[k - start];
      CachedGeneration value{std::move(output.text), std::move(output.token_ids),
                             std::string(finish_reason_name(output.finish_reason))};
      if (cache) cache->store(keys[missing[k]], value);
      results[missing[k]] = std::move(value);
    }
  }
  return results;
}

}  // namespace medfair::align
