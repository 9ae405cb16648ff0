#pragma once
// Option scoring: the probability a model gives each answer option of a
// prompt, read from its own next-token distribution by teacher forcing.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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
};

/// Scores answer options with a local CausalLM.
class OptionScorer {
 public:
  explicit OptionScorer(const CausalLM& model, ScorerOptions options = {});

  /// Scores one counterfactual set: the same stage of prompts that differ only
  /// in their demographic attributes. Returns one StageScores per stage, in order.
  std::vector<StageScores> score_set(const std::vector<const prompts::StagePrompt*>& stages) const;

  /// The prompt text the model continues, chat template and answer prefix
  /// included.
  std::string prompt_text(const prompts::StagePrompt& stage) const;

  const ScorerOptions& options() const { return options_; }

 private:
  const CausalLM& model_;
  ScorerOptions options_;
};

}  // namespace medfair::eval
