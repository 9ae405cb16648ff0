// LoRA adapters on CausalLM: attaching, reading and writing them in Hugging
// Face PEFT's format, and exporting the merged weights.
//
// PEFT layout (peft 0.21, tuners/lora and utils/save_and_load.py):
// adapter_config.json holds the LoraConfig fields, and adapter_model.safetensors
// holds base_model.model.<module path>.lora_A.weight [r, in] and .lora_B.weight
// [out, r] for every adapted module, without the adapter's name ("default").

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "causal_lm_impl.hpp"
#include "medfair/error.hpp"
#include "medfair/io/atomic_file.hpp"
#include "medfair/io/safetensors.hpp"
#include "medfair/models/lora.hpp"

namespace medfair {

// ---- Options -------------------------------------------------------------------

const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names = {"q_proj",    "k_proj", "v_proj",   "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

double LoraOptions::scaling() const {
  // rsLoRA (Kalajdzievski 2023) divides by sqrt(r) so the update's scale does
  // not shrink as the rank grows.
  return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

void LoraOptions::validate() const {
  if (r <= 0) throw ConfigError(fmt::format("LoraOptions.r is {}; the rank must be a positive integer", r));
  if (!(dropout >= 0.0 && dropout < 1.0)) {
    throw ConfigError(fmt::format("LoraOptions.dropout is {}; use a probability in [0, 1)", dropout));
  }
  if (target_modules.empty()) {
    throw ConfigError(fmt::format("LoraOptions.target_modules is empty; choose from {}",
                                  fmt::join(lora_target_names(), ", ")));
  }
  std::set<std::string> seen;
  for (const std::string& name : target_modules) {
    const auto& known = lora_target_names();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      throw ConfigError(fmt::format("LoraOptions.target_modules contains \"{}\"; choose from {}", name,
                                    fmt::join(known, ", ")));
    }
    if (!seen.insert(name).second) {
      throw ConfigError(fmt::format("LoraOptions.target_modules lists \"{}\" twice", name));
    }
  }
}

// ---- Module lookup ---------------------------------------------------------------

namespace detail {

const Linear& projection(const DecoderLayer& layer, const std::string& name) {
  if (name == "q_proj") return layer.q_proj;
  if (name == "k_proj") return layer.k_proj;
  if (name == "v_proj") return layer.v_proj;
  if (name == "o_proj") return layer.o_proj;
  if (name == "gate_proj") return layer.gate_proj;
  if (name == "up_proj") return layer.up_proj;
  if (name == "down_proj") return layer.down_proj;
  throw ConfigError(fmt::format("\"{}\" is not a projection of a decoder layer; choose from {}", name,
                                fmt::join(lora_target_names(), ", ")));
}

Linear& projection(DecoderLayer& layer, const std::string& name) {
  return const_cast<Linear&>(projection(static_cast<const DecoderLayer&>(layer), name));
}

}  // namespace detail

namespace {

// Module path of a projection under transformers' LlamaForCausalLM.
std::string module_path(size_t layer, const std::string& name) {
  const bool attention = name == "q_proj" || name == "k_proj" || name == "v_proj" || name == "o_proj";
  return fmt::format("model.layers.{}.{}.{}", layer, attention ? "self_attn" : "mlp", name);
}

std::string peft_key(size_t layer, const std::string& name, char matrix) {
  return fmt::format("base_model.model.{}.lora_{}.weight", module_path(layer, name), matrix);
}

// Runs `visit(layer_index, name, linear)` over every adapted projection, in
// layer order and then in lora_target_names() order.
template <typename Weights, typename Visit>
void for_each_adapter(Weights& weights, Visit&& visit) {
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    for (const std::string& name : lora_target_names()) {
      auto& linear = detail::projection(weights.layers[i], name);
      if (linear.lora) visit(i, name, linear);
    }
  }
}

void require_lora(const CausalLM::Impl& impl, std::string_view operation) {
  if (!impl.has_lora) {
    throw ConfigError(fmt::format("CausalLM.{}: {} has no LoRA adapters; call add_lora() or load it with "
                                  "LoadOptions.adapter first",
                                  operation, impl.source.string()));
  }
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw IOError(fmt::format("cannot open {}", path.string()));
  return std::string(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
}

// Parses the fields of a PEFT adapter_config.json that medfair implements and
// rejects the features it does not (DoRA, per-layer ranks, extra modules).
LoraOptions parse_adapter_config(const std::filesystem::path& path) {
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_text(path));
  } catch (const nlohmann::json::exception& error) {
    throw FormatError(fmt::format("{}: invalid JSON: {}", path.string(), error.what()));
  }
  if (!config.is_object()) throw FormatError(fmt::format("{}: expected a JSON object", path.string()));
  auto string_field = [&](const char* key, const std::string& fallback) {
    auto it = config.find(key);
    return it != config.end() && it->is_string() ? it->get<std::string>() : fallback;
  };
  if (std::string type = string_field("peft_type", ""); type != "LORA") {
    throw ConfigError(fmt::format("{}: peft_type is \"{}\"; medfair loads LORA adapters only", path.string(), type));
  }
  auto reject_if_set = [&](const char* key, const char* what) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) return;
    const bool set = (it->is_boolean() && it->get<bool>()) || (it->is_object() && !it->empty()) ||
                     (it->is_array() && !it->empty()) || it->is_number();
    if (set) {
      throw ConfigError(fmt::format("{}: {} is set; medfair does not implement {}", path.string(), key, what));
    }
  };
  reject_if_set("use_dora", "DoRA");
  reject_if_set("fan_in_fan_out", "transposed (Conv1D) weights");
  reject_if_set("rank_pattern", "per-module ranks");
  reject_if_set("alpha_pattern", "per-module alphas");
  reject_if_set("modules_to_save", "fully trained extra modules");
  reject_if_set("layers_to_transform", "adapters on a subset of layers");
  if (std::string bias = string_field("bias", "none"); bias != "none") {
    throw ConfigError(fmt::format("{}: bias is \"{}\"; medfair implements bias \"none\" only", path.string(), bias));
  }

  LoraOptions options;
  try {
    options.r = config.at("r").get<int64_t>();
    options.alpha = config.value("lora_alpha", static_cast<double>(options.r));
    options.dropout = config.value("lora_dropout", 0.0);
    options.use_rslora = config.value("use_rslora", false);
  } catch (const nlohmann::json::exception& error) {
    throw FormatError(fmt::format("{}: invalid or missing field: {}", path.string(), error.what()));
  }
  auto targets = config.find("target_modules");
  if (targets == config.end() || targets->is_null()) {
    throw FormatError(fmt::format("{}: target_modules is missing", path.string()));
  }
  options.target_modules.clear();
  if (targets->is_string()) {
    // PEFT also accepts one regular expression here; medfair accepts the two
    // spellings that name projections directly.
    const std::string value = targets->get<std::string>();
    if (value == "all-linear") {
      options.target_modules = lora_target_names();
    } else {
      options.target_modules.push_back(value);
    }
  } else if (targets->is_array()) {
    for (const auto& entry : *targets) {
      if (!entry.is_string()) throw FormatError(fmt::format("{}: target_modules must contain strings", path.string()));
      options.target_modules.push_back(entry.get<std::string>());
    }
  } else {
    throw FormatError(fmt::format("{}: target_modules must be a list of module names", path.string()));
  }
  // Keep a canonical order, whatever order the file lists them in.
  std::vector<std::string> ordered;
  for (const std::string& name : lora_target_names()) {
    if (std::find(options.target_modules.begin(), options.target_modules.end(), name) != options.target_modules.end()) {
      ordered.push_back(name);
    }
  }
  try {
    options.validate();
  } catch (const ConfigError& error) {
    throw ConfigError(fmt::format("{}: {}", path.string(), error.what()));
  }
  options.target_modules = ordered;
  return options;
}

at::Tensor contiguous_cpu(const at::Tensor& tensor) { return tensor.detach().to(at::kCPU).contiguous(); }

io::SafetensorsDType safetensors_dtype(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return io::SafetensorsDType::F32;
    case at::kBFloat16:
      return io::SafetensorsDType::BF16;
    case at::kHalf:
      return io::SafetensorsDType::F16;
    default:
      throw ConfigError(fmt::format("cannot write a tensor of type {} to safetensors", c10::toString(type)));
  }
}

// Writes named tensors; `keep_alive` owns the contiguous copies the spans view.
void write_tensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                   const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep_alive;
  std::vector<io::SafetensorsTensorData> entries;
  keep_alive.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    keep_alive.push_back(contiguous_cpu(tensor));
    const at::Tensor& data = keep_alive.back();
    io::SafetensorsTensorData entry;
    entry.name = name;
    entry.dtype = safetensors_dtype(data.scalar_type());
    entry.shape.assign(data.sizes().begin(), data.sizes().end());
    entry.data = std::span<const std::byte>(static_cast<const std::byte*>(data.data_ptr()), data.nbytes());
    entries.push_back(std::move(entry));
  }
  io::write_safetensors(path, entries, metadata);
}

nlohmann::json hf_config_json(const LlamaConfig& c, at::ScalarType dtype) {
  static const std::map<std::string, std::string> classes = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}};
  nlohmann::json config = {
      {"architectures", {classes.count(c.architecture) ? classes.at(c.architecture) : "LlamaForCausalLM"}},
      {"model_type", c.architecture},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.n_embd},
      {"intermediate_size", c.n_ff},
      {"num_hidden_layers", c.n_layer},
      {"num_attention_heads", c.n_head},
      {"num_key_value_heads", c.n_head_kv},
      {"head_dim", c.head_dim},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"attention_bias", c.attention_bias},
      {"hidden_act", "silu"},
      {"torch_dtype", dtype == at::kBFloat16 ? "bfloat16" : "float32"},
  };
  if (c.rope_scaling.type == "linear") {
    config["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
  } else if (c.rope_scaling.type == "llama3") {
    config["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", c.rope_scaling.factor},
                              {"low_freq_factor", c.rope_scaling.low_freq_factor},
                              {"high_freq_factor", c.rope_scaling.high_freq_factor},
                              {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  if (c.architecture == "mistral") config["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json();
  return config;
}

}  // namespace

// ---- CausalLM adapter methods ----------------------------------------------------

void CausalLM::add_lora(const LoraOptions& options) {
  options.validate();
  Impl& m = *impl_;
  if (m.has_lora) {
    throw ConfigError(fmt::format("CausalLM.add_lora: {} already has LoRA adapters; call remove_lora() first",
                                  m.source.string()));
  }
  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  for (size_t i = 0; i < m.weights.layers.size(); ++i) {
    for (const std::string& name : options.target_modules) {
      detail::Linear& linear = detail::projection(m.weights.layers[i], name);
      const int64_t out_features = linear.weight.size(0);
      const int64_t in_features = linear.weight.size(1);
      auto adapter = std::make_shared<detail::LoraAdapter>();
      // PEFT's default init: nn.init.kaiming_uniform_(A, a=sqrt(5)), whose
      // bound gain * sqrt(3 / fan_in) with gain sqrt(2 / (1 + 5)) is 1/sqrt(in).
      const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
      adapter->a = at::empty({options.r, in_features}, at::kFloat).uniform_(-bound, bound, generator);
      adapter->b = at::zeros({out_features, options.r}, at::kFloat);
      adapter->a.set_requires_grad(true);
      adapter->b.set_requires_grad(true);
      adapter->scaling = options.scaling();
      adapter->dropout = options.dropout;
      linear.lora = std::move(adapter);
    }
  }
  m.lora = options;
  m.has_lora = true;
  m.adapter_mode.enabled = true;
}

void CausalLM::remove_lora() {
  Impl& m = *impl_;
  for (detail::DecoderLayer& layer : m.weights.layers) {
    for (const std::string& name : lora_target_names()) detail::projection(layer, name).lora.reset();
  }
  m.has_lora = false;
  m.lora = LoraOptions();
  m.adapter_mode.enabled = false;
}

void CausalLM::load_adapter(const std::filesystem::path& folder) {
  const std::filesystem::path config_path = folder / "adapter_config.json";
  const std::filesystem::path weights_path = folder / "adapter_model.safetensors";
  if (!std::filesystem::is_regular_file(config_path)) {
    throw IOError(fmt::format("{} is missing; an adapter folder needs adapter_config.json and "
                              "adapter_model.safetensors as PEFT's save_pretrained writes them",
                              config_path.string()));
  }
  if (!std::filesystem::is_regular_file(weights_path)) {
    throw IOError(fmt::format("{} is missing; medfair reads adapter weights from safetensors only (PEFT writes "
                              "adapter_model.safetensors by default)",
                              weights_path.string()));
  }
  LoraOptions options = parse_adapter_config(config_path);
  io::SafetensorsFile file = io::SafetensorsFile::open(weights_path);

  // Read and check every tensor before touching the model, so a bad file
  // leaves it as it was.
  Impl& m = *impl_;
  std::set<std::string> used;
  std::vector<std::pair<detail::Linear*, std::shared_ptr<detail::LoraAdapter>>> loaded;
  auto read = [&](const std::string& key, std::vector<int64_t> shape) {
    const io::SafetensorsTensorInfo* info = file.find_tensor(key);
    if (info == nullptr) {
      throw FormatError(fmt::format("{}: tensor {} is missing, but adapter_config.json targets this module",
                                    weights_path.string(), key));
    }
    at::Tensor tensor = at::empty(info->shape, at::kFloat);
    file.to_float(*info, tensor.data_ptr<float>());
    detail::check_shape(tensor, std::move(shape), key, weights_path);
    used.insert(key);
    return tensor;
  };
  for (size_t i = 0; i < m.weights.layers.size(); ++i) {
    for (const std::string& name : options.target_modules) {
      detail::Linear& linear = detail::projection(m.weights.layers[i], name);
      auto adapter = std::make_shared<detail::LoraAdapter>();
      adapter->a = read(peft_key(i, name, 'A'), {options.r, linear.weight.size(1)});
      adapter->b = read(peft_key(i, name, 'B'), {linear.weight.size(0), options.r});
      adapter->a.set_requires_grad(true);
      adapter->b.set_requires_grad(true);
      adapter->scaling = options.scaling();
      adapter->dropout = options.dropout;
      loaded.emplace_back(&linear, std::move(adapter));
    }
  }
  for (const io::SafetensorsTensorInfo& info : file.tensors()) {
    if (!used.count(info.name)) {
      throw FormatError(fmt::format("{}: tensor {} does not belong to a LoRA adapter on {} that medfair implements; "
                                    "the adapter was trained for another architecture or with other modules",
                                    weights_path.string(), info.name, fmt::join(options.target_modules, ", ")));
    }
  }

  if (m.has_lora) remove_lora();
  for (auto& [linear, adapter] : loaded) linear->lora = std::move(adapter);
  m.lora = options;
  m.has_lora = true;
  m.adapter_mode.enabled = true;
}

void CausalLM::save_adapter(const std::filesystem::path& folder) const {
  const Impl& m = *impl_;
  require_lora(m, "save_adapter");
  std::filesystem::create_directories(folder);
  const LoraOptions& o = m.lora;
  // The LoraConfig fields PEFT needs to rebuild the adapter; the others keep
  // PEFT's defaults.
  nlohmann::json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", m.source.string()},
      {"r", o.r},
      {"lora_alpha", o.alpha},
      {"lora_dropout", o.dropout},
      {"use_rslora", o.use_rslora},
      {"target_modules", o.target_modules},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"use_dora", false},
      {"modules_to_save", nullptr},
      {"layers_to_transform", nullptr},
  };
  write_tensors(folder / "adapter_model.safetensors", adapter_state_dict(), {{"format", "pt"}});
  io::write_file_atomic(folder / "adapter_config.json", config.dump(2) + "\n");
}

void CausalLM::save_merged(const std::filesystem::path& folder) const {
  const Impl& m = *impl_;
  const LlamaConfig& c = m.config;
  // GGUF files carry Llama 3 rope scaling as a tensor; config.json can only
  // express it as rope_scaling, which the config read from GGUF lacks.
  at::Tensor expected = detail::rotary_inverse_frequencies(c);
  if (!at::allclose(expected, m.weights.inv_freq)) {
    throw ModelError(fmt::format("CausalLM.save_merged: {} scales its rotary frequencies with a rope_freqs tensor "
                                 "that config.json cannot express; merge a Hugging Face folder of this model instead",
                                 m.source.string()));
  }
  std::filesystem::create_directories(folder);
  std::map<std::string, at::Tensor> tensors;
  {
    c10::NoGradGuard no_grad;
    for (const auto& [name, tensor] : state_dict()) tensors[name] = tensor;
    for (size_t i = 0; i < m.weights.layers.size(); ++i) {
      for (const std::string& name : lora_target_names()) {
        const detail::Linear& linear = detail::projection(m.weights.layers[i], name);
        if (linear.lora) tensors[module_path(i, name) + ".weight"] = linear.merged_weight();
      }
    }
  }
  write_tensors(folder / "model.safetensors", tensors, {{"format", "pt"}});
  io::write_file_atomic(folder / "config.json", hf_config_json(c, m.dtype).dump(2) + "\n");
  // NOTE: a model loaded from GGUF has no tokenizer.json to copy, so its merged
  // folder holds only the weights and config.json.
  if (std::filesystem::is_directory(m.source)) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                             "generation_config.json", "chat_template.jinja"}) {
      const std::filesystem::path from = m.source / name;
      if (std::filesystem::is_regular_file(from)) io::write_file_atomic(folder / name, read_text(from));
    }
  }
}

bool CausalLM::has_lora() const { return impl_->has_lora; }

const LoraOptions& CausalLM::lora_options() const {
  require_lora(*impl_, "lora_options");
  return impl_->lora;
}

std::map<std::string, at::Tensor> CausalLM::adapter_state_dict() const {
  std::map<std::string, at::Tensor> tensors;
  for_each_adapter(impl_->weights, [&](size_t i, const std::string& name, const detail::Linear& linear) {
    tensors[peft_key(i, name, 'A')] = linear.lora->a;
    tensors[peft_key(i, name, 'B')] = linear.lora->b;
  });
  return tensors;
}

std::vector<at::Tensor> CausalLM::adapter_parameters() const {
  std::vector<at::Tensor> parameters;
  for_each_adapter(impl_->weights, [&](size_t, const std::string&, const detail::Linear& linear) {
    parameters.push_back(linear.lora->a);
    parameters.push_back(linear.lora->b);
  });
  return parameters;
}

void CausalLM::set_adapters_enabled(bool enabled) {
  if (enabled) require_lora(*impl_, "set_adapters_enabled");
  impl_->adapter_mode.enabled = enabled;
}

bool CausalLM::adapters_enabled() const { return impl_->has_lora && impl_->adapter_mode.enabled; }

void CausalLM::set_training(bool training) { impl_->adapter_mode.training = training; }

bool CausalLM::training() const { return impl_->adapter_mode.training; }

void CausalLM::set_gradient_checkpointing(bool enabled) { impl_->gradient_checkpointing = enabled; }

bool CausalLM::gradient_checkpointing() const { return impl_->gradient_checkpointing; }

}  // namespace medfair
