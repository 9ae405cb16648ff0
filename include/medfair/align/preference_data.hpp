#pragma once
// Preference pairs for training: reading the JSONL file, tokenizing a pair the
// way TRL's CPOTrainer does (trl 1.16, experimental/cpo/cpo_trainer.py), and
// batching the pairs for one forward pass.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "medfair/align/losses.hpp"
#include "medfair/models/causal_lm.hpp"

namespace medfair::align {

/// A preference pair as text, after the chat template: the model reads
/// prompt + chosen and prompt + rejected.
struct PreferencePair {
  std::string prompt;
  std::string chosen;
  std::string rejected;
  std::size_t line = 0;  ///< 1-based line in the source file; 0 when built in memory
};

/// Turns one record into text. `prompt`, `chosen` and `rejected` are strings,
/// which are used as they are, or lists of {role, content} messages. A message
/// list prompt is rendered with the model's chat template (with the generation
/// prompt when its last turn is the user's), and each response is the text the
/// template adds after that prompt when the response's messages follow it; a
/// string response to a message-list prompt counts as one assistant message.
/// This is TRL's maybe_apply_chat_template. Throws DataError naming `where`
/// and the field when a field is missing or of another type.
PreferencePair render_preference(const nlohmann::json& record, const CausalLM& model, const std::string& where);

/// Reads a preference JSONL file (one record per line, see render_preference;
/// other fields are ignored). Throws IOError, FormatError (invalid JSON) or
/// DataError naming the file and line; a file without records is a DataError.
std::vector<PreferencePair> read_preference_file(const std::filesystem::path& path, const CausalLM& model);

/// Length limits on prompt + response, in tokens.
struct TruncationOptions {
  /// Maximum tokens of prompt + response; the response is cut to fit. Default 1024 (TRL's).
  int64_t max_length = 1024;
  /// When positive and a pair is too long, the prompt is first cut to its last
  /// max_prompt_length tokens (older TRL's keep_end mode). 0 (default) never
  /// cuts the prompt, as trl 1.16's CPOTrainer.
  int64_t max_prompt_length = 0;
};

/// A tokenized pair: token ids of prompt + response for each side.
struct TokenizedPair {
  std::vector<int64_t> chosen_ids;
  std::vector<int64_t> rejected_ids;
  int64_t chosen_prompt_length = 0;    ///< leading tokens of chosen_ids that belong to the prompt
  int64_t rejected_prompt_length = 0;  ///< the same for rejected_ids
  bool prompt_truncated = false;
  bool response_truncated = false;  ///< the chosen or the rejected response was cut
  bool empty_response = false;      ///< a response has no tokens left after truncation
};

/// Counts of what truncation did to a data set.
struct TruncationCounts {
  int64_t pairs = 0;
  int64_t prompts_truncated = 0;
  int64_t responses_truncated = 0;
  int64_t empty_responses = 0;  ///< pairs left with an empty response, which training skips
};

/// Tokenizes a pair as TRL's CPOTrainer.tokenize_row: the response's tokens
/// are those of tokenize(prompt + response) after the prompt's tokens (one
/// fewer prompt token when the tokenizer merges across the boundary), BOS is
/// prepended unless the prompt starts with it, EOS appended unless the
/// response ends with it, then the limits of `options` apply. No special
/// tokens are added by the tokenizer itself; special tokens in the text are
/// recognised. Throws DataError when the chosen and rejected prompts tokenize
/// differently beyond the boundary token, as TRL does.
TokenizedPair tokenize_pair(const CausalLM& model, const PreferencePair& pair, const TruncationOptions& options);

/// A batch of pairs for one forward pass: the chosen sequences in rows [0, B),
/// the rejected ones in rows [B, 2B), right-padded.
struct PreferenceBatch {
  at::Tensor input_ids;       ///< [2B, T] int64, padded with the pad token
  at::Tensor attention_mask;  ///< [2B, T] int64, 1 for real tokens
  at::Tensor labels;          ///< [2B, T] int64, kIgnoreIndex on prompt and padding
  int64_t pairs = 0;          ///< B
  int64_t tokens = 0;         ///< real tokens in the batch
};

/// Pads and stacks pairs. `pad_id` fills input_ids past each sequence's end.
/// Throws ConfigError for an empty list.
PreferenceBatch collate_pairs(const std::vector<const TokenizedPair*>& pairs, int64_t pad_id);

/// The pad token id training uses: the tokenizer's pad token, else EOS (TRL's
/// fallback), else 0.
int64_t pad_token_id(const CausalLM& model);

/// Log-probabilities of the batch's labelled tokens under `model`, rows as in
/// the batch. Only labelled positions are projected onto the vocabulary, which
/// gives the same numbers as TRL's full-logits path with less work. Records
/// autograd history unless called under a no-grad guard.
SequenceLogProbs batch_log_probs(const CausalLM& model, const PreferenceBatch& batch);

}  // namespace medfair::align
