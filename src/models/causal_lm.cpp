// CausalLM loading: configuration, weights, tokenizer and chat template from a
// GGUF file or a Hugging Face folder.

#include "medfair/models/causal_lm.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "causal_lm_impl.hpp"
#include "medfair/error.hpp"
#include "medfair/io/gguf.hpp"
#include "medfair/log.hpp"

namespace medfair {

// ---- KVCache -----------------------------------------------------------------

int64_t KVCache::batch_size() const { return mask.defined() ? mask.size(0) : 0; }

int64_t KVCache::length() const { return mask.defined() ? mask.size(1) : 0; }

void KVCache::reserve(int64_t length) {
  if (length <= capacity) return;
  if (empty()) {
    // forward() allocates the buffers at this size on the first call.
    capacity = length;
    return;
  }
  const int64_t past = this->length();
  if (length <= past) return;
  for (std::vector<at::Tensor>* tensors : {&keys, &values}) {
    for (at::Tensor& cached : *tensors) {
      at::Tensor buffer = at::empty({cached.size(0), cached.size(1), length, cached.size(3)}, cached.options());
      buffer.narrow(2, 0, past).copy_(cached);
      cached = buffer.narrow(2, 0, past);
    }
  }
  capacity = length;
}

KVCache KVCache::expand(int64_t rows) const {
  if (batch_size() != 1) {
    throw ConfigError(fmt::format("KVCache.expand: the cache must hold one row to be expanded, it holds {}",
                                  batch_size()));
  }
  KVCache out;
  for (size_t i = 0; i < keys.size(); ++i) {
    out.keys.push_back(keys[i].expand({rows, -1, -1, -1}));
    out.values.push_back(values[i].expand({rows, -1, -1, -1}));
  }
  out.mask = mask.expand({rows, -1});
  out.next_position = next_position.expand({rows});
  return out;
}

KVCache KVCache::select_rows(const at::Tensor& rows) const {
  KVCache out;
  at::Tensor index = rows.to(at::kLong);
  for (size_t i = 0; i < keys.size(); ++i) {
    out.keys.push_back(keys[i].index_select(0, index));
    out.values.push_back(values[i].index_select(0, index));
  }
  out.mask = mask.index_select(0, index);
  out.next_position = next_position.index_select(0, index);
  return out;
}

// ---- Configuration from GGUF metadata -----------------------------------------

LlamaConfig LlamaConfig::from_gguf(const io::GGUFFile& file) {
  const std::string architecture = file.get_string("general.architecture");
  const auto& supported = supported_architectures();
  if (std::find(supported.begin(), supported.end(), architecture) == supported.end()) {
    throw ModelError(fmt::format("{}: general.architecture is \"{}\", which medfair does not implement; supported: {}",
                                 file.path().string(), architecture, fmt::join(supported, ", ")));
  }
  auto key = [&](std::string_view suffix) { return fmt::format("{}.{}", architecture, suffix); };

  LlamaConfig c;
  c.architecture = architecture;
  c.n_embd = file.get_int(key("embedding_length"));
  c.n_layer = file.get_int(key("block_count"));
  c.n_ff = file.get_int(key("feed_forward_length"));
  c.n_head = file.get_int(key("attention.head_count"));
  c.n_head_kv = file.get_int_opt(key("attention.head_count_kv")).value_or(c.n_head);
  c.head_dim = file.get_int_opt(key("attention.key_length"))
                   .value_or(file.get_int_opt(key("rope.dimension_count")).value_or(c.n_head > 0 ? c.n_embd / c.n_head : 0));
  c.max_position_embeddings = file.get_int_opt(key("context_length")).value_or(4096);
  c.rms_norm_eps = file.get_float(key("attention.layer_norm_rms_epsilon"));
  c.rope_theta = file.get_float_opt(key("rope.freq_base")).value_or(10000.0);
  std::optional<int64_t> vocab = file.get_int_opt(key("vocab_size"));
  c.vocab_size = vocab ? *vocab : static_cast<int64_t>(file.get_array_length("tokenizer.ggml.tokens"));
  c.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  c.attention_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
  std::string scaling = file.get_string_opt(key("rope.scaling.type")).value_or("none");
  if (scaling == "linear") {
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = file.get_float(key("rope.scaling.factor"));
  } else if (scaling != "none") {
    // Llama 3 scaling reaches GGUF as the rope_freqs.weight tensor, which the
    // weight loader applies; other schemes (yarn, longrope) are not implemented.
    throw ModelError(fmt::format("{}: {} is \"{}\"; medfair supports none and linear here (Llama 3 scaling comes "
                                 "from rope_freqs.weight)",
                                 file.path().string(), key("rope.scaling.type"), scaling));
  }
  c.validate();
  return c;
}

// ---- Loading -------------------------------------------------------------------

namespace {

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  throw ConfigError(fmt::format("LoadOptions.dtype \"{}\" is not supported; use float32 or bfloat16", name));
}

std::string token_text(const text::Tokenizer& tokenizer, std::optional<int32_t> id) {
  return id ? tokenizer.id_to_token(*id) : std::string();
}

// End-of-turn tokens of the common chat formats; generation stops at any of them.
void add_end_of_turn_tokens(const text::Tokenizer& tokenizer, std::vector<int64_t>& eos_ids) {
  if (auto eos = tokenizer.eos_id()) eos_ids.push_back(*eos);
  for (const char* token : {"<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>", "</s>"}) {
    std::optional<int32_t> id = tokenizer.token_to_id(token);
    if (id && std::find(eos_ids.begin(), eos_ids.end(), *id) == eos_ids.end()) eos_ids.push_back(*id);
  }
}

void attach_chat_template(CausalLM::Impl& impl, const std::string& jinja, const LoadOptions& options,
                          const std::string& where) {
  const text::Tokenizer& tokenizer = *impl.tokenizer;
  const std::string bos = token_text(tokenizer, tokenizer.bos_id());
  const std::string eos = token_text(tokenizer, tokenizer.eos_id());
  if (!options.chat_template.empty()) {
    impl.chat_template = std::make_shared<text::ChatTemplate>(
        text::ChatTemplate::from_string(options.chat_template, bos, eos));
    return;
  }
  if (jinja.empty()) {
    log::warning("CausalLM::load",
                 fmt::format("{} has no chat template; apply_chat_template() will fail until you set "
                             "LoadOptions.chat_template (for example \"chatml\") or pass formatted prompts",
                             where));
    return;
  }
  try {
    impl.chat_template = std::make_shared<text::ChatTemplate>(text::ChatTemplate::from_jinja(jinja, bos, eos));
  } catch (const ConfigError& error) {
    log::warning("CausalLM::load", fmt::format("{}: {}", where, error.what()));
  }
}

text::GgufVocab read_gguf_vocab(const io::GGUFFile& file) {
  text::GgufVocab vocab;
  vocab.model = file.get_string("tokenizer.ggml.model");
  vocab.pre = file.get_string_opt("tokenizer.ggml.pre").value_or("default");
  vocab.tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (auto scores = file.get_float_array_opt("tokenizer.ggml.scores")) {
    vocab.scores.assign(scores->begin(), scores->end());
  }
  if (auto types = file.get_int_array_opt("tokenizer.ggml.token_type")) {
    vocab.token_types.assign(types->begin(), types->end());
  }
  vocab.merges = file.get_string_array_opt("tokenizer.ggml.merges").value_or(std::vector<std::string>{});
  auto id = [&](const char* name) -> std::optional<int32_t> {
    std::optional<int64_t> value = file.get_int_opt(name);
    if (!value) return std::nullopt;
    return static_cast<int32_t>(*value);
  };
  vocab.special.bos = id("tokenizer.ggml.bos_token_id");
  vocab.special.eos = id("tokenizer.ggml.eos_token_id");
  vocab.special.pad = id("tokenizer.ggml.padding_token_id");
  vocab.special.unk = id("tokenizer.ggml.unknown_token_id");
  vocab.add_bos = file.get_bool_opt("tokenizer.ggml.add_bos_token").value_or(vocab.model == "llama");
  vocab.add_eos = file.get_bool_opt("tokenizer.ggml.add_eos_token").value_or(false);
  vocab.add_space_prefix = file.get_bool_opt("tokenizer.ggml.add_space_prefix");
  vocab.origin = file.path().string();
  return vocab;
}

std::shared_ptr<CausalLM::Impl> load_gguf(const std::filesystem::path& path, const LoadOptions& options) {
  io::GGUFFile file = io::GGUFFile::open(path);
  auto impl = std::make_shared<CausalLM::Impl>();
  impl->config = LlamaConfig::from_gguf(file);
  impl->dtype = parse_dtype(options.dtype);
  impl->weights = detail::load_gguf_weights(file, impl->config, impl->dtype, path);
  impl->tokenizer = text::tokenizer_from_gguf_vocab(read_gguf_vocab(file));
  attach_chat_template(*impl, file.get_string_opt("tokenizer.chat_template").value_or(""), options, path.string());
  return impl;
}

nlohmann::json read_json_if_exists(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return nlohmann::json::object();
  std::ifstream stream(path);
  try {
    return nlohmann::json::parse(stream);
  } catch (const nlohmann::json::exception& error) {
    throw FormatError(fmt::format("{}: invalid JSON: {}", path.string(), error.what()));
  }
}

// tokenizer_config.json stores the template as a string, or as a list of
// {name, template} objects of which "default" is the chat template.
std::string chat_template_from_tokenizer_config(const nlohmann::json& config) {
  auto it = config.find("chat_template");
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const auto& entry : *it) {
      if (entry.is_object() && entry.value("name", "") == "default") return entry.value("template", "");
    }
  }
  return "";
}

std::shared_ptr<CausalLM::Impl> load_hf_folder(const std::filesystem::path& folder, const LoadOptions& options) {
  auto impl = std::make_shared<CausalLM::Impl>();
  impl->config = LlamaConfig::from_hf_config(folder / "config.json");
  impl->dtype = parse_dtype(options.dtype);
  impl->weights = detail::load_safetensors_weights(folder, impl->config, impl->dtype);
  const std::filesystem::path tokenizer_json = folder / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_json)) {
    throw IOError(fmt::format("{} is missing; medfair reads the tokenizer from a Hugging Face tokenizer.json",
                              tokenizer_json.string()));
  }
  impl->tokenizer = text::load_tokenizer_json(tokenizer_json);
  nlohmann::json tokenizer_config = read_json_if_exists(folder / "tokenizer_config.json");
  std::string jinja = chat_template_from_tokenizer_config(tokenizer_config);
  if (jinja.empty() && std::filesystem::exists(folder / "chat_template.jinja")) {
    std::ifstream stream(folder / "chat_template.jinja");
    jinja.assign(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
  }
  attach_chat_template(*impl, jinja, options, folder.string());
  // transformers takes BOS, EOS and PAD from tokenizer_config.json; a token
  // given there overrides the tokenizer's own guess.
  auto config_token = [&](const char* key) -> std::optional<int64_t> {
    auto it = tokenizer_config.find(key);
    if (it == tokenizer_config.end()) return std::nullopt;
    std::string content;
    if (it->is_string()) content = it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) content = (*it)["content"];
    if (content.empty()) return std::nullopt;
    std::optional<int32_t> id = impl->tokenizer->token_to_id(content);
    return id ? std::optional<int64_t>(*id) : std::nullopt;
  };
  impl->special_tokens.bos = config_token("bos_token");
  impl->special_tokens.eos = config_token("eos_token");
  impl->special_tokens.pad = config_token("pad_token");
  nlohmann::json generation = read_json_if_exists(folder / "generation_config.json");
  if (auto eos = generation.find("eos_token_id"); eos != generation.end()) {
    if (eos->is_number_integer()) impl->eos_ids.push_back(eos->get<int64_t>());
    if (eos->is_array()) {
      for (const auto& id : *eos) {
        if (id.is_number_integer()) impl->eos_ids.push_back(id.get<int64_t>());
      }
    }
  }
  return impl;
}

}  // namespace

CausalLM::CausalLM(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

CausalLM CausalLM::load(const std::filesystem::path& path, const LoadOptions& options) {
  std::shared_ptr<Impl> impl;
  if (std::filesystem::is_directory(path)) {
    impl = load_hf_folder(path, options);
  } else if (std::filesystem::is_regular_file(path)) {
    impl = load_gguf(path, options);
  } else {
    throw IOError(fmt::format("model path {} does not exist; pass a .gguf file or a Hugging Face model folder",
                              path.string()));
  }
  impl->source = path;
  add_end_of_turn_tokens(*impl->tokenizer, impl->eos_ids);
  const text::Tokenizer& tokenizer = *impl->tokenizer;
  if (!impl->special_tokens.bos && tokenizer.bos_id()) impl->special_tokens.bos = *tokenizer.bos_id();
  if (!impl->special_tokens.eos && tokenizer.eos_id()) impl->special_tokens.eos = *tokenizer.eos_id();
  if (!impl->special_tokens.pad && tokenizer.pad_id()) impl->special_tokens.pad = *tokenizer.pad_id();
  CausalLM model(std::move(impl));
  if (!options.adapter.empty()) model.load_adapter(options.adapter);
  return model;
}

const LlamaConfig& CausalLM::config() const { return impl_->config; }

const text::Tokenizer& CausalLM::tokenizer() const { return *impl_->tokenizer; }

std::shared_ptr<const text::Tokenizer> CausalLM::shared_tokenizer() const { return impl_->tokenizer; }

const SpecialTokens& CausalLM::special_tokens() const { return impl_->special_tokens; }

const std::filesystem::path& CausalLM::source() const { return impl_->source; }

std::string CausalLM::dtype() const { return impl_->dtype == at::kBFloat16 ? "bfloat16" : "float32"; }

std::map<std::string, at::Tensor> CausalLM::state_dict() const {
  const detail::LlamaWeights& w = impl_->weights;
  std::map<std::string, at::Tensor> tensors;
  auto add_linear = [&](const std::string& name, const detail::Linear& linear) {
    tensors[name + ".weight"] = linear.weight;
    if (linear.bias.defined()) tensors[name + ".bias"] = linear.bias;
  };
  tensors["model.embed_tokens.weight"] = w.token_embedding;
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const detail::DecoderLayer& layer = w.layers[i];
    const std::string prefix = fmt::format("model.layers.{}.", i);
    tensors[prefix + "input_layernorm.weight"] = layer.attn_norm;
    add_linear(prefix + "self_attn.q_proj", layer.q_proj);
    add_linear(prefix + "self_attn.k_proj", layer.k_proj);
    add_linear(prefix + "self_attn.v_proj", layer.v_proj);
    add_linear(prefix + "self_attn.o_proj", layer.o_proj);
    tensors[prefix + "post_attention_layernorm.weight"] = layer.ffn_norm;
    add_linear(prefix + "mlp.gate_proj", layer.gate_proj);
    add_linear(prefix + "mlp.up_proj", layer.up_proj);
    add_linear(prefix + "mlp.down_proj", layer.down_proj);
  }
  tensors["model.norm.weight"] = w.output_norm;
  if (!impl_->config.tie_word_embeddings) tensors["lm_head.weight"] = w.lm_head.weight;
  return tensors;
}

std::string CausalLM::apply_chat_template(const Conversation& messages, bool add_generation_prompt) const {
  if (!impl_->chat_template) {
    throw ConfigError(fmt::format("{} has no usable chat template; load it with LoadOptions.chat_template set to a "
                                  "family (chatml, llama3, llama2, gemma, mistral) or pass formatted prompts",
                                  impl_->source.string()));
  }
  return impl_->chat_template->render(messages, add_generation_prompt);
}

std::vector<int64_t> CausalLM::encode_prompt(const std::string& formatted_prompt) const {
  // Chat templates write their own BOS where the format needs one, so the text
  // is tokenized without adding special tokens, as transformers'
  // apply_chat_template(tokenize=True) does.
  std::vector<int32_t> ids = impl_->tokenizer->encode(formatted_prompt, /*add_special=*/false, /*parse_special=*/true);
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::vector<int64_t> CausalLM::generate_greedy(const std::vector<int64_t>& prompt_ids, int64_t max_new_tokens) const {
  if (prompt_ids.empty()) throw ConfigError("CausalLM.generate_greedy: the prompt has no tokens");
  c10::InferenceMode guard;
  KVCache cache;
  at::Tensor input = at::tensor(prompt_ids, at::kLong).unsqueeze(0);
  std::vector<int64_t> generated;
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    at::Tensor logits = forward(input, {}, &cache, /*last_position_only=*/true).logits;  // [1, 1, V]
    int64_t next = logits.reshape({-1}).argmax().item<int64_t>();
    generated.push_back(next);
    if (std::find(impl_->eos_ids.begin(), impl_->eos_ids.end(), next) != impl_->eos_ids.end()) break;
    input = at::full({1, 1}, next, at::kLong);
  }
  return generated;
}

}  // namespace medfair
