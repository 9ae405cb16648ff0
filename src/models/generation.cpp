// Batched generation over CausalLM::forward and its KV cache. The logits
// processors follow transformers' generation/logits_process.py in its order:
// repetition penalty, temperature, top-k, top-p, then one draw.

#include "medfair/models/generation.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "medfair/error.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair {

namespace {

// Per-row decoding state.
struct RowState {
  size_t index = 0;             // position in the caller's prompt list
  std::mt19937_64 generator;    // std::mt19937_64 is specified bit for bit by the C++ standard
  std::vector<int64_t> seen;    // sorted ids of the prompt and generated tokens, for the repetition penalty
  Generation output;
  bool finished = false;
};

void check_options(const SamplingOptions& options) {
  if (options.max_new_tokens < 1) {
    throw ConfigError(fmt::format("SamplingOptions.max_new_tokens must be at least 1, got {}", options.max_new_tokens));
  }
  if (!(options.temperature >= 0.0) || !std::isfinite(options.temperature)) {
    throw ConfigError(fmt::format("SamplingOptions.temperature must be 0 (greedy) or positive, got {}",
                                  options.temperature));
  }
  if (!(options.top_p > 0.0 && options.top_p <= 1.0)) {
    throw ConfigError(fmt::format("SamplingOptions.top_p must be in (0, 1], got {}", options.top_p));
  }
  if (options.top_k < 0) {
    throw ConfigError(fmt::format("SamplingOptions.top_k must be 0 (off) or positive, got {}", options.top_k));
  }
  if (!(options.repetition_penalty > 0.0) || !std::isfinite(options.repetition_penalty)) {
    throw ConfigError(fmt::format("SamplingOptions.repetition_penalty must be positive, got {}",
                                  options.repetition_penalty));
  }
  if (options.batch_size < 1) {
    throw ConfigError(fmt::format("SamplingOptions.batch_size must be at least 1, got {}", options.batch_size));
  }
  for (const std::string& stop : options.stop) {
    if (stop.empty()) throw ConfigError("SamplingOptions.stop contains an empty string; remove it");
  }
}

// A uniform double in [0, 1) from the top 53 bits of one draw.
double uniform(std::mt19937_64& generator) { return static_cast<double>(generator() >> 11) * 0x1.0p-53; }

void apply_repetition_penalty(at::Tensor& logits, const std::vector<int64_t>& seen, double penalty) {
  at::Tensor ids = at::tensor(seen, at::kLong);
  at::Tensor values = logits.index_select(0, ids);
  values = at::where(values > 0, values / penalty, values * penalty);
  logits.index_copy_(0, ids, values);
}

}  // namespace

namespace detail {

int64_t choose_token(at::Tensor logits, const std::vector<int64_t>& seen, const SamplingOptions& options,
                     std::mt19937_64& generator) {
  if (options.repetition_penalty != 1.0 && !seen.empty()) {
    logits = logits.clone();
    apply_repetition_penalty(logits, seen, options.repetition_penalty);
  }
  if (options.temperature == 0.0) return logits.argmax().item<int64_t>();

  // Candidates in descending order of probability when top-k or top-p needs
  // the order; otherwise the whole vocabulary in id order.
  at::Tensor scaled = logits.to(at::kDouble) / options.temperature;
  at::Tensor probabilities;
  at::Tensor ids;
  const int64_t vocab = scaled.size(0);
  if (options.top_k > 0 && options.top_k < vocab) {
    at::Tensor values;
    std::tie(values, ids) = scaled.topk(options.top_k);
    probabilities = at::softmax(values, 0);
  } else if (options.top_p < 1.0) {
    // The nucleus usually lies within the few hundred most likely tokens, so
    // a partial top-k finds it without sorting the vocabulary. A flat
    // distribution whose top tokens hold less than top_p falls back to a full sort.
    at::Tensor full = at::softmax(scaled, 0);
    std::tie(probabilities, ids) = full.topk(std::min<int64_t>(vocab, 256));
    if (probabilities.sum().item<double>() < options.top_p) {
      std::tie(probabilities, ids) = full.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true);
    }
  } else {
    probabilities = at::softmax(scaled, 0);
  }
  probabilities = probabilities.contiguous();
  const double* p = probabilities.data_ptr<double>();
  int64_t kept = probabilities.size(0);
  if (options.top_p < 1.0) {
    // Keep token i while the mass before it is below top_p, so the smallest
    // prefix that reaches top_p survives (at least one token).
    double before = 0.0;
    for (int64_t i = 0; i < kept; ++i) {
      if (i > 0 && before >= options.top_p) {
        kept = i;
        break;
      }
      before += p[i];
    }
  }
  double total = 0.0;
  for (int64_t i = 0; i < kept; ++i) total += p[i];
  const double target = uniform(generator) * total;
  double cumulative = 0.0;
  int64_t chosen = kept - 1;
  for (int64_t i = 0; i < kept; ++i) {
    cumulative += p[i];
    if (cumulative > target) {
      chosen = i;
      break;
    }
  }
  return ids.defined() ? ids[chosen].item<int64_t>() : chosen;
}

}  // namespace detail

namespace {

std::string decode_new_tokens(const text::Tokenizer& tokenizer, const std::vector<int64_t>& ids) {
  std::vector<int32_t> narrow(ids.begin(), ids.end());
  return tokenizer.decode(narrow, /*skip_special=*/true);
}

// Position of the earliest stop string in `text`, or npos.
size_t find_stop(const std::string& text, const std::vector<std::string>& stops) {
  size_t first = std::string::npos;
  for (const std::string& stop : stops) first = std::min(first, text.find(stop));
  return first;
}

// Appends `token` to a row and decides whether the row is done.
void advance_row(RowState& row, int64_t token, const std::vector<int64_t>& eos_ids, const SamplingOptions& options,
                 const text::Tokenizer& tokenizer) {
  row.output.token_ids.push_back(token);
  if (options.repetition_penalty != 1.0) {
    auto at = std::lower_bound(row.seen.begin(), row.seen.end(), token);
    if (at == row.seen.end() || *at != token) row.seen.insert(at, token);
  }
  if (options.stop_at_eos && std::find(eos_ids.begin(), eos_ids.end(), token) != eos_ids.end()) {
    row.output.finish_reason = FinishReason::eos;
    row.finished = true;
    return;
  }
  if (!options.stop.empty()) {
    std::string text = decode_new_tokens(tokenizer, row.output.token_ids);
    size_t stop = find_stop(text, options.stop);
    if (stop != std::string::npos) {
      row.output.text = text.substr(0, stop);
      row.output.finish_reason = FinishReason::stop;
      row.finished = true;
      return;
    }
  }
  if (static_cast<int64_t>(row.output.token_ids.size()) >= options.max_new_tokens) {
    row.output.finish_reason = FinishReason::length;
    row.finished = true;
  }
}

// Prompt tokens per group in the prompt pass (rows times the group's longest
// prompt). A group has at least one row, however long its prompt.
constexpr int64_t kPrefillGroupTokens = 256;

// Decodes one batch of rows until every row has finished.
void decode_batch(const CausalLM& model, const std::vector<std::vector<int64_t>>& prompts, std::vector<RowState*> rows,
                  const SamplingOptions& options, const std::vector<int64_t>& eos_ids) {
  const text::Tokenizer& tokenizer = model.tokenizer();
  const int64_t batch = static_cast<int64_t>(rows.size());
  std::vector<int64_t> lengths(rows.size());
  for (size_t b = 0; b < rows.size(); ++b) lengths[b] = static_cast<int64_t>(prompts[rows[b]->index].size());
  const int64_t width = *std::max_element(lengths.begin(), lengths.end());

  // Left padding: the real tokens of every row end at the same column, so the
  // next token of every row goes in the same place. Padding positions are
  // masked out and never attended to.
  at::Tensor mask = at::zeros({batch, width}, at::kBool);
  for (int64_t b = 0; b < batch; ++b) mask[b].narrow(0, width - lengths[b], lengths[b]).fill_(true);

  // The prompt pass runs on small groups of rows of similar length, so less
  // compute goes to padding and each group's activations fit the CPU caches.
  // Each group's keys and values go into the batch cache, which is allocated
  // once at its final length.
  const int64_t final_length = width + options.max_new_tokens;
  auto allocate = [&](const at::Tensor& like) {
    return at::empty({batch, like.size(1), final_length, like.size(3)}, like.options()).narrow(2, 0, width);
  };
  KVCache cache;
  std::vector<at::Tensor> first_logits;
  for (int64_t first = 0; first < batch;) {
    int64_t end = first + 1;
    int64_t group_width = lengths[first];
    while (end < batch && std::max(group_width, lengths[end]) * (end - first + 1) <= kPrefillGroupTokens) {
      group_width = std::max(group_width, lengths[end]);
      ++end;
    }
    const int64_t group = end - first;
    at::Tensor input = at::zeros({group, group_width}, at::kLong);
    at::Tensor group_mask = at::zeros({group, group_width}, at::kLong);
    for (int64_t g = 0; g < group; ++g) {
      const std::vector<int64_t>& ids = prompts[rows[first + g]->index];
      const int64_t offset = group_width - lengths[first + g];
      input[g].narrow(0, offset, lengths[first + g]).copy_(at::tensor(ids, at::kLong));
      group_mask[g].narrow(0, offset, lengths[first + g]).fill_(1);
    }
    KVCache part;
    first_logits.push_back(model.forward(input, group_mask, &part, /*last_position_only=*/true).logits.select(1, 0));
    for (size_t layer = 0; layer < part.keys.size(); ++layer) {
      if (cache.keys.size() <= layer) {
        cache.keys.push_back(allocate(part.keys[layer]));
        cache.values.push_back(allocate(part.values[layer]));
      }
      // Padding keys and values are masked out, but they must be finite,
      // because attention multiplies them by zero weights.
      for (auto [batch_tensor, part_tensor] : {std::pair{cache.keys[layer], part.keys[layer]},
                                               std::pair{cache.values[layer], part.values[layer]}}) {
        at::Tensor rows_of_group = batch_tensor.narrow(0, first, group);
        rows_of_group.narrow(2, 0, width - group_width).zero_();
        rows_of_group.narrow(2, width - group_width, group_width).copy_(part_tensor);
      }
    }
    first = end;
  }
  cache.mask = mask;
  cache.next_position = at::tensor(lengths, at::kLong);
  cache.capacity = final_length;
  at::Tensor logits = at::cat(first_logits, 0);  // [B, V]
  while (true) {
    std::vector<int64_t> next(rows.size());
    for (size_t b = 0; b < rows.size(); ++b) {
      next[b] = detail::choose_token(logits[static_cast<int64_t>(b)], rows[b]->seen, options, rows[b]->generator);
      advance_row(*rows[b], next[b], eos_ids, options, tokenizer);
    }

    // Drop finished rows from the batch and its cache.
    std::vector<int64_t> keep;
    for (size_t b = 0; b < rows.size(); ++b) {
      if (!rows[b]->finished) keep.push_back(static_cast<int64_t>(b));
    }
    if (keep.empty()) break;
    if (keep.size() != rows.size()) {
      cache = cache.select_rows(at::tensor(keep, at::kLong));
      cache.reserve(final_length);
      std::vector<RowState*> remaining;
      std::vector<int64_t> remaining_next;
      for (int64_t b : keep) {
        remaining.push_back(rows[b]);
        remaining_next.push_back(next[b]);
      }
      rows = std::move(remaining);
      next = std::move(remaining_next);
    }
    at::Tensor step = at::tensor(next, at::kLong).unsqueeze(1);  // [b, 1]
    logits = model.forward(step, at::ones_like(step), &cache, /*last_position_only=*/true).logits.select(1, 0);
  }
}

}  // namespace

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::eos:
      return "eos";
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
  }
  return "length";
}

uint64_t row_seed(uint64_t seed, uint64_t row) {
  // SplitMix64's finaliser (Vigna's public-domain splitmix64.c) over the seed
  // advanced by one golden-ratio step per row.
  uint64_t z = seed + (row + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<int64_t> end_of_sequence_ids(const CausalLM& model) {
  // NOTE: this mirrors the list CausalLM::generate_greedy stops at, except
  // the eos_token_id of a Hugging Face folder's generation_config.json, which
  // CausalLM keeps private. The models medfair ships and tests name the same
  // token in their tokenizer.
  const text::Tokenizer& tokenizer = model.tokenizer();
  std::vector<int64_t> ids;
  if (auto eos = tokenizer.eos_id()) ids.push_back(*eos);
  for (const char* token : {"<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>", "</s>"}) {
    std::optional<int32_t> id = tokenizer.token_to_id(token);
    if (id && std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  }
  return ids;
}

std::vector<Generation> generate(const CausalLM& model, const std::vector<std::vector<int64_t>>& prompt_ids,
                                 const SamplingOptions& options) {
  std::vector<uint64_t> seeds(prompt_ids.size());
  for (size_t i = 0; i < seeds.size(); ++i) seeds[i] = row_seed(options.seed, i);
  return generate(model, prompt_ids, options, seeds);
}

std::vector<Generation> generate(const CausalLM& model, const std::vector<std::vector<int64_t>>& prompt_ids,
                                 const SamplingOptions& options, const std::vector<uint64_t>& seeds) {
  check_options(options);
  if (seeds.size() != prompt_ids.size()) {
    throw ConfigError(fmt::format("generate: {} seeds given for {} prompts; pass one seed per prompt", seeds.size(),
                                  prompt_ids.size()));
  }
  const int64_t context = model.config().max_position_embeddings;
  const int64_t vocab = model.config().vocab_size;
  for (size_t i = 0; i < prompt_ids.size(); ++i) {
    const std::vector<int64_t>& ids = prompt_ids[i];
    if (ids.empty()) throw ConfigError(fmt::format("generate: prompt {} has no tokens", i));
    for (int64_t id : ids) {
      if (id < 0 || id >= vocab) {
        throw ConfigError(fmt::format("generate: prompt {} contains token id {} outside the vocabulary [0, {})", i, id,
                                      vocab));
      }
    }
    const int64_t needed = static_cast<int64_t>(ids.size()) + options.max_new_tokens;
    if (needed > context) {
      throw ConfigError(fmt::format("generate: prompt {} has {} tokens, and with max_new_tokens = {} it exceeds the "
                                    "model's context of {} tokens; shorten the prompt or lower max_new_tokens",
                                    i, ids.size(), options.max_new_tokens, context));
    }
  }

  c10::InferenceMode guard;
  const std::vector<int64_t> eos_ids = end_of_sequence_ids(model);
  std::vector<RowState> states(prompt_ids.size());
  for (size_t i = 0; i < states.size(); ++i) {
    states[i].index = i;
    states[i].generator.seed(seeds[i]);
    if (options.repetition_penalty != 1.0) {
      states[i].seen = prompt_ids[i];
      std::sort(states[i].seen.begin(), states[i].seen.end());
      states[i].seen.erase(std::unique(states[i].seen.begin(), states[i].seen.end()), states[i].seen.end());
    }
  }

  // Batches of similar prompt lengths waste less compute on padding.
  std::vector<size_t> order(prompt_ids.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return prompt_ids[a].size() < prompt_ids[b].size(); });
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(options.batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(options.batch_size));
    std::vector<RowState*> rows;
    for (size_t k = start; k < end; ++k) rows.push_back(&states[order[k]]);
    decode_batch(model, prompt_ids, rows, options, eos_ids);
  }

  std::vector<Generation> outputs;
  outputs.reserve(states.size());
  const text::Tokenizer& tokenizer = model.tokenizer();
  for (RowState& state : states) {
    if (state.output.finish_reason != FinishReason::stop) {
      state.output.text = decode_new_tokens(tokenizer, state.output.token_ids);
    }
    outputs.push_back(std::move(state.output));
  }
  return outputs;
}

}  // namespace medfair
