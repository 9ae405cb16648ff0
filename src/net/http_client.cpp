#include "medfair/net/http_client.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "medfair/error.hpp"
#include "medfair/log.hpp"

namespace medfair::net {

namespace {

constexpr std::string_view kLogWhere = "HttpClient";
constexpr std::string_view kRedacted = "[redacted]";

void ensure_curl_initialised() {
  static std::once_flag flag;
  std::call_once(flag, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string trim(std::string_view text) {
  std::size_t begin = 0;
  std::size_t end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return std::string(text.substr(begin, end - begin));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The outcome of one attempt, before it is classified as success, retryable
// failure or final failure.
struct Attempt {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::optional<std::string> retry_after;
  std::string curl_message;
  std::size_t max_body_bytes = 0;
  bool body_too_large = false;
  // Read timeout bookkeeping for check_read_timeout().
  CURL* handle = nullptr;
  std::chrono::steady_clock::time_point started;
  double read_timeout_s = 0.0;
  bool read_timed_out = false;
};

std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* attempt = static_cast<Attempt*>(user);
  const std::size_t bytes = size * count;
  if (attempt->body.size() + bytes > attempt->max_body_bytes) {
    attempt->body_too_large = true;
    return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
  }
  attempt->body.append(data, bytes);
  return bytes;
}

// libcurl calls this once per header line, for every response it reads
// (including interim 1xx ones), so a status line starts a fresh header set.
std::size_t read_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* attempt = static_cast<Attempt*>(user);
  const std::size_t bytes = size * count;
  std::string_view line(data, bytes);
  if (line.starts_with("HTTP/")) {
    attempt->retry_after.reset();
    return bytes;
  }
  const std::size_t colon = line.find(':');
  if (colon != std::string_view::npos && iequals(trim(line.substr(0, colon)), "retry-after")) {
    attempt->retry_after = trim(line.substr(colon + 1));
  }
  return bytes;
}

// libcurl's progress callback: aborts the transfer once more than
// read_timeout_s has passed since the connection was established. libcurl
// calls it on activity and at least about once per second while idle, so the
// timeout fires up to about a second late.
int check_read_timeout(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* attempt = static_cast<Attempt*>(user);
  curl_off_t connect_us = 0;
  if (curl_easy_getinfo(attempt->handle, CURLINFO_CONNECT_TIME_T, &connect_us) != CURLE_OK || connect_us <= 0) {
    return 0;
  }
  const double since_connect_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - attempt->started).count() -
      static_cast<double>(connect_us) / 1e6;
  if (since_connect_s > attempt->read_timeout_s) {
    attempt->read_timed_out = true;
    return 1;  // makes libcurl stop with CURLE_ABORTED_BY_CALLBACK
  }
  return 0;
}

bool is_retryable_transport_error(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

bool is_retryable_status(long status) { return status == 429 || (status >= 500 && status <= 599); }

std::string advice_for_status(long status, const std::string& api_key_env) {
  if (status == 401 || status == 403) {
    return fmt::format("check the API key in the environment variable {}", api_key_env);
  }
  if (status == 404) return "check the base URL and the model name";
  return "check the request parameters and the model name";
}

}  // namespace

struct HttpClient::State {
  HttpOptions options;
  std::string api_key;

  std::mutex slots_mutex;
  std::condition_variable slots_free;
  int in_flight = 0;

  std::mutex rng_mutex;
  std::mt19937_64 rng;

  void acquire_slot() {
    std::unique_lock lock(slots_mutex);
    slots_free.wait(lock, [&] { return in_flight < options.max_concurrent_requests; });
    ++in_flight;
  }

  void release_slot() {
    {
      std::lock_guard lock(slots_mutex);
      --in_flight;
    }
    slots_free.notify_one();
  }

  double jittered_backoff(int retry_index) {
    const double cap = std::min(options.backoff_max_s, options.backoff_initial_s * std::ldexp(1.0, retry_index));
    std::lock_guard lock(rng_mutex);
    return std::uniform_real_distribution<double>(0.0, std::max(cap, 0.0))(rng);
  }

  // Holds one concurrency slot for the lifetime of the guard.
  class SlotGuard {
   public:
    explicit SlotGuard(State& state) : state_(state) { state_.acquire_slot(); }
    ~SlotGuard() { state_.release_slot(); }
    SlotGuard(const SlotGuard&) = delete;
    SlotGuard& operator=(const SlotGuard&) = delete;

   private:
    State& state_;
  };

  Attempt perform(const std::string& url, const std::string& payload) const;
};

Attempt HttpClient::State::perform(const std::string& url, const std::string& payload) const {
  Attempt attempt;
  attempt.max_body_bytes = options.max_response_bytes;

  // One easy handle per thread, reset before each use: the handle keeps its
  // connection cache, so consecutive requests from a thread to the same
  // server reuse the connection (and its TLS session) when the server allows.
  thread_local std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> handle(nullptr, curl_easy_cleanup);
  if (handle) {
    curl_easy_reset(handle.get());
  } else {
    handle.reset(curl_easy_init());
  }
  if (!handle) {
    attempt.code = CURLE_FAILED_INIT;
    attempt.curl_message = "curl_easy_init failed";
    return attempt;
  }

  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip for large bodies
  std::string authorization;
  if (!api_key.empty()) {
    authorization = "Authorization: Bearer " + api_key;
    headers = curl_slist_append(headers, authorization.c_str());
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers, curl_slist_free_all);

  char error_buffer[CURL_ERROR_SIZE] = {0};
  CURL* curl = handle.get();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // libcurl's timeouts must not use signals in threads
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout_s * 1000.0));
  // A backstop for the read timeout that check_read_timeout() enforces.
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>((options.connect_timeout_s + options.read_timeout_s) * 1000.0));
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &attempt);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, read_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &attempt);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  attempt.handle = curl;
  attempt.read_timeout_s = options.read_timeout_s;
  attempt.started = std::chrono::steady_clock::now();
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, check_read_timeout);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &attempt);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);

  attempt.code = curl_easy_perform(curl);
  attempt.handle = nullptr;
  // The buffers set above live on this stack frame only.
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  if (attempt.read_timed_out) {
    attempt.code = CURLE_OPERATION_TIMEDOUT;
    error_buffer[0] = '\0';
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &attempt.status);
  if (attempt.code != CURLE_OK) {
    attempt.curl_message = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(attempt.code);
  }
  return attempt;
}

HttpClient::HttpClient(HttpOptions options) : state_(std::make_shared<State>()) {
  if (options.max_attempts < 1) {
    throw ConfigError(fmt::format("HttpOptions.max_attempts is {}; expected at least 1", options.max_attempts));
  }
  if (!(options.connect_timeout_s > 0.0) || !(options.read_timeout_s > 0.0)) {
    throw ConfigError(fmt::format(
        "HttpOptions.connect_timeout_s ({}) and read_timeout_s ({}) must be positive numbers of seconds",
        options.connect_timeout_s, options.read_timeout_s));
  }
  if (!(options.backoff_initial_s >= 0.0) || !(options.backoff_max_s >= 0.0) || !(options.retry_after_max_s >= 0.0)) {
    throw ConfigError("HttpOptions.backoff_initial_s, backoff_max_s and retry_after_max_s must be >= 0 seconds");
  }
  if (options.max_concurrent_requests < 1) {
    throw ConfigError(fmt::format("HttpOptions.max_concurrent_requests is {}; expected at least 1",
                                  options.max_concurrent_requests));
  }
  ensure_curl_initialised();
  if (!options.api_key_env.empty()) {
    if (const char* key = std::getenv(options.api_key_env.c_str())) state_->api_key = key;
  }
  state_->rng.seed(options.jitter_seed);
  state_->options = std::move(options);
}

const HttpOptions& HttpClient::options() const { return state_->options; }

bool HttpClient::has_api_key() const { return !state_->api_key.empty(); }

std::string HttpClient::redact(std::string text) const {
  const std::string& key = state_->api_key;
  if (key.empty()) return text;
  for (std::size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + kRedacted.size())) {
    text.replace(at, key.size(), kRedacted);
  }
  return text;
}

HttpResponse HttpClient::post_json(const std::string& url, const nlohmann::json& body) const {
  State& state = *state_;
  const HttpOptions& options = state.options;
  const std::string shown_url = detail::redact_url(url);
  const std::string payload = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);

  for (int attempt_number = 1;; ++attempt_number) {
    Attempt attempt;
    {
      State::SlotGuard slot(state);
      attempt = state.perform(url, payload);
    }

    std::string failure;
    // Logs a final failure with the attempt number and throws it.
    auto fail = [&](const std::string& text) {
      const std::string message = redact(text);
      log::error(kLogWhere, message);
      throw EndpointError(message);
    };

    bool retryable = false;
    if (attempt.code == CURLE_OK) {
      if (attempt.status >= 200 && attempt.status <= 299) return HttpResponse{attempt.status, std::move(attempt.body)};
      failure = fmt::format("HTTP {}: {}", attempt.status, detail::extract_error_message(attempt.body));
      retryable = is_retryable_status(attempt.status);
      if (!retryable) {
        fail(fmt::format("POST {} failed on attempt {}/{} with {}; {}", shown_url, attempt_number,
                         options.max_attempts, failure, advice_for_status(attempt.status, options.api_key_env)));
      }
    } else if (attempt.body_too_large) {
      fail(fmt::format("POST {} failed on attempt {}/{}: the response is larger than "
                       "HttpOptions.max_response_bytes ({} bytes); raise the limit or request fewer tokens",
                       shown_url, attempt_number, options.max_attempts, options.max_response_bytes));
    } else if (attempt.code == CURLE_OPERATION_TIMEDOUT) {
      failure = fmt::format("timed out ({}; limits: connect {} s, read {} s)",
                            attempt.read_timed_out ? "no complete response within the read timeout"
                                                   : attempt.curl_message,
                            options.connect_timeout_s, options.read_timeout_s);
      retryable = true;
    } else {
      failure = fmt::format("connection error ({}: {})", curl_easy_strerror(attempt.code), attempt.curl_message);
      retryable = is_retryable_transport_error(attempt.code);
      if (!retryable) {
        fail(fmt::format("POST {} failed on attempt {}/{}: {}; check the URL and that the server is reachable",
                         shown_url, attempt_number, options.max_attempts, failure));
      }
    }

    if (attempt_number >= options.max_attempts) {
      fail(fmt::format("POST {} failed after {} attempt(s); last error: {}. Check that the server is up, or raise "
                       "HttpOptions.max_attempts or the timeouts",
                       shown_url, attempt_number, failure));
    }

    double delay_s = state.jittered_backoff(attempt_number - 1);
    std::string delay_source = "backoff";
    if (attempt.retry_after) {
      if (auto seconds = detail::parse_retry_after(*attempt.retry_after, std::chrono::system_clock::now())) {
        delay_s = std::min(*seconds, options.retry_after_max_s);
        delay_source = "Retry-After";
      }
    }
    log::warning(kLogWhere, redact(fmt::format("POST {} attempt {}/{} failed: {}; retrying in {:.3f} s ({})",
                                               shown_url, attempt_number, options.max_attempts, failure, delay_s,
                                               delay_source)));
    std::this_thread::sleep_for(std::chrono::duration<double>(delay_s));
  }
}

namespace detail {

std::string redact_url(const std::string& url) {
  ensure_curl_initialised();
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> handle(curl_url(), curl_url_cleanup);
  if (!handle || curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "<invalid URL>";
  curl_url_set(handle.get(), CURLUPART_USER, nullptr, 0);
  curl_url_set(handle.get(), CURLUPART_PASSWORD, nullptr, 0);
  curl_url_set(handle.get(), CURLUPART_QUERY, nullptr, 0);
  curl_url_set(handle.get(), CURLUPART_FRAGMENT, nullptr, 0);
  char* rebuilt = nullptr;
  if (curl_url_get(handle.get(), CURLUPART_URL, &rebuilt, 0) != CURLUE_OK || rebuilt == nullptr) {
    return "<invalid URL>";
  }
  std::string result(rebuilt);
  curl_free(rebuilt);
  return result;
}

std::optional<double> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
  const std::string text = trim(value);
  if (text.empty()) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; })) {
    char* end = nullptr;
    const double seconds = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !std::isfinite(seconds)) return std::nullopt;
    return seconds;
  }
  // HTTP-date (RFC 9110, section 5.6.7), parsed by libcurl.
  const std::time_t when = curl_getdate(text.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  const double seconds =
      std::chrono::duration<double>(std::chrono::system_clock::from_time_t(when) - now).count();
  return std::max(seconds, 0.0);
}

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  std::string_view start = text.substr(0, max_bytes);
  // Do not cut a UTF-8 sequence in half.
  if (start.size() < text.size()) {
    while (!start.empty() && (static_cast<unsigned char>(text[start.size()]) & 0xC0) == 0x80) {
      start.remove_suffix(1);
    }
  }
  return start;
}

std::string quote_body_start(std::string_view body, std::size_t max_chars) {
  const std::string_view start = utf8_prefix(body, max_chars);
  std::string quoted =
      nlohmann::json(std::string(start)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (start.size() < body.size()) quoted += "...";
  return quoted;
}

std::string extract_error_message(std::string_view body, std::size_t max_chars) {
  const nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const nlohmann::json* text = nullptr;
  if (parsed.is_object()) {
    if (auto error = parsed.find("error"); error != parsed.end()) {
      if (error->is_string()) {
        text = &*error;
      } else if (error->is_object()) {
        if (auto message = error->find("message"); message != error->end() && message->is_string()) text = &*message;
      }
    }
    if (text == nullptr) {
      if (auto message = parsed.find("message"); message != parsed.end() && message->is_string()) text = &*message;
    }
  }
  if (text == nullptr) {
    return body.empty() ? std::string("(empty body)") : "body " + quote_body_start(body, max_chars);
  }
  const std::string& message = text->get_ref<const std::string&>();
  if (message.size() <= max_chars) return message;
  return std::string(utf8_prefix(message, max_chars)) + "...";
}

}  // namespace detail

}  // namespace medfair::net
