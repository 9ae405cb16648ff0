#pragma once
// Clients for OpenAI-compatible servers (vLLM, llama.cpp's server, Ollama,
// hosted services): chat completions for generated answers, and the legacy
// completions endpoint for text generation and for scoring continuations by
// their prompt log-probabilities (echo = true, logprobs = 1).
//
// Response formats follow the OpenAI API reference and vLLM's
// vllm/entrypoints/openai/serving_completion.py.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "medfair/chat.hpp"
#include "medfair/net/http_client.hpp"

namespace medfair::net {

/// Endpoint address, model name and HTTP settings of a client.
struct EndpointOptions {
  /// API root including the version prefix (default "http://127.0.0.1:8000/v1");
  /// "/chat/completions" or "/completions" is appended.
  std::string base_url = "http://127.0.0.1:8000/v1";
  /// Model name sent in each request (no default; required).
  std::string model;
  /// Timeouts, retries, concurrency limit and API key variable.
  HttpOptions http;
};

/// Sampling parameters of a generation request. Unset fields are left out of
/// the request, so the server's defaults apply.
struct GenerationParams {
  /// Sampling temperature (unset: server default).
  std::optional<double> temperature;
  /// Nucleus sampling probability mass (unset: server default).
  std::optional<double> top_p;
  /// Max generated tokens per choice (unset: server default).
  std::optional<int> max_tokens;
  /// Sampling seed (unset: server default, usually random).
  std::optional<std::int64_t> seed;
  /// Stop strings (default none).
  std::vector<std::string> stop;
  /// Number of choices per request (default 1).
  int n = 1;
};

/// One generated choice.
struct GeneratedText {
  std::string text;
  /// "stop", "length", ...; empty when the server sent null.
  std::string finish_reason;
};

/// Per-token log-probabilities of a completions choice, in the legacy OpenAI
/// layout: three arrays of equal length.
struct TokenLogprobs {
  std::vector<std::string> tokens;
  /// Null for a token without a conditional probability (the first prompt token).
  std::vector<std::optional<double>> token_logprobs;
  /// Offset of each token in the echoed text, in Unicode code points (vLLM
  /// counts Python str characters).
  std::vector<std::int64_t> text_offset;
};

/// One choice of a completions response.
struct CompletionChoice {
  std::size_t index = 0;
  std::string text;
  std::string finish_reason;
  std::optional<TokenLogprobs> logprobs;
};

/// Handling of a token that starts in the prompt and ends in the continuation.
enum class StraddlePolicy {
  include,  ///< count it as a continuation token and log a warning once
  exclude,  ///< leave it out and log a warning once
  raise,    ///< throw DataError
};

/// Settings of continuation scoring.
struct ScoringOptions {
  /// max_tokens sent with each scoring request (default 0). vLLM accepts 0 with
  /// echo; use 1 for servers that reject 0, and the one generated token is dropped.
  int max_tokens = 0;
  /// Handling of the token that straddles the prompt/continuation boundary (default include).
  StraddlePolicy straddle = StraddlePolicy::include;
  /// Max prompt strings sent in one request as a list prompt (default 32; 1
  /// for servers that accept only a single string).
  int max_prompts_per_request = 32;
};

/// Log-probability of one continuation given its prompt.
struct ContinuationScore {
  /// Sum of the continuation tokens' log-probabilities (natural log).
  double logprob = 0.0;
  std::vector<std::string> tokens;
  std::vector<double> token_logprobs;
  /// Whether a token crossed the prompt/continuation boundary.
  bool straddles_boundary = false;
};

/// A prompt with the continuations to score after it.
struct ScoringItem {
  std::string prompt;
  std::vector<std::string> continuations;
};

/// Client of `POST {base_url}/chat/completions`.
class OpenAIChatClient {
 public:
  /// Throws ConfigError when the model name is empty or the HTTP options are invalid.
  explicit OpenAIChatClient(EndpointOptions options);

  /// Sends one conversation and returns the generated choices (params.n of
  /// them, unless the server returns fewer).
  std::vector<GeneratedText> complete(const Conversation& conversation, const GenerationParams& params = {}) const;

  /// Builds the JSON request body that complete() sends.
  nlohmann::json build_request(const Conversation& conversation, const GenerationParams& params) const;

  const EndpointOptions& options() const { return options_; }
  const HttpClient& http() const { return http_; }
  std::string url() const;

 private:
  EndpointOptions options_;
  HttpClient http_;
};

/// Client of `POST {base_url}/completions`: raw-text generation and scoring of
/// continuations by their echoed prompt log-probabilities.
class OpenAICompletionsClient {
 public:
  /// Throws ConfigError when the model name is empty or an option is invalid.
  explicit OpenAICompletionsClient(EndpointOptions options, ScoringOptions scoring = {});

  /// Generates text after `prompt` (no chat template) and returns the choices.
  std::vector<GeneratedText> complete(const std::string& prompt, const GenerationParams& params = {}) const;

  /// Returns log P(continuation | prompt) for each continuation, in order.
  /// Sends prompt + continuation with echo = true and logprobs = 1 and sums
  /// the log-probabilities of the tokens at or after the continuation's start.
  ///
  /// Caveat: the server tokenises prompt + continuation as one text, which
  /// can merge characters across the boundary (for example "Answer: " + "A"
  /// becomes the token " A"). Such a token is handled by
  /// ScoringOptions::straddle. End prompts without trailing whitespace and
  /// start continuations with a space to keep the boundary on a token edge.
  ///
  /// vLLM returns prompt log-probabilities with echo. llama.cpp's llama-server
  /// rejected echo or returned generated-token log-probabilities only (its
  /// issue tracker, 2026), and such responses raise EndpointError here
  /// instead of giving zero scores.
  std::vector<ContinuationScore> score(const std::string& prompt, const std::vector<std::string>& continuations) const;

  /// Scores many prompts at once: all (prompt, continuation) texts are sent as
  /// list prompts of up to max_prompts_per_request strings, with the requests
  /// fanned out over up to HttpOptions::max_concurrent_requests threads.
  /// Returns one vector of scores per item.
  std::vector<std::vector<ContinuationScore>> score_many(const std::vector<ScoringItem>& items) const;

  /// Builds the JSON body of a scoring request for `texts`.
  nlohmann::json build_scoring_request(const std::vector<std::string>& texts) const;

  const EndpointOptions& options() const { return options_; }
  const ScoringOptions& scoring_options() const { return scoring_; }
  const HttpClient& http() const { return http_; }
  std::string url() const;

 private:
  EndpointOptions options_;
  ScoringOptions scoring_;
  HttpClient http_;
};

/// Samples `n` answers to each conversation and returns their texts, one
/// vector per conversation. Conversations are sent from up to
/// HttpOptions::max_concurrent_requests threads. When the server returns
/// fewer than the requested choices (some ignore `n`), the rest is requested
/// again, with seed + 1, seed + 2, ... when a seed is set; gives up with
/// EndpointError after n rounds.
std::vector<std::vector<std::string>> sample_answers(const OpenAIChatClient& client,
                                                     const std::vector<Conversation>& conversations, int n,
                                                     const GenerationParams& params = {});

/// Same as above for raw-text prompts through the completions endpoint.
std::vector<std::vector<std::string>> sample_answers(const OpenAICompletionsClient& client,
                                                     const std::vector<std::string>& prompts, int n,
                                                     const GenerationParams& params = {});

/// Parses a chat completions response body into its choices, ordered by
/// `index`. Throws EndpointError naming the missing or mistyped field and
/// quoting the start of the body; `url` only appears in messages.
std::vector<GeneratedText> parse_chat_response(std::string_view body, const std::string& url);

/// Parses a completions response body into its choices, ordered by `index`,
/// with the logprobs arrays when present. Throws EndpointError as above.
std::vector<CompletionChoice> parse_completions_response(std::string_view body, const std::string& url);

/// Computes the continuation's score from one echoed choice for
/// `prompt + continuation`. Offsets are aligned at the end of the text, so
/// decoded special tokens before the prompt (vLLM echoes "<s>" or
/// "<|begin_of_text|>" with offsets that count them) do not shift the boundary.
/// `generated_tokens` trailing tokens (ScoringOptions::max_tokens) are dropped.
/// Throws EndpointError when the choice lacks logprobs, does not echo the
/// text, or a continuation token has no log-probability; throws DataError for
/// a straddling token under StraddlePolicy::raise.
ContinuationScore score_continuation(const CompletionChoice& choice, std::string_view prompt,
                                     std::string_view continuation, const ScoringOptions& options);

}  // namespace medfair::net
