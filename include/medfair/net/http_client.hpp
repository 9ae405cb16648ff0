#pragma once
// A JSON-over-HTTP client for OpenAI-compatible endpoints: POST with connect
// and read timeouts, retries with exponential backoff and full jitter, a
// per-client concurrency limit and an API key taken from the environment.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace medfair::net {

/// Settings of an HttpClient. Times are in seconds.
struct HttpOptions {
  /// Max time to establish the TCP connection, per attempt (default 10 s).
  double connect_timeout_s = 10.0;
  /// Max time from connecting to the end of the response, per attempt
  /// (default 600 s). libcurl checks it on activity and about once per second
  /// while idle, so it can fire up to about a second late.
  double read_timeout_s = 600.0;
  /// Max attempts per request, the first one included (default 5; 1 disables retries).
  int max_attempts = 5;
  /// Backoff cap of the first retry (default 0.5 s). The cap doubles per retry
  /// and the delay is drawn uniformly from [0, cap] ("full jitter").
  double backoff_initial_s = 0.5;
  /// Max backoff cap (default 30 s).
  double backoff_max_s = 30.0;
  /// Max wait honoured from a Retry-After header (default 60 s); longer values are cut to this.
  double retry_after_max_s = 60.0;
  /// Seed of the jitter generator (default 0), so the retry delays of a
  /// single-threaded caller are reproducible.
  std::uint64_t jitter_seed = 0;
  /// Max requests in flight at once across all threads that share this client (default 8).
  int max_concurrent_requests = 8;
  /// Name of the environment variable that contains the API key (default
  /// OPENAI_API_KEY). When it is unset or empty, no Authorization header is sent.
  std::string api_key_env = "OPENAI_API_KEY";
  /// Max size of a response body (default 64 MiB); a larger one fails the request.
  std::size_t max_response_bytes = 64u << 20;
};

/// A response with a 2xx status.
struct HttpResponse {
  long status = 0;
  std::string body;
};

/// Thread-safe POST client. Copies share the concurrency limit, the jitter
/// generator and the API key. The key is stored outside HttpOptions, so the
/// options object can be logged or serialised without leaking it.
class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});

  /// Sends `body` as JSON to `url` and returns the 2xx response. Retries
  /// timeouts, connection errors, HTTP 429 and 5xx up to max_attempts, after
  /// the Retry-After delay when the response has one. Throws EndpointError at
  /// once for other statuses (3xx, other 4xx), a body over max_response_bytes
  /// and non-transient libcurl errors, and after the last failed attempt.
  HttpResponse post_json(const std::string& url, const nlohmann::json& body) const;

  const HttpOptions& options() const;

  /// Returns whether the environment variable contained an API key at construction.
  bool has_api_key() const;

  /// Replaces every occurrence of the API key in `text` with "[redacted]".
  std::string redact(std::string text) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

namespace detail {

/// Returns `url` without user name, password, query and fragment, for log lines
/// and error messages. Returns "<invalid URL>" when libcurl cannot parse it.
std::string redact_url(const std::string& url);

/// Parses a Retry-After header value: delta seconds ("120", "1.5") or an
/// HTTP-date relative to `now`. Returns nullopt for an unparsable value.
/// A date in the past gives zero.
std::optional<double> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now);

/// Returns the error text of an error response body, at most `max_chars`
/// bytes. It looks for `error.message` (OpenAI), a string `error` (Ollama)
/// and a top-level `message` (older vLLM), else quotes the start of the body.
std::string extract_error_message(std::string_view body, std::size_t max_chars = 300);

/// Returns the longest prefix of `text` of at most `max_bytes` bytes that does
/// not end inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);

/// Returns the first `max_chars` bytes of `body` as a quoted string, with "..."
/// when it was cut, for error messages about unusable responses.
std::string quote_body_start(std::string_view body, std::size_t max_chars = 200);

}  // namespace detail

}  // namespace medfair::net
