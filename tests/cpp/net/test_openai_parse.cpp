// Parsers of OpenAI-compatible responses and continuation scoring, on
// response bodies written for these tests in vLLM's format.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "medfair/error.hpp"
#include "medfair/log.hpp"
#include "medfair/net/openai.hpp"

using medfair::DataError;
using medfair::EndpointError;
using namespace medfair::net;
using Catch::Matchers::Contains;

namespace {

const std::string kUrl = "http://127.0.0.1:8000/v1/chat/completions";

const char* const kChatResponse = R"({
  "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
  "choices": [
    {"index": 1, "message": {"role": "assistant", "content": "second"}, "logprobs": null,
     "finish_reason": "length", "stop_reason": null},
    {"index": 0, "message": {"role": "assistant", "content": "first", "tool_calls": []}, "logprobs": null,
     "finish_reason": "stop", "stop_reason": null}
  ],
  "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
})";

// Echoed "<s>" + "Patient has" + " chest pain", tokenised as vLLM echoes a
// Llama prompt: the decoded BOS token counts in text_offset.
const char* const kEchoResponse = R"({
  "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
  "choices": [{
    "index": 0, "text": "Patient has chest pain", "finish_reason": "length", "stop_reason": null,
    "prompt_logprobs": null,
    "logprobs": {
      "tokens": ["<s>", "Patient", " has", " chest", " pain"],
      "token_logprobs": [null, -4.0, -1.5, -2.25, -0.5],
      "text_offset": [0, 3, 10, 14, 20],
      "top_logprobs": [null, {"Patient": -4.0}, {" has": -1.5}, {" chest": -2.25}, {" pain": -0.5}]
    }
  }],
  "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}
})";

std::string error_of_chat(const std::string& body) {
  try {
    parse_chat_response(body, kUrl);
  } catch (const EndpointError& e) {
    return e.what();
  }
  FAIL("parse_chat_response accepted " << body);
  return {};
}

std::string error_of_completions(const std::string& body) {
  try {
    parse_completions_response(body, kUrl);
  } catch (const EndpointError& e) {
    return e.what();
  }
  FAIL("parse_completions_response accepted " << body);
  return {};
}

CompletionChoice echo_choice() { return parse_completions_response(kEchoResponse, kUrl).at(0); }

}  // namespace

TEST_CASE("chat response orders choices by index", "[net]") {
  const auto choices = parse_chat_response(kChatResponse, kUrl);
  REQUIRE(choices.size() == 2);
  CHECK(choices[0].text == "first");
  CHECK(choices[0].finish_reason == "stop");
  CHECK(choices[1].text == "second");
  CHECK(choices[1].finish_reason == "length");
}

TEST_CASE("chat response null content and finish reason", "[net]") {
  const auto choices = parse_chat_response(
      R"({"choices": [{"message": {"role": "assistant", "content": null}, "finish_reason": null}]})", kUrl);
  REQUIRE(choices.size() == 1);
  CHECK(choices[0].text.empty());
  CHECK(choices[0].finish_reason.empty());
}

TEST_CASE("chat response malformed variants", "[net]") {
  SECTION("truncated JSON") {
    const std::string full = kChatResponse;
    const std::string message = error_of_chat(full.substr(0, full.size() / 2));
    CHECK_THAT(message, Contains("not valid JSON"));
    CHECK_THAT(message, Contains("truncated"));
    CHECK_THAT(message, Contains("the body starts \"{"));
    CHECK_THAT(message, Contains(kUrl));
  }

  SECTION("malformed JSON") {
    const std::string message = error_of_chat("{'choices': []}");
    CHECK_THAT(message, Contains("not valid JSON"));
    CHECK_THAT(message, !Contains("truncated"));
  }

  SECTION("empty body") { CHECK_THAT(error_of_chat(""), Contains("not valid JSON")); }

  SECTION("top level array") { CHECK_THAT(error_of_chat("[1, 2]"), Contains("the top level is array")); }

  SECTION("missing choices") {
    CHECK_THAT(error_of_chat(R"({"id": "x", "object": "chat.completion"})"), Contains("missing field \"choices\""));
  }

  SECTION("choices not an array") {
    CHECK_THAT(error_of_chat(R"({"choices": {"0": 1}})"), Contains("\"choices\" is object, expected an array"));
  }

  SECTION("empty choices") { CHECK_THAT(error_of_chat(R"({"choices": []})"), Contains("\"choices\" is empty")); }

  SECTION("choice not an object") {
    CHECK_THAT(error_of_chat(R"({"choices": ["text"]})"), Contains("\"choices[0]\" is string, expected an object"));
  }

  SECTION("missing message") {
    CHECK_THAT(error_of_chat(R"({"choices": [{"index": 0, "text": "x"}]})"),
               Contains("missing field \"choices[0].message\""));
  }

  SECTION("message not an object") {
    CHECK_THAT(error_of_chat(R"({"choices": [{"message": "x"}]})"),
               Contains("\"choices[0].message\" is string, expected an object"));
  }

  SECTION("missing content") {
    CHECK_THAT(error_of_chat(R"({"choices": [{"message": {"role": "assistant"}}]})"),
               Contains("missing field \"choices[0].message.content\""));
  }

  SECTION("content a number") {
    CHECK_THAT(error_of_chat(R"({"choices": [{"message": {"content": 42}}]})"),
               Contains("\"choices[0].message.content\" is number, expected a string or null"));
  }

  SECTION("finish reason a number") {
    CHECK_THAT(error_of_chat(R"({"choices": [{"message": {"content": "x"}, "finish_reason": 1}]})"),
               Contains("\"choices[0].finish_reason\" is number"));
  }

  SECTION("duplicate index") {
    CHECK_THAT(error_of_chat(R"({"choices": [{"index": 0, "message": {"content": "a"}},
                                              {"index": 0, "message": {"content": "b"}}]})"),
               Contains("expected each of 0..1 once"));
  }

  SECTION("negative index") {
    CHECK_THAT(error_of_chat(R"({"choices": [{"index": -1, "message": {"content": "a"}}]})"),
               Contains("\"choices[0].index\" is number, expected a non-negative integer"));
  }

  SECTION("index on some choices only") {
    CHECK_THAT(error_of_chat(R"({"choices": [{"index": 0, "message": {"content": "a"}},
                                              {"message": {"content": "b"}}]})"),
               Contains("some choices have an \"index\""));
  }

  SECTION("error object with status 200") {
    CHECK_THAT(error_of_chat(R"({"error": {"message": "model not loaded", "code": 503}})"),
               Contains("the server returned an error: model not loaded"));
  }
}

TEST_CASE("error message quotes a bounded body start", "[net]") {
  const std::string body = "{\"id\": \"" + std::string(5000, 'x') + "\"}";
  const std::string message = error_of_chat(body);
  CHECK_THAT(message, Contains("missing field \"choices\""));
  CHECK_THAT(message, Contains("xxx\"..."));
  CHECK(message.size() < 600);
}

TEST_CASE("completions response with logprobs", "[net]") {
  const CompletionChoice choice = echo_choice();
  CHECK(choice.text == "Patient has chest pain");
  CHECK(choice.finish_reason == "length");
  REQUIRE(choice.logprobs.has_value());
  CHECK(choice.logprobs->tokens.size() == 5);
  CHECK_FALSE(choice.logprobs->token_logprobs[0].has_value());
  CHECK(choice.logprobs->token_logprobs[3].value() == -2.25);
  CHECK(choice.logprobs->text_offset[4] == 20);
}

TEST_CASE("completions response malformed variants", "[net]") {
  SECTION("missing text") {
    CHECK_THAT(error_of_completions(R"({"choices": [{"index": 0}]})"), Contains("missing field \"choices[0].text\""));
  }

  SECTION("text a number") {
    CHECK_THAT(error_of_completions(R"({"choices": [{"text": 42}]})"),
               Contains("\"choices[0].text\" is number, expected a string"));
  }

  SECTION("logprobs not an object") {
    CHECK_THAT(error_of_completions(R"({"choices": [{"text": "a", "logprobs": [1]}]})"),
               Contains("\"choices[0].logprobs\" is array, expected an object or null"));
  }

  SECTION("missing token_logprobs") {
    CHECK_THAT(error_of_completions(R"({"choices": [{"text": "a", "logprobs": {"tokens": ["a"], "text_offset": [0]}}]})"),
               Contains("missing field \"choices[0].logprobs.token_logprobs\""));
  }

  SECTION("tokens not an array") {
    CHECK_THAT(error_of_completions(
                   R"({"choices": [{"text": "a", "logprobs": {"tokens": "a", "token_logprobs": [null], "text_offset": [0]}}]})"),
               Contains("\"choices[0].logprobs.tokens\" is string, expected an array"));
  }

  SECTION("unequal lengths") {
    CHECK_THAT(error_of_completions(
                   R"({"choices": [{"text": "ab", "logprobs": {"tokens": ["a", "b"], "token_logprobs": [null], "text_offset": [0, 1]}}]})"),
               Contains("have 2, 1 and 2 entries"));
  }

  SECTION("token not a string") {
    CHECK_THAT(error_of_completions(
                   R"({"choices": [{"text": "a", "logprobs": {"tokens": [7], "token_logprobs": [null], "text_offset": [0]}}]})"),
               Contains("\"choices[0].logprobs.tokens[0]\" is number"));
  }

  SECTION("logprob a string") {
    CHECK_THAT(error_of_completions(
                   R"({"choices": [{"text": "a", "logprobs": {"tokens": ["a"], "token_logprobs": ["-1"], "text_offset": [0]}}]})"),
               Contains("\"choices[0].logprobs.token_logprobs[0]\" is string, expected a number or null"));
  }

  SECTION("negative offset") {
    CHECK_THAT(error_of_completions(
                   R"({"choices": [{"text": "a", "logprobs": {"tokens": ["a"], "token_logprobs": [null], "text_offset": [-3]}}]})"),
               Contains("\"choices[0].logprobs.text_offset[0]\" is -3, expected a non-negative integer"));
  }

  SECTION("offset beyond the body") {
    CHECK_THAT(error_of_completions(
                   R"({"choices": [{"text": "a", "logprobs": {"tokens": ["a"], "token_logprobs": [null], "text_offset": [9223372036854775807]}}]})"),
               Contains("no larger than the body size"));
  }

  SECTION("number too large for a double") {
    CHECK_THAT(error_of_completions(R"({"choices": [{"text": "a", "x": 1e99999}]})"),
               Contains("is not usable JSON"));
  }

  SECTION("truncated") {
    const std::string full = kEchoResponse;
    CHECK_THAT(error_of_completions(full.substr(0, 200)), Contains("truncated"));
  }
}

TEST_CASE("score continuation after BOS shift", "[net]") {
  const ContinuationScore score = score_continuation(echo_choice(), "Patient has", " chest pain", ScoringOptions{});
  CHECK(score.logprob == -2.75);
  CHECK(score.tokens == std::vector<std::string>{" chest", " pain"});
  CHECK(score.token_logprobs == std::vector<double>{-2.25, -0.5});
  CHECK_FALSE(score.straddles_boundary);

  const ContinuationScore last = score_continuation(echo_choice(), "Patient has chest", " pain", ScoringOptions{});
  CHECK(last.logprob == -0.5);
  CHECK(last.tokens == std::vector<std::string>{" pain"});
}

TEST_CASE("score continuation straddling token", "[net]") {
  std::vector<std::string> warnings;
  const auto previous_sink = medfair::log::set_sink(
      [&](medfair::log::Level, std::string_view, std::string_view message) { warnings.emplace_back(message); });

  // The prompt ends with the space that the token " chest" starts with.
  ScoringOptions options;
  options.straddle = StraddlePolicy::include;
  const ContinuationScore included = score_continuation(echo_choice(), "Patient has ", "chest pain", options);
  CHECK(included.straddles_boundary);
  CHECK(included.logprob == -2.75);

  options.straddle = StraddlePolicy::exclude;
  const ContinuationScore excluded = score_continuation(echo_choice(), "Patient has ", "chest pain", options);
  CHECK(excluded.straddles_boundary);
  CHECK(excluded.logprob == -0.5);
  CHECK(excluded.tokens == std::vector<std::string>{" pain"});

  options.straddle = StraddlePolicy::raise;
  CHECK_THROWS_WITH(score_continuation(echo_choice(), "Patient has ", "chest pain", options),
                    Contains("token \" chest\" crosses the boundary"));
  CHECK_THROWS_AS(score_continuation(echo_choice(), "Patient has ", "chest pain", options), DataError);

  medfair::log::set_sink(previous_sink);
  REQUIRE(warnings.size() == 2);
  CHECK_THAT(warnings[0], Contains("is counted in the continuation's score"));
  CHECK_THAT(warnings[1], Contains("is left out of the continuation's score"));
}

TEST_CASE("score continuation drops generated token", "[net]") {
  CompletionChoice choice = echo_choice();
  choice.text += " yes";
  choice.logprobs->tokens.push_back(" yes");
  choice.logprobs->token_logprobs.push_back(-9.0);
  choice.logprobs->text_offset.push_back(25);
  ScoringOptions options;
  options.max_tokens = 1;
  const ContinuationScore score = score_continuation(choice, "Patient has", " chest pain", options);
  CHECK(score.logprob == -2.75);
  CHECK(score.tokens.size() == 2);
}

TEST_CASE("score continuation counts code points", "[net]") {
  // "Fièvre" has 6 code points and 7 UTF-8 bytes; vLLM offsets count code points.
  CompletionChoice choice;
  choice.text = "Fi\xC3\xA8vre haute";
  choice.logprobs = TokenLogprobs{{"Fi\xC3\xA8vre", " haute"}, {std::nullopt, -1.0}, {0, 6}};
  const ContinuationScore score = score_continuation(choice, "Fi\xC3\xA8vre", " haute", ScoringOptions{});
  CHECK(score.logprob == -1.0);
  CHECK(score.tokens == std::vector<std::string>{" haute"});
}

TEST_CASE("score continuation invalid choices", "[net]") {
  SECTION("no logprobs") {
    CompletionChoice choice = echo_choice();
    choice.logprobs.reset();
    CHECK_THROWS_WITH(score_continuation(choice, "Patient has", " chest pain", ScoringOptions{}),
                      Contains("has no \"logprobs\""));
  }

  SECTION("text not echoed") {
    CompletionChoice choice = echo_choice();
    choice.text = " pain";
    CHECK_THROWS_WITH(score_continuation(choice, "Patient has", " chest pain", ScoringOptions{}),
                      Contains("ignored echo = true"));
  }

  SECTION("empty prompt without BOS") {
    CompletionChoice choice;
    choice.text = "Patient has";
    choice.logprobs = TokenLogprobs{{"Patient", " has"}, {std::nullopt, -1.5}, {0, 7}};
    CHECK_THROWS_WITH(score_continuation(choice, "", "Patient has", ScoringOptions{}),
                      Contains("has no log-probability"));
  }

  SECTION("prompt shortened by the server") {
    CompletionChoice choice = echo_choice();
    choice.logprobs->tokens.resize(2);
    choice.logprobs->token_logprobs.resize(2);
    choice.logprobs->text_offset.resize(2);
    CHECK_THROWS_WITH(score_continuation(choice, "Patient has", " chest pain", ScoringOptions{}),
                      Contains("log-probabilities for part of the text only"));
  }

  SECTION("too few tokens for the generated one") {
    CompletionChoice choice;
    choice.text = "a";
    choice.logprobs = TokenLogprobs{{"a"}, {std::nullopt}, {0}};
    ScoringOptions options;
    options.max_tokens = 1;
    CHECK_THROWS_WITH(score_continuation(choice, "", "a", options), Contains("has 1 tokens"));
  }
}
