// libFuzzer target: response bodies from an OpenAI-compatible server go
// through the chat and completions parsers and continuation scoring. Any
// exception other than medfair::Error, any crash or sanitizer report is a bug.
//
// `make fuzz` builds it with the other targets (tests/fuzz/CMakeLists.txt) and
// runs it on a copy of tests/fuzz/corpus/http_response.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "medfair/error.hpp"
#include "medfair/log.hpp"
#include "medfair/net/openai.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = [] {
    medfair::log::set_level(medfair::log::Level::off);
    return true;
  }();
  (void)silenced;

  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const std::string url = "http://127.0.0.1:8000/v1/completions";
  try {
    medfair::net::parse_chat_response(body, url);
  } catch (const medfair::Error&) {
  }
  try {
    const auto choices = medfair::net::parse_completions_response(body, url);
    for (const auto& choice : choices) {
      // Split the echoed text at every few bytes to try many boundaries.
      for (std::size_t cut = 0; cut <= choice.text.size(); cut += 1 + choice.text.size() / 8) {
        for (const auto policy : {medfair::net::StraddlePolicy::include, medfair::net::StraddlePolicy::raise}) {
          medfair::net::ScoringOptions options;
          options.straddle = policy;
          try {
            medfair::net::score_continuation(choice, std::string_view(choice.text).substr(0, cut),
                                             std::string_view(choice.text).substr(cut), options);
          } catch (const medfair::Error&) {
          }
        }
      }
    }
  } catch (const medfair::Error&) {
  }
  medfair::net::detail::extract_error_message(body);
  medfair::net::detail::quote_body_start(body, size % 300);
  return 0;
}
