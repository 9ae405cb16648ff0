#pragma once
// Batched text generation with CausalLM: greedy decoding and sampling with
// temperature, top-k, top-p and a repetition penalty, stop strings and
// end-of-sequence tokens. Rows are left-padded into one batch, decoded through
// the KV cache, and dropped from the batch as they finish. Every row draws
// from its own seeded generator, so its output does not depend on the other
// rows of the batch.

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "medfair/models/causal_lm.hpp"

namespace medfair {

/// Settings of generate().
struct SamplingOptions {
  /// Max tokens generated per row (default 256).
  int64_t max_new_tokens = 256;
  /// Softmax temperature (default 0: greedy decoding, which ignores top_k,
  /// top_p and the seed).
  double temperature = 0.0;
  /// Nucleus sampling: keep the smallest set of most likely tokens whose
  /// probabilities sum to at least top_p (default 1: off).
  double top_p = 1.0;
  /// Keep only the top_k most likely tokens (default 0: off).
  int64_t top_k = 0;
  /// Divides positive logits and multiplies negative ones of every token
  /// already in the row (prompt included), as transformers'
  /// RepetitionPenaltyLogitsProcessor does (default 1: off).
  double repetition_penalty = 1.0;
  /// Generation of a row stops when its text contains one of these strings;
  /// the text is cut before it (default none).
  std::vector<std::string> stop;
  /// Whether a row stops at an end-of-sequence or end-of-turn token (default true).
  bool stop_at_eos = true;
  /// Seed of the sampling generators (default 0). Row i of a call draws from
  /// its own generator seeded with row_seed(seed, i), unless generate() gets
  /// explicit per-row seeds.
  uint64_t seed = 0;
  /// Max rows decoded together in one forward pass (default 16).
  int64_t batch_size = 16;
};

/// Reason a row stopped.
enum class FinishReason {
  eos,     ///< it produced an end-of-sequence or end-of-turn token
  stop,    ///< its text reached a stop string
  length,  ///< it reached max_new_tokens
};

/// "eos", "stop" or "length".
std::string_view finish_reason_name(FinishReason reason);

/// The output of one row.
struct Generation {
  /// The new tokens, including the end-of-sequence token when the row ended
  /// with one and the token that completed a stop string.
  std::vector<int64_t> token_ids;
  /// The decoded new tokens without special tokens, cut before the first stop string.
  std::string text;
  FinishReason finish_reason = FinishReason::length;
};

/// The seed of row `row` under the call seed `seed` (SplitMix64 mixing of both).
uint64_t row_seed(uint64_t seed, uint64_t row);

/// Tokens that end generation: the tokenizer's EOS token and the end-of-turn
/// tokens of the common chat formats that the vocabulary has (<|im_end|>,
/// <|eot_id|>, <end_of_turn>, <|endoftext|>, </s>).
std::vector<int64_t> end_of_sequence_ids(const CausalLM& model);

/// Generates a continuation of each prompt (token ids, usually from
/// CausalLM::encode_prompt of a chat-templated conversation). Returns one
/// Generation per prompt, in input order. Throws ConfigError for an empty
/// prompt, an out-of-range option or a prompt that leaves no room in the
/// model's context.
std::vector<Generation> generate(const CausalLM& model, const std::vector<std::vector<int64_t>>& prompt_ids,
                                 const SamplingOptions& options);

/// Same as above with an explicit seed per prompt (`seeds` has one entry per
/// prompt), so a prompt gives the same output whatever batch it is in.
std::vector<Generation> generate(const CausalLM& model, const std::vector<std::vector<int64_t>>& prompt_ids,
                                 const SamplingOptions& options, const std::vector<uint64_t>& seeds);

namespace detail {

/// Chooses the next token from one row's logits [V] (float32): applies the
/// repetition penalty over `seen` (sorted unique ids), then greedy argmax or
/// one draw from `generator` after temperature, top-k and top-p.
int64_t choose_token(at::Tensor logits, const std::vector<int64_t>& seen, const SamplingOptions& options,
                     std::mt19937_64& generator);

}  // namespace detail

}  // namespace medfair
