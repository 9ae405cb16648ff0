// Option scoring through OpenAI-compatible endpoints: echoed prompt
// log-probabilities (completions) and sampled answers (chat completions).

#include "medfair/eval/remote_scorer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <tuple>

#include "medfair/error.hpp"
#include "medfair/log.hpp"
#include "internal.hpp"

namespace medfair::eval {

namespace {

void check_set(const std::vector<const prompts::StagePrompt*>& stages) {
  for (const prompts::StagePrompt* stage : stages) {
    if (stage->options.size() != stages.front()->options.size()) {
      throw DataError(fmt::format("the prompts of one counterfactual set offer different options ({} and {}) for "
                                  "stage \"{}\"",
                                  stages.front()->options.size(), stage->options.size(), stages.front()->stage));
    }
  }
}

void finish(StageScores& s) {
  s.predicted = static_cast<size_t>(std::max_element(s.probabilities.begin(), s.probabilities.end()) -
                                    s.probabilities.begin());
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view text, std::string_view junk) {
  const size_t begin = text.find_first_not_of(junk);
  if (begin == std::string_view::npos) return {};
  const size_t end = text.find_last_not_of(junk);
  return text.substr(begin, end - begin + 1);
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// Whether `needle` occurs in `haystack` at `pos` as a whole word.
bool whole_word_at(std::string_view haystack, size_t pos, std::string_view needle) {
  if (haystack.compare(pos, needle.size(), needle) != 0) return false;
  const bool left = pos == 0 || !is_word_char(haystack[pos - 1]) || !is_word_char(needle.front());
  const size_t end = pos + needle.size();
  const bool right = end >= haystack.size() || !is_word_char(haystack[end]) || !is_word_char(needle.back());
  return left && right;
}

// The lower-case names an answer may use for an option: id, text and surface forms.
std::vector<std::vector<std::string>> option_terms(const std::vector<prompts::AnswerOption>& options) {
  std::vector<std::vector<std::string>> terms;
  for (const auto& option : options) {
    std::vector<std::string> list;
    auto add = [&](std::string_view term) {
      std::string t = lower(trim(term, " \t\r\n"));
      if (!t.empty() && std::find(list.begin(), list.end(), t) == list.end()) list.push_back(t);
    };
    add(option.id);
    add(option.text);
    for (const auto& form : option.surface_forms) add(form);
    terms.push_back(std::move(list));
  }
  return terms;
}

}  // namespace

std::optional<size_t> parse_option(std::string_view answer, const std::vector<prompts::AnswerOption>& options,
                                   std::string_view answer_prefix) {
  constexpr std::string_view kJunk = " \t\r\n\"'*`_:";
  std::string text = lower(trim(answer, kJunk));
  const std::string prefix = lower(trim(answer_prefix, kJunk));
  if (!prefix.empty() && text.starts_with(prefix)) text = std::string(trim(std::string_view(text).substr(prefix.size()), kJunk));
  const auto terms = option_terms(options);

  // Candidates (position, -length, option); the best is the earliest, then the longest.
  std::vector<std::tuple<size_t, long, size_t>> found;
  for (size_t o = 0; o < terms.size(); ++o) {
    for (const std::string& term : terms[o]) {
      for (size_t pos = text.find(term); pos != std::string::npos; pos = text.find(term, pos + 1)) {
        if (whole_word_at(text, pos, term)) {
          found.emplace_back(pos, -static_cast<long>(term.size()), o);
          break;
        }
      }
    }
  }
  if (found.empty()) return std::nullopt;
  std::sort(found.begin(), found.end());
  const auto& [pos, length, option] = found.front();
  for (size_t i = 1; i < found.size(); ++i) {
    const auto& [p, l, o] = found[i];
    if (p != pos || l != length) break;
    if (o != option) return std::nullopt;  // two options named at once
  }
  return option;
}

// ---- CompletionsOptionScorer ------------------------------------------------

CompletionsOptionScorer::CompletionsOptionScorer(CompletionsScorerOptions options)
    : options_(std::move(options)),
      client_(options_.endpoint, options_.scoring),
      template_(text::ChatTemplate::from_string(options_.chat_template, options_.bos_token)) {}

std::string CompletionsOptionScorer::prompt_text(const prompts::StagePrompt& stage) const {
  return template_.render(stage.conversation, /*add_generation_prompt=*/true) + stage.answer_prefix;
}

nlohmann::json CompletionsOptionScorer::describe() const {
  return {{"model", options_.endpoint.model},
          {"endpoint", client_.url()},
          {"scoring", "completions-logprobs"},
          {"chat_template", std::string(text::family_name(template_.family()))}};
}

std::vector<StageScores> CompletionsOptionScorer::score_set(const std::vector<const prompts::StagePrompt*>& stages,
                                                            StageCarry* /*carry*/) const {
  if (stages.empty()) return {};
  check_set(stages);
  const auto& options = stages.front()->options;
  // Each option's distinct surface forms, in order; the item's continuations
  // are all forms of all options.
  std::vector<std::vector<std::string>> forms(options.size());
  std::vector<std::string> continuations;
  for (size_t o = 0; o < options.size(); ++o) {
    for (const std::string& form : options[o].surface_forms) {
      if (form.empty() || std::find(continuations.begin(), continuations.end(), form) != continuations.end()) continue;
      forms[o].push_back(form);
      continuations.push_back(form);
    }
    if (forms[o].empty()) {
      throw DataError(fmt::format("answer option \"{}\" has no non-empty surface form to score", options[o].id));
    }
  }
  std::vector<net::ScoringItem> items;
  for (const prompts::StagePrompt* stage : stages) items.push_back({prompt_text(*stage), continuations});
  const std::vector<std::vector<net::ContinuationScore>> scored = client_.score_many(items);

  std::vector<StageScores> out;
  for (size_t v = 0; v < stages.size(); ++v) {
    StageScores s;
    size_t c = 0;
    for (size_t o = 0; o < options.size(); ++o) {
      std::vector<double> log_probs;
      for (size_t f = 0; f < forms[o].size(); ++f) log_probs.push_back(scored.at(v).at(c++).logprob);
      s.options.push_back(options[o].id);
      s.log_probs.push_back(detail::log_sum_exp(log_probs));
    }
    const double log_coverage = detail::log_sum_exp(s.log_probs);
    s.coverage = std::exp(log_coverage);
    for (double lp : s.log_probs) s.probabilities.push_back(std::exp(lp - log_coverage));
    finish(s);
    out.push_back(std::move(s));
  }
  return out;
}

// ---- SampledOptionScorer ----------------------------------------------------

SampledOptionScorer::SampledOptionScorer(SampledScorerOptions options)
    : options_(std::move(options)), client_(options_.endpoint) {
  if (options_.samples < 1) {
    throw ConfigError(fmt::format("SampledScorerOptions.samples is {}; expected at least 1", options_.samples));
  }
}

nlohmann::json SampledOptionScorer::describe() const {
  const auto& p = options_.params;
  nlohmann::json params = {{"samples", options_.samples}};
  if (p.temperature) params["temperature"] = *p.temperature;
  if (p.top_p) params["top_p"] = *p.top_p;
  if (p.max_tokens) params["max_tokens"] = *p.max_tokens;
  if (p.seed) params["seed"] = *p.seed;
  return {{"model", options_.endpoint.model},
          {"endpoint", client_.url()},
          {"scoring", "sampled-answers"},
          {"sampling", params}};
}

std::vector<StageScores> SampledOptionScorer::score_set(const std::vector<const prompts::StagePrompt*>& stages,
                                                        StageCarry* /*carry*/) const {
  if (stages.empty()) return {};
  check_set(stages);
  const auto& options = stages.front()->options;
  std::vector<Conversation> conversations;
  for (const prompts::StagePrompt* stage : stages) conversations.push_back(stage->conversation);
  net::GenerationParams params = options_.params;
  params.n = 1;
  const auto answers = net::sample_answers(client_, conversations, options_.samples, params);

  std::vector<StageScores> out;
  for (size_t v = 0; v < stages.size(); ++v) {
    StageScores s;
    s.sample_counts.assign(options.size(), 0);
    for (const std::string& answer : answers.at(v)) {
      if (auto option = parse_option(answer, options, stages[v]->answer_prefix)) {
        ++s.sample_counts[*option];
      } else {
        ++s.parse_failures;
      }
    }
    const size_t total = answers.at(v).size();
    const size_t parsed = total - s.parse_failures;
    for (size_t o = 0; o < options.size(); ++o) {
      s.options.push_back(options[o].id);
      const double share = total > 0 ? static_cast<double>(s.sample_counts[o]) / static_cast<double>(total) : 0.0;
      s.log_probs.push_back(share > 0 ? std::log(share) : -std::numeric_limits<double>::infinity());
      s.probabilities.push_back(parsed > 0 ? static_cast<double>(s.sample_counts[o]) / static_cast<double>(parsed)
                                           : 1.0 / static_cast<double>(options.size()));
    }
    s.coverage = total > 0 ? static_cast<double>(parsed) / static_cast<double>(total) : 0.0;
    if (parsed == 0) {
      log::warning_once("sampled-no-parse", "SampledOptionScorer",
                        fmt::format("no sampled answer named an option for stage \"{}\"; such prompts count as equal "
                                    "probabilities with coverage 0 (see parse_failures in results.jsonl)",
                                    stages[v]->stage));
    }
    finish(s);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace medfair::eval
