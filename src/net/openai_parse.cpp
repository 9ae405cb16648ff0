// Strict parsers of OpenAI-compatible response bodies. Field names and types
// follow the OpenAI API reference for chat completions and (legacy)
// completions, and vLLM's CompletionLogProbs (tokens, token_logprobs,
// text_offset, top_logprobs).

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "medfair/error.hpp"
#include "medfair/net/openai.hpp"

namespace medfair::net {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& url, std::string_view body, const std::string& problem) {
  throw EndpointError(fmt::format(
      "unusable response from {}: {}. Check that the server implements the OpenAI API for this endpoint; the body "
      "starts {}",
      url, problem, detail::quote_body_start(body)));
}

json parse_json(std::string_view body, const std::string& url) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& error) {
    const bool truncated = error.byte > body.size();
    throw EndpointError(fmt::format("response from {} is not valid JSON{} ({}); the body starts {}", url,
                                    truncated ? ", it ends early (truncated)" : "", error.what(),
                                    detail::quote_body_start(body)));
  } catch (const json::exception& error) {
    // For example out_of_range 406: a number literal too large for a double.
    throw EndpointError(fmt::format("response from {} is not usable JSON ({}); the body starts {}", url,
                                    error.what(), detail::quote_body_start(body)));
  }
}

// Checks that the top level is an object with a "choices" array, and turns an
// error object sent with status 200 into an EndpointError.
const json& choices_of(const json& root, std::string_view body, const std::string& url) {
  if (!root.is_object()) fail(url, body, fmt::format("the top level is {}, expected an object", root.type_name()));
  if (!root.contains("choices") && root.contains("error")) {
    fail(url, body, fmt::format("the server returned an error: {}", detail::extract_error_message(body)));
  }
  const auto choices = root.find("choices");
  if (choices == root.end()) fail(url, body, "missing field \"choices\"");
  if (!choices->is_array()) fail(url, body, fmt::format("\"choices\" is {}, expected an array", choices->type_name()));
  if (choices->empty()) fail(url, body, "\"choices\" is empty");
  return *choices;
}

const json& require(const json& object, const char* key, const std::string& path, std::string_view body,
                    const std::string& url) {
  const auto found = object.find(key);
  if (found == object.end()) fail(url, body, fmt::format("missing field \"{}.{}\"", path, key));
  return *found;
}

std::string string_or_null(const json& object, const char* key, const std::string& path, std::string_view body,
                           const std::string& url) {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return {};
  if (!found->is_string()) {
    fail(url, body, fmt::format("\"{}.{}\" is {}, expected a string or null", path, key, found->type_name()));
  }
  return found->get<std::string>();
}

// Returns the order in which to read the choices: by their "index" fields
// when every choice has one (they must be 0..n-1, each once), else as listed.
std::vector<std::size_t> choice_order(const json& choices, std::string_view body, const std::string& url) {
  const std::size_t count = choices.size();
  std::vector<std::size_t> order(count, count);
  std::size_t with_index = 0;
  for (std::size_t position = 0; position < count; ++position) {
    const json& choice = choices[position];
    const std::string path = fmt::format("choices[{}]", position);
    if (!choice.is_object()) fail(url, body, fmt::format("\"{}\" is {}, expected an object", path, choice.type_name()));
    const auto index = choice.find("index");
    if (index == choice.end()) continue;
    if (!index->is_number_unsigned()) {
      fail(url, body, fmt::format("\"{}.index\" is {}, expected a non-negative integer", path, index->type_name()));
    }
    const auto value = index->get<std::uint64_t>();
    if (value >= count || order[value] != count) {
      fail(url, body, fmt::format("\"{}.index\" is {}, expected each of 0..{} once", path, value, count - 1));
    }
    order[value] = position;
    ++with_index;
  }
  if (with_index == 0) {
    for (std::size_t position = 0; position < count; ++position) order[position] = position;
  } else if (with_index != count) {
    fail(url, body, "some choices have an \"index\" field and some do not");
  }
  return order;
}

TokenLogprobs parse_logprobs(const json& logprobs, const std::string& path, std::string_view body,
                             const std::string& url) {
  if (!logprobs.is_object()) {
    fail(url, body, fmt::format("\"{}\" is {}, expected an object or null", path, logprobs.type_name()));
  }
  const json& tokens = require(logprobs, "tokens", path, body, url);
  const json& token_logprobs = require(logprobs, "token_logprobs", path, body, url);
  const json& text_offset = require(logprobs, "text_offset", path, body, url);
  for (const auto& [name, array] : {std::pair{"tokens", &tokens}, std::pair{"token_logprobs", &token_logprobs},
                                    std::pair{"text_offset", &text_offset}}) {
    if (!array->is_array()) {
      fail(url, body, fmt::format("\"{}.{}\" is {}, expected an array", path, name, array->type_name()));
    }
  }
  if (token_logprobs.size() != tokens.size() || text_offset.size() != tokens.size()) {
    fail(url, body,
         fmt::format("\"{0}.tokens\", \"{0}.token_logprobs\" and \"{0}.text_offset\" have {1}, {2} and {3} entries, "
                     "expected equal lengths",
                     path, tokens.size(), token_logprobs.size(), text_offset.size()));
  }

  TokenLogprobs result;
  result.tokens.reserve(tokens.size());
  result.token_logprobs.reserve(tokens.size());
  result.text_offset.reserve(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (!tokens[i].is_string()) {
      fail(url, body, fmt::format("\"{}.tokens[{}]\" is {}, expected a string", path, i, tokens[i].type_name()));
    }
    result.tokens.push_back(tokens[i].get<std::string>());

    if (token_logprobs[i].is_null()) {
      result.token_logprobs.emplace_back(std::nullopt);
    } else if (token_logprobs[i].is_number()) {
      result.token_logprobs.emplace_back(token_logprobs[i].get<double>());
    } else {
      fail(url, body, fmt::format("\"{}.token_logprobs[{}]\" is {}, expected a number or null", path, i,
                                  token_logprobs[i].type_name()));
    }

    // An offset counts characters of tokens that the body contains, so it
    // cannot exceed the body's size. The bound also keeps offset arithmetic
    // far from overflow.
    if (!text_offset[i].is_number_integer() || text_offset[i].get<std::int64_t>() < 0 ||
        text_offset[i].get<std::int64_t>() > static_cast<std::int64_t>(body.size())) {
      fail(url, body, fmt::format("\"{}.text_offset[{}]\" is {}, expected a non-negative integer no larger than "
                                  "the body size ({} bytes)",
                                  path, i, text_offset[i].dump(), body.size()));
    }
    result.text_offset.push_back(text_offset[i].get<std::int64_t>());
  }
  return result;
}

}  // namespace

std::vector<GeneratedText> parse_chat_response(std::string_view body, const std::string& url) {
  const json root = parse_json(body, url);
  const json& choices = choices_of(root, body, url);
  std::vector<GeneratedText> result;
  result.reserve(choices.size());
  for (const std::size_t position : choice_order(choices, body, url)) {
    const json& choice = choices[position];
    const std::string path = fmt::format("choices[{}]", position);
    const json& message = require(choice, "message", path, body, url);
    if (!message.is_object()) {
      fail(url, body, fmt::format("\"{}.message\" is {}, expected an object", path, message.type_name()));
    }
    GeneratedText generated;
    // NOTE: null content (a reasoning model that ran out of tokens, or a
    // refusal) becomes empty text, and finish_reason gives the reason.
    if (!message.contains("content")) fail(url, body, fmt::format("missing field \"{}.message.content\"", path));
    generated.text = string_or_null(message, "content", path + ".message", body, url);
    generated.finish_reason = string_or_null(choice, "finish_reason", path, body, url);
    result.push_back(std::move(generated));
  }
  return result;
}

std::vector<CompletionChoice> parse_completions_response(std::string_view body, const std::string& url) {
  const json root = parse_json(body, url);
  const json& choices = choices_of(root, body, url);
  std::vector<CompletionChoice> result;
  result.reserve(choices.size());
  for (const std::size_t position : choice_order(choices, body, url)) {
    const json& choice = choices[position];
    const std::string path = fmt::format("choices[{}]", position);
    CompletionChoice parsed;
    parsed.index = result.size();
    const json& text = require(choice, "text", path, body, url);
    if (!text.is_string()) {
      fail(url, body, fmt::format("\"{}.text\" is {}, expected a string", path, text.type_name()));
    }
    parsed.text = text.get<std::string>();
    parsed.finish_reason = string_or_null(choice, "finish_reason", path, body, url);
    if (const auto logprobs = choice.find("logprobs"); logprobs != choice.end() && !logprobs->is_null()) {
      parsed.logprobs = parse_logprobs(*logprobs, path + ".logprobs", body, url);
    }
    result.push_back(std::move(parsed));
  }
  return result;
}

}  // namespace medfair::net
