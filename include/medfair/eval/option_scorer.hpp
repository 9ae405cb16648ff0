#pragma once
// Option scoring: the probability a model gives each answer option of a
// prompt, read from its own next-token distribution by teacher forcing.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "medfair/models/causal_lm.hpp"
#include "medfair/prompts/task.hpp"

namespace medfair::eval {

/// Options of OptionScorer.
struct ScorerOptions {
  /// Rows per forward pass (default 16). Larger batches are faster until
  /// memory runs out; results do not depend on it beyond float rounding.
  int64_t batch_size = 16;
  /// Compute the token prefix shared by a counterfactual set once and reuse
  /// its KV cache for every variant (default true).
  bool reuse_prefix = true;
};

/// Scores of one stage of one prompt.
struct StageScores {
  std::vector<std::string> options;  ///< option ids, in the task's order
  /// log P(option) = log of the summed probability of its surface forms,
  /// each scored as a continuation of the prompt and its answer prefix.
  std::vector<double> log_probs;
  /// P(option) / coverage, so the options sum to 1.
  std::vector<double> probabilities;
  /// Probability mass the options cover before normalising; a low value means
  /// the model would mostly answer something else.
  double coverage = 0;
  size_t predicted = 0;  ///< index of the most probable option
  /// Sampled scoring only: how many sampled answers chose each option, and
  /// how many matched no option. Empty and 0 for log-probability scoring.
  std::vector<size_t> sample_counts;
  size_t parse_failures = 0;
};

/// The KV caches of a counterfactual set's last scored stage. A later stage
/// whose prompt extends that one (the dose question asked after "Answer: Yes")
/// then runs only its new tokens instead of the whole vignette again.
struct StageCarry {
  std::vector<std::vector<int64_t>> tokens;  ///< per variant, the previous stage's prompt tokens
  std::vector<KVCache> chunks;               ///< per batch of ScorerOptions::batch_size variants
};

/// Scores the answer options of counterfactual sets. FairnessEvaluator takes
/// any implementation: OptionScorer (a local model), CompletionsOptionScorer
/// (prompt log-probabilities from a remote endpoint) or SampledOptionScorer
/// (answers sampled from a chat endpoint and counted).
class SetScorer {
 public:
  virtual ~SetScorer() = default;
  /// Scores one stage of a counterfactual set, one StageScores per prompt, in
  /// order. `carry` may be ignored by scorers that cannot reuse work.
  virtual std::vector<StageScores> score_set(const std::vector<const prompts::StagePrompt*>& stages,
                                             StageCarry* carry) const = 0;
  /// Description of the scored model and scoring method, for settings.json,
  /// because a resumed audit must score the same model the same way.
  virtual nlohmann::json describe() const = 0;
};

/// Scores answer options with a local CausalLM.
class OptionScorer : public SetScorer {
 public:
  explicit OptionScorer(const CausalLM& model, ScorerOptions options = {});

  /// Scores one counterfactual set: the same stage of prompts that differ only
  /// in their demographic attributes. Returns one StageScores per stage, in order.
  /// With `carry`, a stage whose every prompt extends the carried tokens
  /// continues from the carried caches, and the caches of this stage are left
  /// in `carry` for the next one.
  std::vector<StageScores> score_set(const std::vector<const prompts::StagePrompt*>& stages,
                                     StageCarry* carry = nullptr) const override;
  /// The model file, its SHA-256 and dtype.
  nlohmann::json describe() const override;

  /// The prompt text the model continues, chat template and answer prefix
  /// included.
  std::string prompt_text(const prompts::StagePrompt& stage) const;

  const ScorerOptions& options() const { return options_; }

 private:
  const CausalLM& model_;
  ScorerOptions options_;
};

}  // namespace medfair::eval
