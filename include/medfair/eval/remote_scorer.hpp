#pragma once
// Option scoring for models this machine cannot hold: through an
// OpenAI-compatible server (vLLM, llama.cpp's server, a hosted service).
//
// CompletionsOptionScorer reads the same teacher-forced log-probabilities as
// the local OptionScorer from the completions endpoint (echo = true,
// logprobs = 1), so an audit of a large served model follows the local code
// path. SampledOptionScorer is for endpoints that return text only: it samples
// answers, maps each to an option, and estimates probabilities from counts.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "medfair/eval/option_scorer.hpp"
#include "medfair/net/openai.hpp"
#include "medfair/text/chat_template.hpp"

namespace medfair::eval {

/// Options of CompletionsOptionScorer.
struct CompletionsScorerOptions {
  /// Base URL, served model name and HTTP settings (model is required).
  net::EndpointOptions endpoint;
  /// Scoring request settings (max_tokens, boundary tokens, list prompts).
  net::ScoringOptions scoring;
  /// The served model's chat template: a family name ("chatml", "llama3",
  /// "llama2", "gemma", "mistral") or the template string from its
  /// tokenizer_config.json (default "chatml"). The completions endpoint
  /// takes raw text, so the prompt is rendered here.
  std::string chat_template = "chatml";
  /// BOS text the template writes, when it writes one (default none).
  std::string bos_token;
};

/// Scores options through `POST {base_url}/completions` with echoed prompt
/// log-probabilities.
class CompletionsOptionScorer : public SetScorer {
 public:
  /// Throws ConfigError for an empty model name or an unknown template.
  explicit CompletionsOptionScorer(CompletionsScorerOptions options);

  std::vector<StageScores> score_set(const std::vector<const prompts::StagePrompt*>& stages,
                                     StageCarry* carry = nullptr) const override;
  /// The endpoint URL, served model name and template; never the API key.
  nlohmann::json describe() const override;
  /// The raw text sent before each option: chat template and answer prefix.
  std::string prompt_text(const prompts::StagePrompt& stage) const;

 private:
  CompletionsScorerOptions options_;
  net::OpenAICompletionsClient client_;
  text::ChatTemplate template_;
};

/// Options of SampledOptionScorer.
struct SampledScorerOptions {
  /// Base URL, served model name and HTTP settings (model is required).
  net::EndpointOptions endpoint;
  /// Answers sampled per prompt (default 10). The probability estimate of an
  /// option moves in steps of 1/samples.
  int samples = 10;
  /// Sampling settings (default temperature 1, at most 32 new tokens, seed 0;
  /// n is set from `samples`).
  net::GenerationParams params = {
      .temperature = 1.0, .top_p = std::nullopt, .max_tokens = 32, .seed = 0, .stop = {}, .n = 1};
};

/// Estimates option probabilities by sampling answers from
/// `POST {base_url}/chat/completions` and counting which option each names.
/// StageScores::coverage is the share of answers that named an option; the
/// probabilities are the counts over the answers that did. A prompt whose
/// answers all fail to parse gets equal probabilities and coverage 0.
class SampledOptionScorer : public SetScorer {
 public:
  /// Throws ConfigError for an empty model name or samples < 1.
  explicit SampledOptionScorer(SampledScorerOptions options);

  std::vector<StageScores> score_set(const std::vector<const prompts::StagePrompt*>& stages,
                                     StageCarry* carry = nullptr) const override;
  nlohmann::json describe() const override;

 private:
  SampledScorerOptions options_;
  net::OpenAIChatClient client_;
};

/// Maps a free-text answer to one of `options`: the answer, with `answer_prefix`
/// ("Answer:") and surrounding quotes, asterisks and whitespace removed, is
/// matched first by its start, then by the earliest whole-word mention of an
/// option's id, text or surface form (case-insensitive). Returns nullopt when
/// no option is named, or when two different options are named at the same
/// earliest position.
std::optional<size_t> parse_option(std::string_view answer, const std::vector<prompts::AnswerOption>& options,
                                   std::string_view answer_prefix = "");

}  // namespace medfair::eval
