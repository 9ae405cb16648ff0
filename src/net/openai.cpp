#include "medfair/net/openai.hpp"

#include <fmt/format.h>

#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "medfair/error.hpp"
#include "medfair/log.hpp"

namespace medfair::net {

namespace {

using nlohmann::json;

std::string join_url(const std::string& base_url, std::string_view path) {
  std::string url = base_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += path;
  return url;
}

void validate_endpoint(const EndpointOptions& options, std::string_view client) {
  if (options.base_url.empty()) {
    throw ConfigError(fmt::format("{}: EndpointOptions.base_url is empty; set it to the API root, for example "
                                  "http://127.0.0.1:8000/v1",
                                  client));
  }
  if (options.model.empty()) {
    throw ConfigError(fmt::format("{}: EndpointOptions.model is empty; set it to the model name the server serves",
                                  client));
  }
}

void add_generation_params(json& body, const GenerationParams& params) {
  if (params.n < 1) throw ConfigError(fmt::format("GenerationParams.n is {}; expected at least 1", params.n));
  if (params.temperature && !(*params.temperature >= 0.0)) {
    throw ConfigError(fmt::format("GenerationParams.temperature is {}; expected >= 0", *params.temperature));
  }
  if (params.top_p && !(*params.top_p > 0.0 && *params.top_p <= 1.0)) {
    throw ConfigError(fmt::format("GenerationParams.top_p is {}; expected a value in (0, 1]", *params.top_p));
  }
  if (params.max_tokens && *params.max_tokens < 1) {
    throw ConfigError(fmt::format("GenerationParams.max_tokens is {}; expected at least 1", *params.max_tokens));
  }
  if (params.temperature) body["temperature"] = *params.temperature;
  if (params.top_p) body["top_p"] = *params.top_p;
  if (params.max_tokens) body["max_tokens"] = *params.max_tokens;
  if (params.seed) body["seed"] = *params.seed;
  if (!params.stop.empty()) body["stop"] = params.stop;
  body["n"] = params.n;
}

std::vector<GeneratedText> to_generated(std::vector<CompletionChoice> choices) {
  std::vector<GeneratedText> result;
  result.reserve(choices.size());
  for (CompletionChoice& choice : choices) {
    result.push_back(GeneratedText{std::move(choice.text), std::move(choice.finish_reason)});
  }
  return result;
}

std::int64_t count_code_points(std::string_view text) {
  std::int64_t count = 0;
  for (const char byte : text) {
    if ((static_cast<unsigned char>(byte) & 0xC0) != 0x80) ++count;
  }
  return count;
}

// Runs task(0) ... task(count - 1) on up to `workers` threads, the calling
// thread included. After the first exception no new task starts, and that
// exception is rethrown once all threads have finished.
void parallel_for(std::size_t count, std::size_t workers, const std::function<void(std::size_t)>& task) {
  workers = std::min(workers, count);
  if (workers <= 1) {
    for (std::size_t i = 0; i < count; ++i) task(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto run = [&] {
    while (!failed.load()) {
      const std::size_t i = next.fetch_add(1);
      if (i >= count) return;
      try {
        task(i);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        failed.store(true);
      }
    }
  };
  {
    std::vector<std::jthread> threads;
    threads.reserve(workers - 1);
    for (std::size_t w = 0; w + 1 < workers; ++w) threads.emplace_back(run);
    run();
  }
  if (first_error) std::rethrow_exception(first_error);
}

// Samples n answers per prompt through request(prompt_index, params).
std::vector<std::vector<std::string>> sample_n(
    std::size_t count, int n, const GenerationParams& params, int workers,
    const std::function<std::vector<GeneratedText>(std::size_t, const GenerationParams&)>& request) {
  if (n < 1) throw ConfigError(fmt::format("sample_answers: n is {}; expected at least 1", n));
  std::vector<std::vector<std::string>> answers(count);
  parallel_for(count, static_cast<std::size_t>(workers), [&](std::size_t prompt_index) {
    std::vector<std::string>& texts = answers[prompt_index];
    texts.reserve(static_cast<std::size_t>(n));
    // Every response has at least one choice (the parsers reject an empty
    // "choices"), so this loop makes at most n requests.
    for (int round = 0; texts.size() < static_cast<std::size_t>(n); ++round) {
      GenerationParams round_params = params;
      round_params.n = n - static_cast<int>(texts.size());
      if (round_params.seed && round > 0) *round_params.seed += round;
      std::vector<GeneratedText> choices = request(prompt_index, round_params);
      if (choices.size() < static_cast<std::size_t>(round_params.n)) {
        log::warning_once("sample_answers.fewer_choices", "sample_answers",
                          fmt::format("the server returned {} choices for n = {}; requesting the rest again "
                                      "(this server may ignore n)",
                                      choices.size(), round_params.n));
      }
      for (GeneratedText& choice : choices) {
        if (texts.size() < static_cast<std::size_t>(n)) texts.push_back(std::move(choice.text));
      }
    }
  });
  return answers;
}

}  // namespace

// ---------------------------------------------------------------------------
// Chat completions

OpenAIChatClient::OpenAIChatClient(EndpointOptions options)
    : options_((validate_endpoint(options, "OpenAIChatClient"), std::move(options))), http_(options_.http) {}

std::string OpenAIChatClient::url() const { return join_url(options_.base_url, "/chat/completions"); }

json OpenAIChatClient::build_request(const Conversation& conversation, const GenerationParams& params) const {
  if (conversation.empty()) throw DataError("OpenAIChatClient: the conversation is empty; add at least one message");
  json messages = json::array();
  for (const ChatMessage& message : conversation) {
    messages.push_back({{"role", message.role}, {"content", message.content}});
  }
  json body = {{"model", options_.model}, {"messages", std::move(messages)}};
  add_generation_params(body, params);
  return body;
}

std::vector<GeneratedText> OpenAIChatClient::complete(const Conversation& conversation,
                                                      const GenerationParams& params) const {
  const json body = build_request(conversation, params);
  const HttpResponse response = http_.post_json(url(), body);
  return parse_chat_response(response.body, detail::redact_url(url()));
}

// ---------------------------------------------------------------------------
// Completions

OpenAICompletionsClient::OpenAICompletionsClient(EndpointOptions options, ScoringOptions scoring)
    : options_((validate_endpoint(options, "OpenAICompletionsClient"), std::move(options))),
      scoring_(scoring),
      http_(options_.http) {
  if (scoring_.max_tokens != 0 && scoring_.max_tokens != 1) {
    throw ConfigError(fmt::format("ScoringOptions.max_tokens is {}; expected 0, or 1 for servers that reject 0",
                                  scoring_.max_tokens));
  }
  if (scoring_.max_prompts_per_request < 1) {
    throw ConfigError(fmt::format("ScoringOptions.max_prompts_per_request is {}; expected at least 1",
                                  scoring_.max_prompts_per_request));
  }
}

std::string OpenAICompletionsClient::url() const { return join_url(options_.base_url, "/completions"); }

std::vector<GeneratedText> OpenAICompletionsClient::complete(const std::string& prompt,
                                                             const GenerationParams& params) const {
  json body = {{"model", options_.model}, {"prompt", prompt}};
  add_generation_params(body, params);
  const HttpResponse response = http_.post_json(url(), body);
  return to_generated(parse_completions_response(response.body, detail::redact_url(url())));
}

json OpenAICompletionsClient::build_scoring_request(const std::vector<std::string>& texts) const {
  json body = {{"model", options_.model}};
  // A single string rather than a one-element list, for servers that accept only strings.
  if (texts.size() == 1) {
    body["prompt"] = texts.front();
  } else {
    body["prompt"] = texts;
  }
  body["max_tokens"] = scoring_.max_tokens;
  body["echo"] = true;
  body["logprobs"] = 1;
  body["temperature"] = 0.0;
  return body;
}

std::vector<ContinuationScore> OpenAICompletionsClient::score(const std::string& prompt,
                                                              const std::vector<std::string>& continuations) const {
  return score_many({ScoringItem{prompt, continuations}}).front();
}

std::vector<std::vector<ContinuationScore>> OpenAICompletionsClient::score_many(
    const std::vector<ScoringItem>& items) const {
  struct Slot {
    std::size_t item;
    std::size_t continuation;
  };
  std::vector<Slot> slots;
  std::vector<std::vector<ContinuationScore>> scores(items.size());
  for (std::size_t item = 0; item < items.size(); ++item) {
    scores[item].resize(items[item].continuations.size());
    for (std::size_t c = 0; c < items[item].continuations.size(); ++c) {
      if (items[item].continuations[c].empty()) {
        throw DataError(fmt::format("OpenAICompletionsClient::score: continuation {} of item {} is empty; every "
                                    "continuation needs at least one character",
                                    c, item));
      }
      slots.push_back({item, c});
    }
  }

  const auto per_request = static_cast<std::size_t>(scoring_.max_prompts_per_request);
  const std::size_t request_count = (slots.size() + per_request - 1) / per_request;
  const std::string shown_url = detail::redact_url(url());
  parallel_for(request_count, static_cast<std::size_t>(options_.http.max_concurrent_requests),
               [&](std::size_t request_index) {
                 const std::size_t begin = request_index * per_request;
                 const std::size_t end = std::min(slots.size(), begin + per_request);
                 std::vector<std::string> texts;
                 for (std::size_t s = begin; s < end; ++s) {
                   const ScoringItem& item = items[slots[s].item];
                   texts.push_back(item.prompt + item.continuations[slots[s].continuation]);
                 }
                 const HttpResponse response = http_.post_json(url(), build_scoring_request(texts));
                 const std::vector<CompletionChoice> choices = parse_completions_response(response.body, shown_url);
                 if (choices.size() != texts.size()) {
                   throw EndpointError(fmt::format(
                       "{} returned {} choices for {} prompts; set ScoringOptions.max_prompts_per_request to 1 if "
                       "the server does not accept a list prompt",
                       shown_url, choices.size(), texts.size()));
                 }
                 for (std::size_t s = begin; s < end; ++s) {
                   const ScoringItem& item = items[slots[s].item];
                   scores[slots[s].item][slots[s].continuation] = score_continuation(
                       choices[s - begin], item.prompt, item.continuations[slots[s].continuation], scoring_);
                 }
               });
  return scores;
}

// ---------------------------------------------------------------------------
// Continuation scoring

ContinuationScore score_continuation(const CompletionChoice& choice, std::string_view prompt,
                                     std::string_view continuation, const ScoringOptions& options) {
  if (!choice.logprobs) {
    throw EndpointError(fmt::format(
        "choice {} has no \"logprobs\"; the server ignored logprobs = 1. Use a server that returns prompt "
        "log-probabilities with echo = true (vLLM does)",
        choice.index));
  }
  std::string text(prompt);
  text += continuation;
  if (!std::string_view(choice.text).starts_with(text)) {
    throw EndpointError(fmt::format(
        "choice {} does not echo the text that was sent (it starts {}, expected {}); the server ignored echo = true",
        choice.index, detail::quote_body_start(choice.text, 80), detail::quote_body_start(text, 80)));
  }

  const TokenLogprobs& logprobs = *choice.logprobs;
  const auto generated = static_cast<std::size_t>(options.max_tokens);
  if (logprobs.tokens.size() <= generated) {
    throw EndpointError(fmt::format("choice {} has {} tokens, expected the echoed prompt tokens plus {} generated",
                                    choice.index, logprobs.tokens.size(), generated));
  }
  const std::size_t prompt_tokens = logprobs.tokens.size() - generated;

  // Align at the end of the text: the last echoed token ends where the text
  // ends, whatever special tokens the server decoded before the prompt.
  const std::int64_t tokens_end =
      logprobs.text_offset[prompt_tokens - 1] + count_code_points(logprobs.tokens[prompt_tokens - 1]);
  const std::int64_t shift = tokens_end - count_code_points(text);
  if (shift < 0) {
    throw EndpointError(fmt::format(
        "choice {}: the echoed tokens cover {} characters but the text sent has {}; the server returned "
        "log-probabilities for part of the text only (it may not support prompt log-probabilities, or it "
        "truncated the prompt to its context length)",
        choice.index, tokens_end, count_code_points(text)));
  }
  const std::int64_t continuation_start = shift + count_code_points(prompt);

  ContinuationScore score;
  for (std::size_t k = 0; k < prompt_tokens; ++k) {
    const std::int64_t token_start = logprobs.text_offset[k];
    const std::int64_t token_end = token_start + count_code_points(logprobs.tokens[k]);
    const bool straddles = token_start < continuation_start && token_end > continuation_start;
    if (token_start < continuation_start && !straddles) continue;
    if (straddles) {
      score.straddles_boundary = true;
      const std::string token = detail::quote_body_start(logprobs.tokens[k], 40);
      if (options.straddle == StraddlePolicy::raise) {
        throw DataError(fmt::format(
            "choice {}: token {} crosses the boundary between prompt and continuation {}; end the prompt without "
            "trailing whitespace and start the continuation with a space, or set ScoringOptions.straddle",
            choice.index, token, detail::quote_body_start(continuation, 40)));
      }
      const bool include = options.straddle == StraddlePolicy::include;
      log::warning_once(include ? "score_continuation.straddle.include" : "score_continuation.straddle.exclude",
                        "score_continuation",
                        fmt::format("token {} crosses the boundary between prompt and continuation and is {} the "
                                    "continuation's score; end prompts without trailing whitespace and start "
                                    "continuations with a space to avoid this",
                                    token, include ? "counted in" : "left out of"));
      if (!include) continue;
    }
    if (!logprobs.token_logprobs[k]) {
      throw EndpointError(fmt::format(
          "choice {}: continuation token {} (position {}) has no log-probability; the first token of a text has "
          "none, so the prompt must not be empty",
          choice.index, detail::quote_body_start(logprobs.tokens[k], 40), k));
    }
    score.tokens.push_back(logprobs.tokens[k]);
    score.token_logprobs.push_back(*logprobs.token_logprobs[k]);
    score.logprob += *logprobs.token_logprobs[k];
  }
  if (score.tokens.empty()) {
    throw EndpointError(fmt::format(
        "choice {}: no echoed token lies in the continuation {}; the server's token offsets do not match the text",
        choice.index, detail::quote_body_start(continuation, 40)));
  }
  return score;
}

// ---------------------------------------------------------------------------
// Sampling

std::vector<std::vector<std::string>> sample_answers(const OpenAIChatClient& client,
                                                     const std::vector<Conversation>& conversations, int n,
                                                     const GenerationParams& params) {
  return sample_n(conversations.size(), n, params, client.options().http.max_concurrent_requests,
                  [&](std::size_t i, const GenerationParams& round_params) {
                    return client.complete(conversations[i], round_params);
                  });
}

std::vector<std::vector<std::string>> sample_answers(const OpenAICompletionsClient& client,
                                                     const std::vector<std::string>& prompts, int n,
                                                     const GenerationParams& params) {
  return sample_n(prompts.size(), n, params, client.options().http.max_concurrent_requests,
                  [&](std::size_t i, const GenerationParams& round_params) {
                    return client.complete(prompts[i], round_params);
                  });
}

}  // namespace medfair::net
