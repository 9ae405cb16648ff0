// URL redaction, Retry-After parsing, error-body extraction and option
// validation of the HTTP client (no network).

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <string>

#include "medfair/error.hpp"
#include "medfair/net/http_client.hpp"
#include "medfair/net/openai.hpp"

using namespace medfair::net;
using Catch::Matchers::Contains;

TEST_CASE("redact_url drops query and credentials", "[net]") {
  CHECK(detail::redact_url("http://127.0.0.1:8000/v1/completions?api_key=SECRET&x=1") ==
        "http://127.0.0.1:8000/v1/completions");
  CHECK(detail::redact_url("https://user:SECRET@example.invalid/v1/chat/completions#frag") ==
        "https://example.invalid/v1/chat/completions");
  CHECK(detail::redact_url("not a url") == "<invalid URL>");
}

TEST_CASE("parse_retry_after seconds and dates", "[net]") {
  const auto now = std::chrono::system_clock::from_time_t(1700000000);
  CHECK(detail::parse_retry_after("120", now) == 120.0);
  CHECK(detail::parse_retry_after(" 1.5 ", now) == 1.5);
  CHECK_FALSE(detail::parse_retry_after("", now).has_value());
  CHECK_FALSE(detail::parse_retry_after("soon", now).has_value());
  CHECK_FALSE(detail::parse_retry_after("1.2.3", now).has_value());
  // 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT.
  CHECK(detail::parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == 30.0);
  CHECK(detail::parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0);
}

TEST_CASE("extract_error_message known layouts", "[net]") {
  CHECK(detail::extract_error_message(R"({"error": {"message": "bad model", "type": "x"}})") == "bad model");
  CHECK(detail::extract_error_message(R"({"error": "model not found"})") == "model not found");
  CHECK(detail::extract_error_message(R"({"object": "error", "message": "too long", "code": 400})") == "too long");
  CHECK(detail::extract_error_message("") == "(empty body)");
  CHECK(detail::extract_error_message("<html>502</html>") == "body \"<html>502</html>\"");
  CHECK(detail::extract_error_message(R"({"error": {"message": ")" + std::string(1000, 'm') + "\"}}", 10) ==
        "mmmmmmmmmm...");
}

TEST_CASE("quote_body_start keeps UTF-8 whole", "[net]") {
  // "é" is two bytes; a cut after one byte would split it.
  CHECK(detail::quote_body_start("a\xC3\xA9z", 2) == "\"a\"...");
  CHECK(detail::quote_body_start("a\xC3\xA9z", 3) == "\"a\xC3\xA9\"...");
  CHECK(detail::quote_body_start("line\nbreak", 100) == "\"line\\nbreak\"");
}

TEST_CASE("HttpOptions validation", "[net]") {
  HttpOptions options;
  options.max_attempts = 0;
  CHECK_THROWS_WITH(HttpClient(options), Contains("max_attempts is 0"));
  options = HttpOptions{};
  options.read_timeout_s = 0.0;
  CHECK_THROWS_WITH(HttpClient(options), Contains("must be positive"));
  options = HttpOptions{};
  options.max_concurrent_requests = 0;
  CHECK_THROWS_AS(HttpClient(options), medfair::ConfigError);
}

TEST_CASE("HttpClient redacts the API key", "[net]") {
  ::setenv("MEDFAIR_TEST_NET_KEY", "sk-test-0123456789", 1);
  HttpOptions options;
  options.api_key_env = "MEDFAIR_TEST_NET_KEY";
  const HttpClient client(options);
  CHECK(client.has_api_key());
  CHECK(client.redact("key sk-test-0123456789 and sk-test-0123456789.") == "key [redacted] and [redacted].");
  ::unsetenv("MEDFAIR_TEST_NET_KEY");
  options.api_key_env = "MEDFAIR_TEST_NET_KEY_UNSET";
  CHECK_FALSE(HttpClient(options).has_api_key());
}

TEST_CASE("client options validation", "[net]") {
  EndpointOptions endpoint;
  CHECK_THROWS_WITH(OpenAIChatClient(endpoint), Contains("EndpointOptions.model is empty"));
  endpoint.model = "m";
  ScoringOptions scoring;
  scoring.max_tokens = 5;
  CHECK_THROWS_WITH(OpenAICompletionsClient(endpoint, scoring), Contains("ScoringOptions.max_tokens is 5"));

  const OpenAIChatClient chat(endpoint);
  CHECK(chat.url() == "http://127.0.0.1:8000/v1/chat/completions");
  GenerationParams params;
  params.n = 0;
  CHECK_THROWS_WITH(chat.build_request({{"user", "hi"}}, params), Contains("GenerationParams.n is 0"));
  CHECK_THROWS_AS(chat.build_request({}, GenerationParams{}), medfair::DataError);
}

TEST_CASE("request bodies", "[net]") {
  EndpointOptions endpoint;
  endpoint.base_url = "http://127.0.0.1:9/v1/";
  endpoint.model = "teacher";
  const OpenAIChatClient chat(endpoint);
  GenerationParams params;
  params.temperature = 0.7;
  params.seed = 11;
  params.stop = {"\n\n"};
  params.n = 3;
  const nlohmann::json body = chat.build_request({{"system", "s"}, {"user", "u"}}, params);
  CHECK(body["model"] == "teacher");
  CHECK(body["messages"].size() == 2);
  CHECK(body["messages"][1]["role"] == "user");
  CHECK(body["temperature"] == 0.7);
  CHECK(body["seed"] == 11);
  CHECK(body["stop"][0] == "\n\n");
  CHECK(body["n"] == 3);
  CHECK_FALSE(body.contains("top_p"));
  CHECK_FALSE(body.contains("max_tokens"));

  const OpenAICompletionsClient completions(endpoint);
  CHECK(completions.url() == "http://127.0.0.1:9/v1/completions");
  const nlohmann::json single = completions.build_scoring_request({"a b"});
  CHECK(single["prompt"] == "a b");
  CHECK(single["echo"] == true);
  CHECK(single["logprobs"] == 1);
  CHECK(single["max_tokens"] == 0);
  const nlohmann::json list = completions.build_scoring_request({"a", "b"});
  CHECK(list["prompt"].is_array());
  CHECK(list["prompt"].size() == 2);
}
