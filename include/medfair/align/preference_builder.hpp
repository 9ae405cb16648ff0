#pragma once
// medfair::align::PreferenceBuilder: preference pairs for counterfactual
// fairness distillation. Each vignette is rendered with randomly drawn
// protected attributes, a teacher writes a reference answer, the target model
// writes N candidates, and the candidates are ranked by the cosine similarity
// of their sentence embeddings to the reference. The pairs go to a JSON Lines
// file in the prompt/chosen/rejected layout that TRL and
// datasets.load_dataset("json") read.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "medfair/align/generation_cache.hpp"
#include "medfair/align/teacher.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/models/generation.hpp"
#include "medfair/models/sentence_encoder.hpp"
#include "medfair/prompts/modifier.hpp"
#include "medfair/prompts/task.hpp"

namespace medfair::align {

/// Rule that forms a pair from the ranked candidates.
enum class Pairing {
  ranked,     ///< chosen = the candidate most similar to the reference, rejected = the least similar
  reference,  ///< chosen = the teacher's reference, rejected = the least similar candidate
};

/// Prompt form the teacher writes its reference for.
enum class TeacherSees {
  neutral,   ///< the attribute-free form of the vignette, so every variant shares one reference
  modified,  ///< the same prompt, with the drawn attributes, that the target answers
};

/// Layout of prompt, chosen and rejected in the output.
enum class OutputFormat {
  plain,           ///< strings: the prompt rendered with the target's chat template, and the answer texts
  conversational,  ///< message lists: [system, user] prompt, [assistant] chosen and rejected
};

/// Parses "ranked" or "reference". Throws ConfigError.
Pairing parse_pairing(std::string_view name);
/// Parses "neutral" or "modified". Throws ConfigError.
TeacherSees parse_teacher_sees(std::string_view name);
/// Parses "plain" or "conversational". Throws ConfigError.
OutputFormat parse_output_format(std::string_view name);

/// Options of PreferenceBuilder.
struct PreferenceOptions {
  /// Candidates the target writes per prompt; at least 2 (default 2).
  size_t candidates = 2;
  /// Pair formation (default ranked).
  Pairing pairing = Pairing::ranked;
  /// Min similarity margin, chosen minus rejected, for a pair to be kept (default 0).
  double min_margin = 0.0;
  /// Whether pairs whose chosen and rejected texts are equal are dropped (default true).
  bool drop_identical = true;
  /// Whether candidates that do not answer in the task's format (an option
  /// of the first question at the start or after the answer prefix) are left
  /// out before ranking (default false).
  bool drop_off_format = false;
  /// Sampling of the target's candidates (default temperature 0.7, top_p 0.9,
  /// 128 new tokens). Its seed is ignored: candidate j of a prompt uses a seed
  /// derived from `seed`, the prompt id and j.
  SamplingOptions sampling = [] {
    SamplingOptions options;
    options.temperature = 0.7;
    options.top_p = 0.9;
    options.max_new_tokens = 128;
    return options;
  }();
  /// Prompt form the teacher writes its reference for (default neutral).
  TeacherSees teacher_sees = TeacherSees::neutral;
  /// Seed of the attribute draws and of every generation (default 0).
  uint64_t seed = 0;
  /// Prompts drawn per vignette, each with its own attributes (default 1).
  size_t draws_per_vignette = 1;
  /// Output layout (default plain).
  OutputFormat format = OutputFormat::plain;
  /// Vignette ids to use; empty means every vignette of the task.
  std::vector<std::string> vignettes;
  /// Axes, values and prompt format of the attribute draws; its seed and
  /// draws_per_vignette are replaced by the fields above.
  prompts::ModifierOptions prompts;
  /// Attribute catalog; null means the built-in one.
  std::shared_ptr<const prompts::AttributeCatalog> catalog;
  /// Prompts processed per step: their teacher answers and candidates are
  /// generated together and their records appended together (default 8).
  size_t prompts_per_step = 8;
};

/// Called after each step with (prompts done, prompts in all).
using PreferenceProgress = std::function<void(size_t done, size_t total)>;

/// Counts of a finished run.
struct PreferenceResult {
  std::filesystem::path path;
  /// Every record of the file, in prompt order.
  std::vector<nlohmann::ordered_json> records;
  size_t prompts = 0;           ///< prompts considered
  size_t resumed = 0;           ///< records kept from an earlier run
  size_t dropped_identical = 0; ///< prompts whose pair had equal texts
  size_t dropped_margin = 0;    ///< prompts whose margin was below min_margin
  size_t dropped_format = 0;    ///< prompts with fewer than 2 candidates in format
};

class PreferenceBuilder {
 public:
  /// `target`, `teacher` and `encoder` must outlive the builder. `cache` (may
  /// be null) stores the target's candidates. Throws ConfigError for invalid
  /// options.
  PreferenceBuilder(const CausalLM& target, const Teacher& teacher, const SentenceEncoder& encoder,
                    PreferenceOptions options = {}, std::shared_ptr<GenerationCache> cache = nullptr);

  /// Builds the pairs of `task` into `out` (JSON Lines), appending each step's
  /// records with an fsync as they are produced. When `out` exists, records
  /// of prompts still planned are kept and those prompts skipped, and a torn
  /// last line is dropped. Throws ConfigError when `out` contains records
  /// built with other settings.
  PreferenceResult run(const prompts::Task& task, const std::filesystem::path& out,
                       const PreferenceProgress& progress = {}) const;

  /// The prompts run() works through, in order.
  std::vector<prompts::PromptRecord> plan(const prompts::Task& task) const;

  /// SHA-256 of the target's weights.
  const std::string& target_id() const { return target_id_; }
  const PreferenceOptions& options() const { return options_; }

 private:
  using NeutralPrompts = std::unordered_map<std::string, Conversation>;
  struct PromptOutputs;

  nlohmann::ordered_json settings_json(const prompts::Task& task) const;
  // The teacher's reference for each prompt of `todo`; neutral references are
  // asked once per vignette and remembered in `neutral_references`.
  std::vector<std::string> answer_references(const std::vector<const prompts::PromptRecord*>& todo,
                                             const NeutralPrompts& neutral_prompts,
                                             std::unordered_map<std::string, std::string>& neutral_references) const;
  // The record of one prompt, or nullopt (counted in `result`) when a filter drops its pair.
  std::optional<nlohmann::ordered_json> make_record(const PromptOutputs& outputs,
                                                    const std::string& settings_id, PreferenceResult& result) const;

  const CausalLM& target_;
  const Teacher& teacher_;
  const SentenceEncoder& encoder_;
  PreferenceOptions options_;
  std::shared_ptr<GenerationCache> cache_;
  std::string target_id_;
};

/// Whether `text` answers in the format of `stage`: it starts with one of
/// the options' surface forms, or the stage's answer prefix is followed by one.
bool answers_in_format(const std::string& text, const prompts::StagePrompt& stage);

}  // namespace medfair::align
