// Binds batched text generation (medfair::generate) and its options.

#include <pybind11/stl.h>

#include "bindings.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/models/generation.hpp"

namespace medfair::python {

void bind_generation(py::module_& m) {
  py::class_<SamplingOptions> options(m, "SamplingOptions",
                                      "Settings of generate(): max_new_tokens, temperature (0 = greedy), top_p, "
                                      "top_k (0 = off), repetition_penalty, stop strings, stop_at_eos, seed, "
                                      "batch_size.");
  options
      .def(py::init([](const py::kwargs& kwargs) {
        py::object self = py::cast(SamplingOptions{});
        for (const auto& [key, value] : kwargs) {
          const auto name = py::cast<std::string>(key);
          if (!py::hasattr(self, name.c_str())) {
            throw py::type_error(py::str("SamplingOptions() got an unexpected keyword argument '{}'").format(name));
          }
          self.attr(name.c_str()) = value;
        }
        return self.cast<SamplingOptions>();
      }))
      .def_readwrite("max_new_tokens", &SamplingOptions::max_new_tokens)
      .def_readwrite("temperature", &SamplingOptions::temperature)
      .def_readwrite("top_p", &SamplingOptions::top_p)
      .def_readwrite("top_k", &SamplingOptions::top_k)
      .def_readwrite("repetition_penalty", &SamplingOptions::repetition_penalty)
      .def_readwrite("stop", &SamplingOptions::stop)
      .def_readwrite("stop_at_eos", &SamplingOptions::stop_at_eos)
      .def_readwrite("seed", &SamplingOptions::seed)
      .def_readwrite("batch_size", &SamplingOptions::batch_size)
      .def("__repr__", [](const SamplingOptions& o) {
        return py::str("SamplingOptions(max_new_tokens={}, temperature={}, top_p={}, top_k={}, "
                       "repetition_penalty={}, stop={}, stop_at_eos={}, seed={}, batch_size={})")
            .format(o.max_new_tokens, o.temperature, o.top_p, o.top_k, o.repetition_penalty, o.stop, o.stop_at_eos,
                    o.seed, o.batch_size);
      });

  py::class_<Generation>(m, "Generation", "One generated continuation.")
      .def_readonly("token_ids", &Generation::token_ids)
      .def_readonly("text", &Generation::text)
      .def_property_readonly("finish_reason",
                             [](const Generation& g) { return std::string(finish_reason_name(g.finish_reason)); })
      .def("__repr__", [](const Generation& g) {
        return py::str("Generation(text={!r}, finish_reason='{}', tokens={})")
            .format(g.text, std::string(finish_reason_name(g.finish_reason)), g.token_ids.size());
      });

  m.def(
      "generate",
      [](const CausalLM& model, const std::vector<std::vector<int64_t>>& prompt_ids,
         const std::optional<SamplingOptions>& options, const std::optional<std::vector<uint64_t>>& seeds) {
        SamplingOptions resolved = options.value_or(SamplingOptions{});
        py::gil_scoped_release release;
        return seeds ? generate(model, prompt_ids, resolved, *seeds) : generate(model, prompt_ids, resolved);
      },
      py::arg("model"), py::arg("prompt_ids"), py::arg("options") = py::none(), py::arg("seeds") = py::none(),
      "Generate a continuation of each prompt (token ids from CausalLM.encode_prompt), decoded together with left "
      "padding and the KV cache. Row i draws from a generator seeded with seeds[i], or with a seed derived from "
      "options.seed and i.");
  m.def("end_of_sequence_ids", &end_of_sequence_ids, py::arg("model"),
        "Token ids that end generation: EOS and the chat formats' end-of-turn tokens.");
}

}  // namespace medfair::python
