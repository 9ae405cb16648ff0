// Binds the HTTP client and the OpenAI-compatible clients. Network calls
// release the GIL, so Python threads can share one client and its
// concurrency limit.

#include <pybind11/stl.h>

#include "bindings.hpp"
#include "medfair/error.hpp"
#include "medfair/net/http_client.hpp"
#include "medfair/net/openai.hpp"

namespace medfair::python {

namespace {

using namespace medfair::net;

// Adds a keyword constructor to an options struct: Options(field=value, ...)
// sets each named attribute and raises TypeError for an unknown name.
template <typename Options, typename Class>
void add_keyword_init(Class& cls) {
  cls.def(py::init([](const py::kwargs& kwargs) {
    py::object self = py::cast(Options{});
    for (const auto& [key, value] : kwargs) {
      const auto name = py::cast<std::string>(key);
      if (!py::hasattr(self, name.c_str())) {
        throw py::type_error(py::str("{}() got an unexpected keyword argument '{}'")
                                 .format(py::type::of(self).attr("__name__"), name));
      }
      self.attr(name.c_str()) = value;
    }
    return self.cast<Options>();
  }));
}

// Accepts messages as dicts {"role": ..., "content": ...} or as objects with
// role and content attributes.
Conversation to_conversation(const py::handle& messages) {
  Conversation conversation;
  for (const py::handle item : messages) {
    ChatMessage message;
    if (py::isinstance<py::dict>(item)) {
      const auto dict = py::reinterpret_borrow<py::dict>(item);
      if (!dict.contains("role") || !dict.contains("content")) {
        throw DataError("a chat message dict needs the keys \"role\" and \"content\"");
      }
      message.role = py::cast<std::string>(dict["role"]);
      message.content = py::cast<std::string>(dict["content"]);
    } else {
      message.role = py::cast<std::string>(item.attr("role"));
      message.content = py::cast<std::string>(item.attr("content"));
    }
    conversation.push_back(std::move(message));
  }
  return conversation;
}

void bind_options(py::module_& m) {
  py::class_<HttpOptions> http_options(m, "HttpOptions", "Timeouts (seconds), retries, concurrency limit and API key variable of an HTTP client.");
  add_keyword_init<HttpOptions>(http_options);
  http_options.def_readwrite("connect_timeout_s", &HttpOptions::connect_timeout_s)
      .def_readwrite("read_timeout_s", &HttpOptions::read_timeout_s)
      .def_readwrite("max_attempts", &HttpOptions::max_attempts)
      .def_readwrite("backoff_initial_s", &HttpOptions::backoff_initial_s)
      .def_readwrite("backoff_max_s", &HttpOptions::backoff_max_s)
      .def_readwrite("retry_after_max_s", &HttpOptions::retry_after_max_s)
      .def_readwrite("jitter_seed", &HttpOptions::jitter_seed)
      .def_readwrite("max_concurrent_requests", &HttpOptions::max_concurrent_requests)
      .def_readwrite("api_key_env", &HttpOptions::api_key_env)
      .def_readwrite("max_response_bytes", &HttpOptions::max_response_bytes);

  py::class_<EndpointOptions> endpoint_options(m, "EndpointOptions", "Base URL, model name and HTTP options of an OpenAI-compatible endpoint.");
  add_keyword_init<EndpointOptions>(endpoint_options);
  endpoint_options.def_readwrite("base_url", &EndpointOptions::base_url)
      .def_readwrite("model", &EndpointOptions::model)
      .def_readwrite("http", &EndpointOptions::http);

  py::class_<GenerationParams> generation_params(m, "GenerationParams", "Sampling parameters; None leaves a field to the server's default.");
  add_keyword_init<GenerationParams>(generation_params);
  generation_params.def_readwrite("temperature", &GenerationParams::temperature)
      .def_readwrite("top_p", &GenerationParams::top_p)
      .def_readwrite("max_tokens", &GenerationParams::max_tokens)
      .def_readwrite("seed", &GenerationParams::seed)
      .def_readwrite("stop", &GenerationParams::stop)
      .def_readwrite("n", &GenerationParams::n);

  py::enum_<StraddlePolicy>(m, "StraddlePolicy")
      .value("include", StraddlePolicy::include)
      .value("exclude", StraddlePolicy::exclude)
      .value("raise_error", StraddlePolicy::raise);

  py::class_<ScoringOptions> scoring_options(m, "ScoringOptions", "Settings of continuation scoring through echoed prompt log-probabilities.");
  add_keyword_init<ScoringOptions>(scoring_options);
  scoring_options.def_readwrite("max_tokens", &ScoringOptions::max_tokens)
      .def_readwrite("straddle", &ScoringOptions::straddle)
      .def_readwrite("max_prompts_per_request", &ScoringOptions::max_prompts_per_request);
}

void bind_results(py::module_& m) {
  py::class_<GeneratedText>(m, "GeneratedText")
      .def_readonly("text", &GeneratedText::text)
      .def_readonly("finish_reason", &GeneratedText::finish_reason)
      .def("__repr__", [](const GeneratedText& g) {
        return py::str("GeneratedText(text={!r}, finish_reason={!r})").format(g.text, g.finish_reason);
      });

  py::class_<ContinuationScore>(m, "ContinuationScore")
      .def_readonly("logprob", &ContinuationScore::logprob)
      .def_readonly("tokens", &ContinuationScore::tokens)
      .def_readonly("token_logprobs", &ContinuationScore::token_logprobs)
      .def_readonly("straddles_boundary", &ContinuationScore::straddles_boundary)
      .def("__repr__", [](const ContinuationScore& s) {
        return py::str("ContinuationScore(logprob={}, tokens={!r})").format(s.logprob, s.tokens);
      });
}

void bind_clients(py::module_& m) {
  py::class_<HttpClient>(m, "HttpClient", "JSON POST client with retries, backoff and a concurrency limit.")
      .def(py::init<HttpOptions>(), py::arg("options") = HttpOptions{})
      .def(
          "post_json",
          [](const HttpClient& client, const std::string& url, const std::string& body) {
            nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
            if (parsed.is_discarded()) throw DataError("HttpClient.post_json: body is not valid JSON text");
            py::gil_scoped_release release;
            HttpResponse response = client.post_json(url, parsed);
            return std::make_pair(response.status, std::move(response.body));
          },
          py::arg("url"), py::arg("body"),
          "POST the JSON text `body` to `url`; return (status, response body) of the 2xx response.")
      .def_property_readonly("options", &HttpClient::options)
      .def_property_readonly("has_api_key", &HttpClient::has_api_key);

  py::class_<OpenAIChatClient>(m, "OpenAIChatClient", "Client of {base_url}/chat/completions.")
      .def(py::init<EndpointOptions>(), py::arg("options"))
      .def(
          "complete",
          [](const OpenAIChatClient& client, const py::handle& messages, const GenerationParams& params) {
            const Conversation conversation = to_conversation(messages);
            py::gil_scoped_release release;
            return client.complete(conversation, params);
          },
          py::arg("messages"), py::arg("params") = GenerationParams{},
          "Send one conversation (a list of {'role', 'content'} dicts); return the generated choices.")
      .def_property_readonly("options", &OpenAIChatClient::options)
      .def_property_readonly("url", &OpenAIChatClient::url);

  py::class_<OpenAICompletionsClient>(m, "OpenAICompletionsClient",
                                      "Client of {base_url}/completions: generation and continuation scoring.")
      .def(py::init<EndpointOptions, ScoringOptions>(), py::arg("options"), py::arg("scoring") = ScoringOptions{})
      .def("complete", &OpenAICompletionsClient::complete, py::arg("prompt"), py::arg("params") = GenerationParams{},
           py::call_guard<py::gil_scoped_release>(), "Generate text after a raw prompt; return the choices.")
      .def("score", &OpenAICompletionsClient::score, py::arg("prompt"), py::arg("continuations"),
           py::call_guard<py::gil_scoped_release>(),
           "Return log P(continuation | prompt) for each continuation, from echoed prompt log-probabilities.")
      .def(
          "score_many",
          [](const OpenAICompletionsClient& client,
             const std::vector<std::pair<std::string, std::vector<std::string>>>& items) {
            std::vector<ScoringItem> scoring_items;
            scoring_items.reserve(items.size());
            for (const auto& [prompt, continuations] : items) scoring_items.push_back({prompt, continuations});
            py::gil_scoped_release release;
            return client.score_many(scoring_items);
          },
          py::arg("items"), "Score a list of (prompt, [continuation, ...]) pairs in batched requests.")
      .def_property_readonly("options", &OpenAICompletionsClient::options)
      .def_property_readonly("scoring_options", &OpenAICompletionsClient::scoring_options)
      .def_property_readonly("url", &OpenAICompletionsClient::url);

  m.def(
      "sample_answers",
      [](const OpenAIChatClient& client, const py::list& conversations, int n, const GenerationParams& params) {
        std::vector<Conversation> converted;
        converted.reserve(conversations.size());
        for (const py::handle conversation : conversations) converted.push_back(to_conversation(conversation));
        py::gil_scoped_release release;
        return sample_answers(client, converted, n, params);
      },
      py::arg("client"), py::arg("conversations"), py::arg("n"), py::arg("params") = GenerationParams{},
      "Sample n answers per conversation; return a list of n texts per conversation.");
  m.def(
      "sample_answers",
      [](const OpenAICompletionsClient& client, const std::vector<std::string>& prompts, int n,
         const GenerationParams& params) {
        py::gil_scoped_release release;
        return sample_answers(client, prompts, n, params);
      },
      py::arg("client"), py::arg("prompts"), py::arg("n"), py::arg("params") = GenerationParams{},
      "Sample n completions per raw prompt; return a list of n texts per prompt.");
}

}  // namespace

void bind_net(py::module_& m) {
  bind_options(m);
  bind_results(m);
  bind_clients(m);
}

}  // namespace medfair::python
