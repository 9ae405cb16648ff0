// Preference records: rendering, tokenizing and batching (see
// preference_data.hpp for the rules and their TRL sources).

#include "medfair/align/preference_data.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>

#include "medfair/error.hpp"
#include "medfair/io/jsonl.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair::align {

namespace {

Conversation parse_messages(const nlohmann::json& value, const std::string& where, const char* field) {
  Conversation messages;
  for (const auto& entry : value) {
    if (!entry.is_object() || !entry.contains("role") || !entry.contains("content") || !entry["role"].is_string() ||
        !entry["content"].is_string()) {
      throw DataError(fmt::format("{}: \"{}\" must be a string or a list of {{\"role\": ..., \"content\": ...}} "
                                  "messages with string values",
                                  where, field));
    }
    messages.push_back(ChatMessage{entry["role"].get<std::string>(), entry["content"].get<std::string>()});
  }
  if (messages.empty()) throw DataError(fmt::format("{}: \"{}\" is an empty message list", where, field));
  return messages;
}

const nlohmann::json& required_field(const nlohmann::json& record, const char* field, const std::string& where) {
  auto it = record.find(field);
  if (it == record.end()) {
    throw DataError(fmt::format("{}: the record has no \"{}\"; preference records need prompt, chosen and rejected",
                                where, field));
  }
  if (!it->is_string() && !it->is_array()) {
    throw DataError(fmt::format("{}: \"{}\" must be a string or a list of messages, found {}", where, field,
                                it->type_name()));
  }
  return *it;
}

std::string common_prefix(const std::string& a, const std::string& b) {
  auto mismatch = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  return std::string(a.begin(), mismatch.first);
}

std::vector<int64_t> encode(const text::Tokenizer& tokenizer, const std::string& text) {
  std::vector<int32_t> ids = tokenizer.encode(text, /*add_special=*/false, /*parse_special=*/true);
  return std::vector<int64_t>(ids.begin(), ids.end());
}

// TRL's build_tokenized_answer: prompt tokens and response tokens such that
// prompt + response equals tokenize(prompt + response).
struct SplitSequence {
  std::vector<int64_t> prompt;
  std::vector<int64_t> response;
};

SplitSequence split_tokens(const text::Tokenizer& tokenizer, const std::string& prompt, const std::string& response,
                           const std::vector<int64_t>& prompt_ids) {
  std::vector<int64_t> full = encode(tokenizer, prompt + response);
  size_t start = std::min(prompt_ids.size(), full.size());
  // A merge across the boundary changes the prompt's last token; that token
  // then goes to the response.
  if (!std::equal(prompt_ids.begin(), prompt_ids.end(), full.begin(), full.begin() + start) ||
      start < prompt_ids.size()) {
    start = start > 0 ? start - 1 : 0;
  }
  SplitSequence out;
  out.prompt.assign(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(start));
  out.response.assign(full.begin() + static_cast<std::ptrdiff_t>(start), full.end());
  return out;
}

}  // namespace

PreferencePair render_preference(const nlohmann::json& record, const CausalLM& model, const std::string& where) {
  if (!record.is_object()) throw DataError(fmt::format("{}: expected a JSON object", where));
  const nlohmann::json& prompt = required_field(record, "prompt", where);
  const nlohmann::json& chosen = required_field(record, "chosen", where);
  const nlohmann::json& rejected = required_field(record, "rejected", where);

  PreferencePair pair;
  if (prompt.is_string()) {
    if (!chosen.is_string() || !rejected.is_string()) {
      throw DataError(fmt::format("{}: \"prompt\" is a string, so \"chosen\" and \"rejected\" must be strings too; "
                                  "give message lists for all three to use the chat template",
                                  where));
    }
    pair.prompt = prompt.get<std::string>();
    pair.chosen = chosen.get<std::string>();
    pair.rejected = rejected.get<std::string>();
    return pair;
  }

  const Conversation prompt_messages = parse_messages(prompt, where, "prompt");
  auto response_messages = [&](const nlohmann::json& value, const char* field) {
    Conversation messages = prompt_messages;
    if (value.is_string()) {
      messages.push_back(ChatMessage{"assistant", value.get<std::string>()});
    } else {
      Conversation response = parse_messages(value, where, field);
      messages.insert(messages.end(), response.begin(), response.end());
    }
    return messages;
  };
  const bool generation_prompt = prompt_messages.back().role == "user";
  std::string prompt_text = model.apply_chat_template(prompt_messages, generation_prompt);
  const std::string chosen_text = model.apply_chat_template(response_messages(chosen, "chosen"), false);
  const std::string rejected_text = model.apply_chat_template(response_messages(rejected, "rejected"), false);
  prompt_text = common_prefix(common_prefix(prompt_text, chosen_text), rejected_text);
  pair.prompt = prompt_text;
  pair.chosen = chosen_text.substr(prompt_text.size());
  pair.rejected = rejected_text.substr(prompt_text.size());
  return pair;
}

std::vector<PreferencePair> read_preference_file(const std::filesystem::path& path, const CausalLM& model) {
  std::vector<PreferencePair> pairs;
  for (const io::JsonlRecord& record : io::read_jsonl(path)) {
    const std::string where = fmt::format("{}, line {}", path.string(), record.line);
    PreferencePair pair = render_preference(record.value, model, where);
    pair.line = record.line;
    pairs.push_back(std::move(pair));
  }
  if (pairs.empty()) {
    throw DataError(fmt::format("{} contains no preference records; expected one JSON object per line with prompt, "
                                "chosen and rejected",
                                path.string()));
  }
  return pairs;
}

TokenizedPair tokenize_pair(const CausalLM& model, const PreferencePair& pair, const TruncationOptions& options) {
  if (options.max_length <= 0) {
    throw ConfigError(fmt::format("TruncationOptions.max_length is {}; it must be positive", options.max_length));
  }
  const text::Tokenizer& tokenizer = model.tokenizer();
  const std::vector<int64_t> prompt_ids = encode(tokenizer, pair.prompt);
  SplitSequence chosen = split_tokens(tokenizer, pair.prompt, pair.chosen, prompt_ids);
  SplitSequence rejected = split_tokens(tokenizer, pair.prompt, pair.rejected, prompt_ids);

  size_t differing = 0;
  for (size_t i = 0; i < std::min(chosen.prompt.size(), rejected.prompt.size()); ++i) {
    differing += chosen.prompt[i] != rejected.prompt[i];
  }
  const size_t length_gap = chosen.prompt.size() > rejected.prompt.size() ? chosen.prompt.size() - rejected.prompt.size()
                                                                          : rejected.prompt.size() - chosen.prompt.size();
  if (differing > 1 || length_gap > 1) {
    throw DataError(fmt::format("line {}: the prompt tokenizes differently before the chosen and the rejected "
                                "response beyond the last token; check that both responses continue the same prompt",
                                pair.line));
  }

  TokenizedPair out;
  auto finish = [&](SplitSequence& sequence, std::vector<int64_t>& ids, int64_t& prompt_length) {
    if (std::optional<int64_t> bos = model.special_tokens().bos) {
      if (sequence.prompt.empty() || sequence.prompt.front() != *bos) sequence.prompt.insert(sequence.prompt.begin(), *bos);
    }
    if (std::optional<int64_t> eos = model.special_tokens().eos) {
      if (sequence.response.empty() || sequence.response.back() != *eos) sequence.response.push_back(*eos);
    }
    const int64_t limit = options.max_length;
    const int64_t total = static_cast<int64_t>(sequence.prompt.size() + sequence.response.size());
    if (total > limit && options.max_prompt_length > 0 &&
        static_cast<int64_t>(sequence.prompt.size()) > options.max_prompt_length) {
      sequence.prompt.erase(sequence.prompt.begin(), sequence.prompt.end() - options.max_prompt_length);
      out.prompt_truncated = true;
    }
    const int64_t room = std::max<int64_t>(0, limit - static_cast<int64_t>(sequence.prompt.size()));
    if (static_cast<int64_t>(sequence.response.size()) > room) {
      sequence.response.resize(static_cast<size_t>(room));
      out.response_truncated = true;
    }
    if (sequence.response.empty()) out.empty_response = true;
    prompt_length = static_cast<int64_t>(sequence.prompt.size());
    ids = sequence.prompt;
    ids.insert(ids.end(), sequence.response.begin(), sequence.response.end());
  };
  finish(chosen, out.chosen_ids, out.chosen_prompt_length);
  finish(rejected, out.rejected_ids, out.rejected_prompt_length);
  return out;
}

int64_t pad_token_id(const CausalLM& model) {
  const SpecialTokens& special = model.special_tokens();
  if (special.pad) return *special.pad;
  if (special.eos) return *special.eos;
  return 0;
}

PreferenceBatch collate_pairs(const std::vector<const TokenizedPair*>& pairs, int64_t pad_id) {
  if (pairs.empty()) throw ConfigError("collate_pairs: the batch has no pairs");
  const int64_t count = static_cast<int64_t>(pairs.size());
  size_t longest = 0;
  for (const TokenizedPair* pair : pairs) longest = std::max({longest, pair->chosen_ids.size(), pair->rejected_ids.size()});
  const int64_t width = static_cast<int64_t>(longest);

  PreferenceBatch batch;
  batch.pairs = count;
  batch.input_ids = at::full({2 * count, width}, pad_id, at::kLong);
  batch.attention_mask = at::zeros({2 * count, width}, at::kLong);
  batch.labels = at::full({2 * count, width}, kIgnoreIndex, at::kLong);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto mask = batch.attention_mask.accessor<int64_t, 2>();
  auto labels = batch.labels.accessor<int64_t, 2>();
  auto fill = [&](int64_t row, const std::vector<int64_t>& sequence, int64_t prompt_length) {
    for (size_t t = 0; t < sequence.size(); ++t) {
      ids[row][static_cast<int64_t>(t)] = sequence[t];
      mask[row][static_cast<int64_t>(t)] = 1;
      if (static_cast<int64_t>(t) >= prompt_length) labels[row][static_cast<int64_t>(t)] = sequence[t];
    }
    batch.tokens += static_cast<int64_t>(sequence.size());
  };
  for (int64_t i = 0; i < count; ++i) {
    fill(i, pairs[i]->chosen_ids, pairs[i]->chosen_prompt_length);
    fill(count + i, pairs[i]->rejected_ids, pairs[i]->rejected_prompt_length);
  }
  return batch;
}

SequenceLogProbs batch_log_probs(const CausalLM& model, const PreferenceBatch& batch) {
  at::Tensor shifted = batch.labels.narrow(1, 1, batch.labels.size(1) - 1);  // label of position t is token t + 1
  at::Tensor scored = shifted.ne(kIgnoreIndex).nonzero();                    // [M, 2]
  at::Tensor row = scored.select(1, 0);
  at::Tensor position = scored.select(1, 1);
  at::Tensor hidden = model.hidden_states(batch.input_ids, batch.attention_mask);  // [2B, T, D]
  at::Tensor logits = model.output_logits(hidden.index({row, position}));         // [M, V]
  at::Tensor targets = shifted.index({row, position});
  at::Tensor token_logps = at::log_softmax(logits, -1).gather(1, targets.unsqueeze(1)).squeeze(1);
  return sequence_log_probs_from_tokens(token_logps, row, batch.labels.size(0));
}

}  // namespace medfair::align
