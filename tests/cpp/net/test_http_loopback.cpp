// HttpClient against a minimal HTTP server on 127.0.0.1 inside the test
// process, so the retry loop and the concurrency limit also run under the
// sanitizer builds (the Python tests cover the full fault matrix).

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "medfair/error.hpp"
#include "medfair/log.hpp"
#include "medfair/net/http_client.hpp"

using namespace medfair::net;
using Catch::Matchers::Contains;

namespace {

std::string http_response(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// Serves one request per connection: reads the headers and Content-Length
// bytes of body, waits hold_s, then writes handler(request_number) and closes.
class LoopbackServer {
 public:
  LoopbackServer(std::function<std::string(int)> handler, double hold_s = 0.0)
      : handler_(std::move(handler)), hold_s_(hold_s) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(::listen(listener_, 64) == 0);
    socklen_t length = sizeof(address);
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~LoopbackServer() {
    stop_.store(true);
    acceptor_.join();
    for (std::thread& worker : workers_) worker.join();
    ::close(listener_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1/test"; }
  int requests() const { return requests_.load(); }
  int max_in_flight() const { return max_in_flight_.load(); }

 private:
  void accept_loop() {
    while (!stop_.load()) {
      pollfd descriptor{listener_, POLLIN, 0};
      if (::poll(&descriptor, 1, 50) <= 0) continue;
      const int connection = ::accept(listener_, nullptr, nullptr);
      if (connection < 0) continue;
      workers_.emplace_back([this, connection] { serve(connection); });
    }
  }

  void serve(int connection) {
    std::string request;
    char buffer[4096];
    std::size_t header_end = std::string::npos;
    std::size_t content_length = 0;
    // Bounded by the 1 MiB request cap and the peer closing the connection.
    while (request.size() < (1u << 20)) {
      const ssize_t got = ::recv(connection, buffer, sizeof(buffer), 0);
      if (got <= 0) break;
      request.append(buffer, static_cast<std::size_t>(got));
      if (header_end == std::string::npos && (header_end = request.find("\r\n\r\n")) != std::string::npos) {
        const std::size_t field = request.find("Content-Length: ");
        if (field != std::string::npos && field < header_end) content_length = std::stoul(request.substr(field + 16));
      }
      if (header_end != std::string::npos && request.size() >= header_end + 4 + content_length) break;
    }

    const int number = ++requests_;
    const int now_in_flight = ++in_flight_;
    int previous = max_in_flight_.load();
    while (previous < now_in_flight && !max_in_flight_.compare_exchange_weak(previous, now_in_flight)) {
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(hold_s_));
    --in_flight_;

    const std::string response = handler_(number);
    ::send(connection, response.data(), response.size(), MSG_NOSIGNAL);
    ::close(connection);
  }

  std::function<std::string(int)> handler_;
  double hold_s_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

HttpOptions fast_retries() {
  HttpOptions options;
  options.backoff_initial_s = 0.01;
  options.backoff_max_s = 0.02;
  options.max_attempts = 4;
  options.api_key_env = "MEDFAIR_TEST_NET_NO_SUCH_KEY";
  return options;
}

}  // namespace

TEST_CASE("HttpClient retries 503 then succeeds", "[net]") {
  std::vector<std::string> logs;
  std::mutex logs_mutex;
  const auto previous_sink = medfair::log::set_sink([&](medfair::log::Level, std::string_view, std::string_view text) {
    std::lock_guard lock(logs_mutex);
    logs.emplace_back(text);
  });

  LoopbackServer server([](int number) {
    return number <= 2 ? http_response(503, R"({"error": {"message": "warming up"}})")
                       : http_response(200, R"({"ok": true})");
  });
  const HttpResponse response = HttpClient(fast_retries()).post_json(server.url(), {{"model", "m"}});
  medfair::log::set_sink(previous_sink);

  CHECK(response.status == 200);
  CHECK(response.body == R"({"ok": true})");
  CHECK(server.requests() == 3);
  REQUIRE(logs.size() == 2);
  CHECK_THAT(logs[0], Contains("attempt 1/4 failed: HTTP 503: warming up"));
  CHECK_THAT(logs[1], Contains("attempt 2/4 failed: HTTP 503"));
}

TEST_CASE("HttpClient 404 is not retried", "[net]") {
  LoopbackServer server([](int) { return http_response(404, R"({"error": "model \"x\" not found"})"); });
  CHECK_THROWS_WITH(HttpClient(fast_retries()).post_json(server.url(), {{"model", "x"}}),
                    Contains("failed on attempt 1/4 with HTTP 404: model \"x\" not found; check the base URL"));
  CHECK(server.requests() == 1);
}

TEST_CASE("HttpClient response size limit", "[net]") {
  LoopbackServer server([](int) { return http_response(200, std::string(5000, ' ') + "{}"); });
  HttpOptions options = fast_retries();
  options.max_response_bytes = 100;
  CHECK_THROWS_WITH(HttpClient(options).post_json(server.url(), nlohmann::json::object()),
                    Contains("larger than HttpOptions.max_response_bytes (100 bytes)"));
  CHECK(server.requests() == 1);
}

TEST_CASE("HttpClient concurrency limit across threads", "[net]") {
  LoopbackServer server([](int) { return http_response(200, "{}"); }, 0.1);
  HttpOptions options = fast_retries();
  options.max_concurrent_requests = 2;
  const HttpClient client(options);
  std::atomic<int> successes{0};
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 6; ++i) {
      threads.emplace_back([&] {
        if (client.post_json(server.url(), nlohmann::json::object()).status == 200) ++successes;
      });
    }
  }
  CHECK(successes.load() == 6);
  CHECK(server.requests() == 6);
  CHECK(server.max_in_flight() == 2);
}
