// LlamaConfig from Hugging Face config.json files.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "medfair/error.hpp"
#include "medfair/models/config.hpp"

namespace medfair {

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> names = {"llama", "mistral", "qwen2"};
  return names;
}

namespace {

bool is_supported(const std::string& architecture) {
  for (const std::string& name : supported_architectures()) {
    if (name == architecture) return true;
  }
  return false;
}

int64_t required_int(const nlohmann::json& json, const char* key, const std::filesystem::path& path) {
  auto it = json.find(key);
  if (it == json.end() || !it->is_number_integer()) {
    throw ConfigError(fmt::format("{}: missing or non-integer field \"{}\"; a Llama-family config.json needs it",
                                  path.string(), key));
  }
  return it->get<int64_t>();
}

template <typename T>
T optional_value(const nlohmann::json& json, const char* key, T fallback) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return fallback;
  return it->get<T>();
}

}  // namespace

LlamaConfig LlamaConfig::from_hf_config(const std::filesystem::path& config_json) {
  std::ifstream stream(config_json);
  if (!stream) throw IOError(fmt::format("cannot open {}: check that the model folder contains config.json",
                                         config_json.string()));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(stream);
  } catch (const nlohmann::json::exception& error) {
    throw FormatError(fmt::format("{}: invalid JSON: {}", config_json.string(), error.what()));
  }
  if (!json.is_object()) throw FormatError(fmt::format("{}: expected a JSON object", config_json.string()));

  LlamaConfig config;
  config.architecture = optional_value<std::string>(json, "model_type", "");
  if (!is_supported(config.architecture)) {
    throw ModelError(fmt::format("{}: model_type \"{}\" is not supported; medfair implements {}",
                                 config_json.string(), config.architecture,
                                 fmt::join(supported_architectures(), ", ")));
  }
  try {
    config.vocab_size = required_int(json, "vocab_size", config_json);
    config.n_embd = required_int(json, "hidden_size", config_json);
    config.n_layer = required_int(json, "num_hidden_layers", config_json);
    config.n_head = required_int(json, "num_attention_heads", config_json);
    config.n_head_kv = optional_value<int64_t>(json, "num_key_value_heads", config.n_head);
    config.n_ff = required_int(json, "intermediate_size", config_json);
    config.head_dim = optional_value<int64_t>(json, "head_dim", config.n_head > 0 ? config.n_embd / config.n_head : 0);
    config.max_position_embeddings = optional_value<int64_t>(json, "max_position_embeddings", 4096);
    config.rms_norm_eps = optional_value<double>(json, "rms_norm_eps", 1e-6);
    config.rope_theta = optional_value<double>(json, "rope_theta", 10000.0);
    config.tie_word_embeddings = optional_value<bool>(json, "tie_word_embeddings", false);
    config.attention_bias = optional_value<bool>(json, "attention_bias", config.architecture == "qwen2");
    // transformers 5 writes rope_theta and the scaling rule together under
    // rope_parameters; earlier versions use rope_theta and rope_scaling.
    const nlohmann::json* scaling = nullptr;
    if (auto it = json.find("rope_parameters"); it != json.end() && it->is_object()) {
      scaling = &*it;
      config.rope_theta = optional_value<double>(*it, "rope_theta", config.rope_theta);
    } else if (auto it2 = json.find("rope_scaling"); it2 != json.end() && it2->is_object()) {
      scaling = &*it2;
    }
    if (scaling != nullptr) {
      std::string type = optional_value<std::string>(*scaling, "rope_type", "");
      if (type.empty()) type = optional_value<std::string>(*scaling, "type", "none");
      if (type == "default") type = "none";
      if (type != "none" && type != "linear" && type != "llama3") {
        throw ConfigError(fmt::format("{}: rope scaling type \"{}\" is not supported; use none, linear or llama3",
                                      config_json.string(), type));
      }
      config.rope_scaling.type = type;
      config.rope_scaling.factor = optional_value<double>(*scaling, "factor", 1.0);
      config.rope_scaling.low_freq_factor = optional_value<double>(*scaling, "low_freq_factor", 1.0);
      config.rope_scaling.high_freq_factor = optional_value<double>(*scaling, "high_freq_factor", 4.0);
      config.rope_scaling.original_max_position_embeddings =
          optional_value<int64_t>(*scaling, "original_max_position_embeddings", 8192);
    }
    const bool sliding = optional_value<bool>(json, "use_sliding_window", config.architecture == "mistral");
    config.sliding_window = sliding ? optional_value<int64_t>(json, "sliding_window", 0) : 0;
  } catch (const nlohmann::json::exception& error) {
    throw ConfigError(fmt::format("{}: a field has the wrong type: {}", config_json.string(), error.what()));
  }
  config.validate();
  return config;
}

void LlamaConfig::validate() const {
  auto require_positive = [](int64_t value, const char* name) {
    if (value <= 0) throw ConfigError(fmt::format("model config: {} must be positive, got {}", name, value));
  };
  require_positive(vocab_size, "vocab_size");
  require_positive(n_embd, "n_embd (hidden_size)");
  require_positive(n_layer, "n_layer (num_hidden_layers)");
  require_positive(n_head, "n_head (num_attention_heads)");
  require_positive(n_head_kv, "n_head_kv (num_key_value_heads)");
  require_positive(head_dim, "head_dim");
  require_positive(n_ff, "n_ff (intermediate_size)");
  if (n_head % n_head_kv != 0) {
    throw ConfigError(fmt::format("model config: n_head {} is not a multiple of n_head_kv {}", n_head, n_head_kv));
  }
  if (head_dim % 2 != 0) throw ConfigError(fmt::format("model config: head_dim {} must be even for rotary embeddings", head_dim));
  if (rms_norm_eps <= 0) throw ConfigError(fmt::format("model config: rms_norm_eps must be positive, got {}", rms_norm_eps));
  if (rope_theta <= 0) throw ConfigError(fmt::format("model config: rope_theta must be positive, got {}", rope_theta));
  if (rope_scaling.factor <= 0) {
    throw ConfigError(fmt::format("model config: rope_scaling factor must be positive, got {}", rope_scaling.factor));
  }
}

}  // namespace medfair
