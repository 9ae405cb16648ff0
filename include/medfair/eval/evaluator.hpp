#pragma once
// medfair::FairnessEvaluator: the counterfactual audit. It renders every
// counterfactual prompt of a task, scores each answer option with the model,
// writes one result record per prompt and stage as it goes (so an interrupted
// run resumes), and summarises the records with the stats layer.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "medfair/eval/option_scorer.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/prompts/modifier.hpp"
#include "medfair/prompts/task.hpp"

namespace medfair::eval {

/// Options of FairnessEvaluator.
struct AuditOptions {
  /// Prompt rendering: format, axes, grid mode, seed and few-shot count.
  prompts::ModifierOptions prompts;
  /// Attribute catalog of the prompts; null means the built-in catalog.
  std::shared_ptr<const prompts::AttributeCatalog> catalog;
  /// Batching and prefix reuse of the option scorer.
  ScorerOptions scorer;
  /// Vignette ids to audit; empty means every vignette of the task.
  std::vector<std::string> vignettes;
  /// Vignette-bootstrap replicates of every interval (default 2000).
  size_t bootstrap_replicates = 2000;
  /// Confidence level of the intervals (default 0.95).
  double confidence = 0.95;
  /// Seed of the bootstrap (default 0).
  uint64_t bootstrap_seed = 0;
  /// Reference label per axis for the discrimination-score model; empty
  /// means the first label in sorted order.
  std::vector<std::string> reference_group;
};

/// Called after each counterfactual set with (prompts done, prompts in all).
using ProgressCallback = std::function<void(size_t done, size_t total)>;

/// A finished audit: the run folder's files, already parsed.
struct AuditResult {
  std::filesystem::path results_path;  ///< results.jsonl
  std::filesystem::path summary_path;  ///< summary.json
  std::vector<nlohmann::json> records; ///< one per prompt and stage, in prompt order
  nlohmann::json summary;              ///< the content of summary.json
  size_t resumed_records = 0;          ///< records found complete from an earlier run
};

class FairnessEvaluator {
 public:
  /// Scores with `model` through an OptionScorer built from options.scorer.
  /// The model must outlive the evaluator.
  FairnessEvaluator(const CausalLM& model, AuditOptions options = {});
  /// Scores with any SetScorer: a remote endpoint's log-probabilities or
  /// sampled answers. options.scorer is not used.
  FairnessEvaluator(std::shared_ptr<const SetScorer> scorer, AuditOptions options = {});

  /// Audits `task` into `out_dir`, writing results.jsonl set by set and
  /// summary.json at the end. Records already in results.jsonl for the same
  /// settings are kept and their sets skipped; a torn last line is dropped.
  /// Throws ConfigError when results.jsonl was written with other settings.
  AuditResult run(const prompts::Task& task, const std::filesystem::path& out_dir,
                  const ProgressCallback& progress = {}) const;

  /// Scores prompts in memory without writing files: one record per prompt and
  /// stage, in the results.jsonl schema.
  std::vector<nlohmann::json> score(const std::vector<prompts::PromptRecord>& prompts,
                                    const ProgressCallback& progress = {}) const;

  /// Summarises records (results.jsonl lines) into the summary.json
  /// "questions" object: one FairnessReport per stage.
  nlohmann::json summarize(const std::vector<nlohmann::json>& records, const std::vector<std::string>& axes) const;

  const AuditOptions& options() const { return options_; }

 private:
  std::shared_ptr<const SetScorer> scorer_;
  AuditOptions options_;
};

/// Reads results.jsonl records, dropping a torn or unparsable last line with a
/// warning. Throws FormatError naming the line for damage anywhere else.
std::vector<nlohmann::json> read_results(const std::filesystem::path& path);

/// Hex SHA-256 of a file's bytes, for provenance in summary.json.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace medfair::eval
