// Teacher-forced option scoring with shared-prefix KV-cache reuse.
//
// For a counterfactual set, every variant's prompt is tokenized and the
// longest common token prefix is run once. Its cache is expanded to the
// variants, whose remaining tokens run as one right-padded batch. The logits
// at each row's last real token give the first token of every option. Options
// longer than one token continue from a copy of their variant's cache.

#include "medfair/eval/option_scorer.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "medfair/error.hpp"
#include "medfair/eval/evaluator.hpp"
#include "medfair/text/tokenizer.hpp"
#include "internal.hpp"

namespace medfair::eval {

namespace {

// One surface form of one option, as token ids.
struct Form {
  size_t option = 0;
  std::vector<int64_t> tokens;
};

std::vector<Form> tokenize_forms(const text::Tokenizer& tokenizer, const std::vector<prompts::AnswerOption>& options) {
  std::vector<Form> forms;
  for (size_t o = 0; o < options.size(); ++o) {
    std::vector<std::vector<int64_t>> seen;
    for (const std::string& surface : options[o].surface_forms) {
      std::vector<int32_t> ids = tokenizer.encode(surface, /*add_special=*/false, /*parse_special=*/false);
      std::vector<int64_t> tokens(ids.begin(), ids.end());
      // Two spellings can tokenize alike; counting them twice would double
      // their probability.
      if (tokens.empty() || std::find(seen.begin(), seen.end(), tokens) != seen.end()) continue;
      seen.push_back(tokens);
      forms.push_back(Form{o, std::move(tokens)});
    }
    if (seen.empty()) {
      throw DataError(fmt::format("answer option \"{}\" has no surface form that tokenizes to at least one token",
                                  options[o].id));
    }
  }
  return forms;
}

size_t common_prefix_length(const std::vector<std::vector<int64_t>>& rows) {
  size_t length = rows.front().size();
  for (const auto& row : rows) {
    size_t i = 0;
    while (i < length && i < row.size() && row[i] == rows.front()[i]) ++i;
    length = i;
  }
  return length;
}

// Right-pads rows into input ids and a mask, both [B, T].
std::pair<at::Tensor, at::Tensor> pad_right(const std::vector<std::vector<int64_t>>& rows, int64_t pad_id) {
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.size());
  at::Tensor ids = at::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(width)}, pad_id, at::kLong);
  at::Tensor mask = at::zeros_like(ids);
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].empty()) continue;
    ids[r].narrow(0, 0, rows[r].size()).copy_(at::tensor(rows[r], at::kLong));
    mask[r].narrow(0, 0, rows[r].size()).fill_(1);
  }
  return {ids, mask};
}

}  // namespace

OptionScorer::OptionScorer(const CausalLM& model, ScorerOptions options) : model_(model), options_(options) {
  if (options_.batch_size < 1) {
    throw ConfigError(fmt::format("ScorerOptions.batch_size must be at least 1, got {}", options_.batch_size));
  }
}

namespace {

// Hex SHA-256 over the adapter's scaling settings and its tensors' names and
// float32 bytes, in name order, so a resumed audit notices a different
// adapter on the same base.
std::string adapter_sha256(const CausalLM& model) {
  detail::Sha256 hash;
  const LoraOptions& lora = model.lora_options();
  hash.update(fmt::format("r={} alpha={} rslora={}", lora.r, lora.alpha, lora.use_rslora));
  for (const auto& [name, tensor] : model.adapter_state_dict()) {
    at::Tensor values = tensor.detach().to(at::kFloat).contiguous();
    hash.update(name);
    hash.update(values.data_ptr(), static_cast<size_t>(values.nbytes()));
  }
  return hash.hex_digest();
}

}  // namespace

nlohmann::json OptionScorer::describe() const {
  nlohmann::json description = {{"model", model_.source().string()},
                                {"model_sha256", sha256_file(model_.source())},
                                {"model_dtype", model_.dtype()}};
  if (model_.has_lora() && model_.adapters_enabled()) description["adapter_sha256"] = adapter_sha256(model_);
  return description;
}

std::string OptionScorer::prompt_text(const prompts::StagePrompt& stage) const {
  return model_.apply_chat_template(stage.conversation, /*add_generation_prompt=*/true) + stage.answer_prefix;
}

std::vector<StageScores> OptionScorer::score_set(const std::vector<const prompts::StagePrompt*>& stages,
                                                 StageCarry* carry) const {
  if (stages.empty()) return {};
  const prompts::StagePrompt& first = *stages.front();
  for (const prompts::StagePrompt* stage : stages) {
    if (stage->options.size() != first.options.size()) {
      throw DataError(fmt::format("the prompts of one counterfactual set offer different options ({} and {}) for "
                                  "stage \"{}\"",
                                  first.options.size(), stage->options.size(), first.stage));
    }
  }
  c10::InferenceMode guard;
  const text::Tokenizer& tokenizer = model_.tokenizer();
  const int64_t pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  const std::vector<Form> forms = tokenize_forms(tokenizer, first.options);
  const size_t n_options = first.options.size();

  std::vector<std::vector<int64_t>> prompts;
  for (const prompts::StagePrompt* stage : stages) prompts.push_back(model_.encode_prompt(prompt_text(*stage)));

  const size_t batch = static_cast<size_t>(options_.batch_size);
  const size_t n_chunks = (prompts.size() + batch - 1) / batch;

  // A stage that extends the carried one continues from its caches.
  bool continues = carry != nullptr && options_.reuse_prefix && carry->tokens.size() == prompts.size() &&
                   carry->chunks.size() == n_chunks;
  for (size_t v = 0; continues && v < prompts.size(); ++v) {
    const auto& before = carry->tokens[v];
    continues = before.size() < prompts[v].size() && std::equal(before.begin(), before.end(), prompts[v].begin());
  }

  // Every variant keeps at least one token of its own after the shared prefix,
  // so the batch pass below produces each row's next-token logits.
  size_t shared = 0;
  if (!continues && options_.reuse_prefix && prompts.size() > 1) {
    size_t shortest = prompts.front().size();
    for (const auto& p : prompts) shortest = std::min(shortest, p.size());
    shared = std::min(common_prefix_length(prompts), shortest - 1);
  }

  std::vector<std::vector<double>> form_log_probs(prompts.size(), std::vector<double>(forms.size(), 0.0));
  KVCache prefix_cache;
  if (shared > 0) {
    std::vector<int64_t> prefix(prompts.front().begin(), prompts.front().begin() + static_cast<long>(shared));
    model_.forward(at::tensor(prefix, at::kLong).unsqueeze(0), {}, &prefix_cache);
  }

  std::vector<KVCache> next_chunks;
  for (size_t begin = 0; begin < prompts.size(); begin += batch) {
    const size_t end = std::min(prompts.size(), begin + batch);
    const auto rows = static_cast<int64_t>(end - begin);

    // Variant pass: the tokens after the shared prefix (or after the carried
    // stage), right-padded.
    std::vector<std::vector<int64_t>> suffixes;
    for (size_t v = begin; v < end; ++v) {
      const size_t skip = continues ? carry->tokens[v].size() : shared;
      suffixes.emplace_back(prompts[v].begin() + static_cast<long>(skip), prompts[v].end());
    }
    auto [ids, mask] = pad_right(suffixes, pad_id);
    KVCache cache = continues ? std::move(carry->chunks[begin / batch])
                              : (shared > 0 ? prefix_cache.expand(rows) : KVCache{});
    at::Tensor next_logits = model_.forward(ids, mask, &cache, /*last_position_only=*/true).logits;  // [R, 1, V]
    at::Tensor next_log_probs = at::log_softmax(next_logits.squeeze(1).to(at::kDouble), -1);          // [R, V]

    // First token of every form, from the variant pass.
    for (int64_t r = 0; r < rows; ++r) {
      for (size_t f = 0; f < forms.size(); ++f) {
        form_log_probs[begin + r][f] = next_log_probs[r][forms[f].tokens.front()].item<double>();
      }
    }

    // Later tokens of multi-token forms, each continuing its variant's cache.
    std::vector<std::pair<int64_t, size_t>> long_rows;  // (row in this chunk, form)
    for (int64_t r = 0; r < rows; ++r) {
      for (size_t f = 0; f < forms.size(); ++f) {
        if (forms[f].tokens.size() > 1) long_rows.emplace_back(r, f);
      }
    }
    for (size_t lb = 0; lb < long_rows.size(); lb += batch) {
      const size_t le = std::min(long_rows.size(), lb + batch);
      std::vector<int64_t> source_rows;
      std::vector<std::vector<int64_t>> inputs;
      for (size_t i = lb; i < le; ++i) {
        source_rows.push_back(long_rows[i].first);
        const std::vector<int64_t>& tokens = forms[long_rows[i].second].tokens;
        inputs.emplace_back(tokens.begin(), tokens.end() - 1);  // feed all but the last token
      }
      KVCache branch = cache.select_rows(at::tensor(source_rows, at::kLong));
      auto [form_ids, form_mask] = pad_right(inputs, pad_id);
      at::Tensor log_probs = at::log_softmax(model_.forward(form_ids, form_mask, &branch).logits.to(at::kDouble), -1);
      for (size_t i = lb; i < le; ++i) {
        const auto [r, f] = long_rows[i];
        const std::vector<int64_t>& tokens = forms[f].tokens;
        double total = 0;
        for (size_t t = 1; t < tokens.size(); ++t) {
          total += log_probs[static_cast<int64_t>(i - lb)][static_cast<int64_t>(t - 1)][tokens[t]].item<double>();
        }
        form_log_probs[begin + r][f] += total;
      }
    }
    if (carry != nullptr) next_chunks.push_back(std::move(cache));
  }
  if (carry != nullptr) {
    carry->tokens = prompts;
    carry->chunks = std::move(next_chunks);
  }

  // Options: sum their forms' probabilities, then normalise over the options.
  std::vector<StageScores> scores;
  for (size_t v = 0; v < prompts.size(); ++v) {
    StageScores s;
    std::vector<std::vector<double>> per_option(n_options);
    for (size_t f = 0; f < forms.size(); ++f) per_option[forms[f].option].push_back(form_log_probs[v][f]);
    for (size_t o = 0; o < n_options; ++o) {
      s.options.push_back(first.options[o].id);
      s.log_probs.push_back(detail::log_sum_exp(per_option[o]));
    }
    const double log_coverage = detail::log_sum_exp(s.log_probs);
    s.coverage = std::exp(log_coverage);
    for (double lp : s.log_probs) s.probabilities.push_back(std::exp(lp - log_coverage));
    s.predicted = static_cast<size_t>(
        std::max_element(s.probabilities.begin(), s.probabilities.end()) - s.probabilities.begin());
    scores.push_back(std::move(s));
  }
  return scores;
}

}  // namespace medfair::eval
