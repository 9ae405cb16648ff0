// BertConfig from a Hugging Face config.json, and the sentence-transformers
// module files (modules.json, sentence_bert_config.json, Pooling config.json)
// that define how a BERT folder turns token embeddings into sentence embeddings.

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "medfair/error.hpp"
#include "medfair/models/sentence_encoder.hpp"
#include "sentence_encoder_impl.hpp"

namespace medfair {

namespace {

using nlohmann::json;

json read_json_file(const std::filesystem::path& path, std::string_view hint) {
  std::ifstream stream(path);
  if (!stream) throw IOError(fmt::format("cannot open {}: {}", path.string(), hint));
  json value;
  try {
    value = json::parse(stream);
  } catch (const json::exception& error) {
    throw FormatError(fmt::format("{}: invalid JSON: {}", path.string(), error.what()));
  }
  if (!value.is_object() && !value.is_array()) {
    throw FormatError(fmt::format("{}: expected a JSON object or array, found {}", path.string(), value.type_name()));
  }
  return value;
}

int64_t required_int(const json& object, const char* key, const std::filesystem::path& path) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) {
    throw ConfigError(fmt::format("{}: missing or non-integer field \"{}\"; a BERT config.json needs it", path.string(),
                                  key));
  }
  return it->get<int64_t>();
}

template <typename T>
T optional_field(const json& object, const char* key, T fallback, const std::filesystem::path& path) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw ConfigError(fmt::format("{}: field \"{}\" has the wrong type ({})", path.string(), key, it->type_name()));
  }
}

constexpr std::array<PoolingMode, 6> kPoolingModes = {PoolingMode::cls,  PoolingMode::max,
                                                      PoolingMode::mean, PoolingMode::mean_sqrt_len_tokens,
                                                      PoolingMode::weightedmean, PoolingMode::lasttoken};

// The pre-v5 boolean keys of sentence-transformers' Pooling config, in the
// order its forward() concatenates them (sentence_transformers 6.3.0,
// sentence_transformer/modules/pooling.py, _LEGACY_POOLING_MODE_KWARGS).
constexpr std::array<std::pair<const char*, PoolingMode>, 6> kLegacyPoolingKeys = {{
    {"pooling_mode_cls_token", PoolingMode::cls},
    {"pooling_mode_max_tokens", PoolingMode::max},
    {"pooling_mode_mean_tokens", PoolingMode::mean},
    {"pooling_mode_mean_sqrt_len_tokens", PoolingMode::mean_sqrt_len_tokens},
    {"pooling_mode_weightedmean_tokens", PoolingMode::weightedmean},
    {"pooling_mode_lasttoken", PoolingMode::lasttoken},
}};

std::string supported_pooling_names() {
  std::string names;
  for (PoolingMode mode : kPoolingModes) {
    if (!names.empty()) names += ", ";
    names += pooling_mode_name(mode);
  }
  return names;
}

PoolingMode parse_pooling_mode(const json& value, const std::filesystem::path& path) {
  if (!value.is_string()) {
    throw FormatError(fmt::format("{}: pooling_mode entries must be strings, found {}", path.string(), value.dump()));
  }
  const std::string name = value.get<std::string>();
  for (PoolingMode mode : kPoolingModes) {
    if (name == pooling_mode_name(mode)) return mode;
  }
  throw ModelError(fmt::format("{}: pooling_mode \"{}\" is not supported; use one of {}", path.string(), name,
                               supported_pooling_names()));
}

// Reads a Pooling module's config.json: either the "pooling_mode" key (a name
// or a list of names) or the legacy pooling_mode_* booleans, where no true
// boolean means mean pooling, as in sentence-transformers.
std::vector<PoolingMode> read_pooling_config(const std::filesystem::path& path, const BertConfig& config) {
  const json pooling = read_json_file(path, "the Pooling module listed in modules.json needs its config.json");
  if (!pooling.is_object()) throw FormatError(fmt::format("{}: expected a JSON object", path.string()));

  for (const char* key : {"word_embedding_dimension", "embedding_dimension"}) {
    const int64_t width = optional_field<int64_t>(pooling, key, config.hidden_size, path);
    if (width != config.hidden_size) {
      throw ModelError(fmt::format("{}: {} is {} but the encoder's hidden_size is {}", path.string(), key, width,
                                   config.hidden_size));
    }
  }
  // "include_prompt" is ignored: it only matters for prompts prepended to the
  // sentences, which SentenceEncoder never does.

  std::vector<PoolingMode> modes;
  if (auto it = pooling.find("pooling_mode"); it != pooling.end() && !it->is_null()) {
    if (it->is_array()) {
      for (const json& entry : *it) modes.push_back(parse_pooling_mode(entry, path));
    } else {
      modes.push_back(parse_pooling_mode(*it, path));
    }
    if (modes.empty()) throw ModelError(fmt::format("{}: pooling_mode is an empty list", path.string()));
    return modes;
  }

  for (const auto& [key, value] : pooling.items()) {
    if (!key.starts_with("pooling_mode_") || !value.is_boolean() || !value.get<bool>()) continue;
    bool known = false;
    for (const auto& [legacy_key, mode] : kLegacyPoolingKeys) known = known || key == legacy_key;
    if (!known) {
      throw ModelError(fmt::format("{}: pooling mode \"{}\" is not supported; use one of {}", path.string(), key,
                                   supported_pooling_names()));
    }
  }
  for (const auto& [key, mode] : kLegacyPoolingKeys) {
    if (optional_field<bool>(pooling, key, false, path)) modes.push_back(mode);
  }
  if (modes.empty()) modes.push_back(PoolingMode::mean);
  return modes;
}

// The class name of a modules.json "type" such as
// "sentence_transformers.models.Pooling" ("Pooling").
std::string module_class(const std::string& type) {
  const std::size_t dot = type.rfind('.');
  return dot == std::string::npos ? type : type.substr(dot + 1);
}

void read_sentence_bert_config(const std::filesystem::path& path, detail::SentenceTransformerLayout& layout) {
  if (!std::filesystem::exists(path)) return;
  const json config = read_json_file(path, "check the file's permissions");
  if (!config.is_object()) throw FormatError(fmt::format("{}: expected a JSON object", path.string()));
  if (auto it = config.find("max_seq_length"); it != config.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 2) {
      throw ConfigError(fmt::format("{}: max_seq_length must be an integer >= 2, found {}", path.string(), it->dump()));
    }
    layout.max_seq_length = it->get<int64_t>();
  }
  layout.do_lower_case = optional_field<bool>(config, "do_lower_case", false, path);
}

}  // namespace

std::string_view pooling_mode_name(PoolingMode mode) {
  switch (mode) {
    case PoolingMode::cls: return "cls";
    case PoolingMode::max: return "max";
    case PoolingMode::mean: return "mean";
    case PoolingMode::mean_sqrt_len_tokens: return "mean_sqrt_len_tokens";
    case PoolingMode::weightedmean: return "weightedmean";
    case PoolingMode::lasttoken: return "lasttoken";
  }
  return "unknown";
}

BertConfig BertConfig::from_hf_config(const std::filesystem::path& config_json) {
  const json root = read_json_file(config_json, "check that the model folder contains config.json");
  if (!root.is_object()) throw FormatError(fmt::format("{}: expected a JSON object", config_json.string()));

  const std::string model_type = optional_field<std::string>(root, "model_type", "", config_json);
  if (model_type != "bert") {
    throw ModelError(fmt::format("{}: model_type \"{}\" is not supported; SentenceEncoder implements BERT "
                                 "(model_type \"bert\")",
                                 config_json.string(), model_type));
  }
  const std::string position_type =
      optional_field<std::string>(root, "position_embedding_type", "absolute", config_json);
  if (position_type != "absolute") {
    throw ModelError(fmt::format("{}: position_embedding_type \"{}\" is not supported; SentenceEncoder implements "
                                 "\"absolute\" position embeddings",
                                 config_json.string(), position_type));
  }

  BertConfig config;
  config.vocab_size = required_int(root, "vocab_size", config_json);
  config.hidden_size = required_int(root, "hidden_size", config_json);
  config.num_hidden_layers = required_int(root, "num_hidden_layers", config_json);
  config.num_attention_heads = required_int(root, "num_attention_heads", config_json);
  config.intermediate_size = required_int(root, "intermediate_size", config_json);
  config.max_position_embeddings = optional_field<int64_t>(root, "max_position_embeddings", 512, config_json);
  config.type_vocab_size = optional_field<int64_t>(root, "type_vocab_size", 2, config_json);
  config.hidden_act = optional_field<std::string>(root, "hidden_act", "gelu", config_json);
  config.layer_norm_eps = optional_field<double>(root, "layer_norm_eps", 1e-12, config_json);

  static const std::array<const char*, 4> kActivations = {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu"};
  if (std::find(kActivations.begin(), kActivations.end(), config.hidden_act) == kActivations.end()) {
    throw ModelError(fmt::format("{}: hidden_act \"{}\" is not supported; use gelu, gelu_new, gelu_pytorch_tanh "
                                 "or relu",
                                 config_json.string(), config.hidden_act));
  }
  config.validate(config_json.string());
  return config;
}

void BertConfig::validate(std::string_view origin) const {
  const std::pair<const char*, int64_t> sizes[] = {
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"intermediate_size", intermediate_size},
      {"max_position_embeddings", max_position_embeddings},
      {"type_vocab_size", type_vocab_size},
  };
  for (const auto& [name, value] : sizes) {
    if (value <= 0) throw ConfigError(fmt::format("{}: {} must be positive, found {}", origin, name, value));
  }
  if (hidden_size % num_attention_heads != 0) {
    throw ConfigError(fmt::format("{}: hidden_size {} is not a multiple of num_attention_heads {}", origin,
                                  hidden_size, num_attention_heads));
  }
  if (!(layer_norm_eps > 0.0)) {
    throw ConfigError(fmt::format("{}: layer_norm_eps must be positive, found {}", origin, layer_norm_eps));
  }
}

namespace detail {

SentenceTransformerLayout read_sentence_transformer_layout(const std::filesystem::path& folder) {
  SentenceTransformerLayout layout;
  layout.transformer_dir = folder;
  const std::filesystem::path modules_path = folder / "modules.json";
  if (!std::filesystem::exists(modules_path)) {
    read_sentence_bert_config(folder / "sentence_bert_config.json", layout);
    return layout;
  }

  const json modules = read_json_file(modules_path, "check the file's permissions");
  if (!modules.is_array()) {
    throw FormatError(fmt::format("{}: expected a JSON array of modules, found {}", modules_path.string(),
                                  modules.type_name()));
  }
  bool has_transformer = false;
  bool has_pooling = false;
  for (std::size_t index = 0; index < modules.size(); ++index) {
    const json& entry = modules[index];
    if (!entry.is_object() || !entry.contains("type") || !entry["type"].is_string()) {
      throw FormatError(fmt::format("{}: entry {} has no \"type\" string", modules_path.string(), index));
    }
    const std::string type = entry["type"].get<std::string>();
    const std::string module_path = entry.value("path", std::string());
    const std::string name = module_class(type);
    const std::filesystem::path module_dir = module_path.empty() ? folder : folder / module_path;

    if (name == "Transformer" && !has_transformer && index == 0) {
      has_transformer = true;
      layout.transformer_dir = module_dir;
      read_sentence_bert_config(module_dir / "sentence_bert_config.json", layout);
    } else if (name == "Pooling" && has_transformer && !has_pooling) {
      has_pooling = true;
      // The encoder config is needed to check the pooling width.
      const BertConfig config = BertConfig::from_hf_config(layout.transformer_dir / "config.json");
      layout.pooling_modes = read_pooling_config(module_dir / "config.json", config);
    } else if (name == "Normalize" && has_pooling && !layout.normalize) {
      layout.normalize = true;
    } else {
      throw ModelError(fmt::format("{}: module {} of type \"{}\" is not supported here; SentenceEncoder implements "
                                   "a Transformer, then a Pooling, then an optional Normalize module",
                                   modules_path.string(), index, type));
    }
  }
  if (!has_pooling) {
    throw ModelError(fmt::format("{}: lists no Pooling module, so the model has no sentence embedding; add "
                                 "1_Pooling/config.json and its modules.json entry",
                                 modules_path.string()));
  }
  return layout;
}

}  // namespace detail

}  // namespace medfair
