#pragma once
// Teachers write the reference answers that the preference builder ranks the
// target's candidates against: a local CausalLM (the target itself for
// self-distillation), an OpenAI-compatible chat endpoint, or a JSONL file of
// references computed elsewhere.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "medfair/align/generation_cache.hpp"
#include "medfair/chat.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/models/generation.hpp"
#include "medfair/net/openai.hpp"

namespace medfair::align {

/// One prompt for a teacher.
struct TeacherRequest {
  /// Vignette the prompt was rendered from; file teachers look references up by it.
  std::string vignette_id;
  /// The conversation to answer (system and user turns).
  Conversation conversation;
  /// Sampling seed of this answer.
  uint64_t seed = 0;
};

/// Common interface of the teachers. answer() may be called from one thread at a time.
class Teacher {
 public:
  virtual ~Teacher() = default;
  /// "self", "local", "endpoint" or "file".
  virtual std::string kind() const = 0;
  /// Identity of the teacher's model for cache keys and metadata: the SHA-256
  /// of the weights or of the reference file, or "model@base_url" for an
  /// endpoint. Never contains an API key.
  virtual std::string model_id() const = 0;
  /// Returns one reference answer per request, in order.
  virtual std::vector<std::string> answer(const std::vector<TeacherRequest>& requests) const = 0;
};

/// A CausalLM that generates the references with `sampling` (default greedy).
/// With a cache, answers already generated for the same weights, prompt,
/// settings and seed are reused.
class LocalTeacher final : public Teacher {
 public:
  /// `model` must outlive the teacher. `model_id` is eval::sha256_file of the
  /// weights (computed when empty). `is_self` only changes kind() to "self".
  LocalTeacher(const CausalLM& model, SamplingOptions sampling, std::shared_ptr<GenerationCache> cache = nullptr,
               std::string model_id = {}, bool is_self = false);

  std::string kind() const override { return is_self_ ? "self" : "local"; }
  std::string model_id() const override { return model_id_; }
  std::vector<std::string> answer(const std::vector<TeacherRequest>& requests) const override;

 private:
  const CausalLM& model_;
  SamplingOptions sampling_;
  std::shared_ptr<GenerationCache> cache_;
  std::string model_id_;
  bool is_self_ = false;
};

/// A model behind an OpenAI-compatible chat completions endpoint (vLLM,
/// llama.cpp's server, Ollama, hosted services), through
/// net::OpenAIChatClient: timeouts, retries with backoff and jitter, 429
/// Retry-After, a concurrency limit and the API key from an environment
/// variable. max_new_tokens, temperature, top_p, stop and the seed are sent;
/// top_k and repetition_penalty have no field in that API and are rejected.
class EndpointTeacher final : public Teacher {
 public:
  /// Throws ConfigError for an empty model name, invalid HTTP options, or
  /// sampling settings the chat API cannot express.
  EndpointTeacher(net::EndpointOptions endpoint, SamplingOptions sampling,
                  std::shared_ptr<GenerationCache> cache = nullptr);

  std::string kind() const override { return "endpoint"; }
  std::string model_id() const override;
  /// Sends the requests concurrently (up to HttpOptions::max_concurrent_requests).
  /// Throws EndpointError when a request fails after its retries or the
  /// response cannot be parsed.
  std::vector<std::string> answer(const std::vector<TeacherRequest>& requests) const override;

 private:
  net::OpenAIChatClient client_;
  SamplingOptions sampling_;
  std::shared_ptr<GenerationCache> cache_;
};

/// References read from a JSON Lines file, one object per line:
/// {"vignette_id": "...", "reference": "..."} and optionally "prompt", the
/// last user turn the reference answers. A request takes the line whose
/// vignette_id and prompt both match, else the line with its vignette_id and
/// no prompt.
class FileTeacher final : public Teacher {
 public:
  /// Reads the file. Throws IOError when it cannot be read, FormatError naming
  /// the line for invalid JSON, a missing or non-string field, or a repeated
  /// (vignette_id, prompt) pair.
  explicit FileTeacher(const std::filesystem::path& path);

  std::string kind() const override { return "file"; }
  std::string model_id() const override { return sha256_; }
  /// Throws DataError naming the vignette and the file when no line matches.
  std::vector<std::string> answer(const std::vector<TeacherRequest>& requests) const override;

  size_t size() const { return references_.size(); }

 private:
  std::filesystem::path path_;
  std::string sha256_;
  // (vignette_id, prompt) -> reference; prompt is empty for vignette-wide lines.
  std::map<std::pair<std::string, std::string>, std::string> references_;
};

}  // namespace medfair::align
