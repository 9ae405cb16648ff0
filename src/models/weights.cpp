// Loading Llama-family weights from GGUF files and Hugging Face safetensors
// folders into the Hugging Face tensor layout that forward.cpp expects.

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <numbers>

#include "llama_weights.hpp"
#include "medfair/error.hpp"
#include "medfair/io/gguf.hpp"
#include "medfair/io/safetensors.hpp"

namespace medfair::detail {

void check_shape(const at::Tensor& tensor, std::vector<int64_t> expected, const std::string& name,
                 const std::filesystem::path& path) {
  if (tensor.sizes() != at::IntArrayRef(expected)) {
    throw ModelError(fmt::format("{}: tensor {} has shape [{}] but the model config requires [{}]; the file and "
                                 "its metadata disagree",
                                 path.string(), name, fmt::join(tensor.sizes(), ", "), fmt::join(expected, ", ")));
  }
}

at::Tensor rotary_inverse_frequencies(const LlamaConfig& config, const at::Tensor& freq_factors) {
  // Same float32 arithmetic as transformers' default rotary initialisation.
  const int64_t dim = config.head_dim;
  at::Tensor exponents = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim);
  at::Tensor inv_freq = 1.0 / at::pow(at::scalar_tensor(config.rope_theta, at::kFloat), exponents);

  const RopeScaling& scaling = config.rope_scaling;
  if (freq_factors.defined()) {
    // GGUF files carry Llama 3 scaling precomputed as divisors (rope_freqs.weight).
    if (freq_factors.numel() != inv_freq.numel()) {
      throw ModelError(fmt::format("rope_freqs.weight has {} values but head_dim {} needs {}", freq_factors.numel(),
                                   dim, inv_freq.numel()));
    }
    return inv_freq / freq_factors.to(at::kFloat).reshape({-1});
  }
  if (scaling.type == "linear") return inv_freq / scaling.factor;
  if (scaling.type == "llama3") {
    // Llama 3.1's rule (transformers' _compute_llama3_parameters): long
    // wavelengths are divided by `factor`, short ones kept, and the band
    // between is interpolated smoothly.
    const double old_context = static_cast<double>(scaling.original_max_position_embeddings);
    const double low_freq_wavelen = old_context / scaling.low_freq_factor;
    const double high_freq_wavelen = old_context / scaling.high_freq_factor;
    at::Tensor wavelen = 2.0 * std::numbers::pi / inv_freq;
    at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq);
    at::Tensor smooth = (old_context / wavelen - scaling.low_freq_factor) /
                        (scaling.high_freq_factor - scaling.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled;
    at::Tensor is_medium = wavelen.ge(high_freq_wavelen).logical_and(wavelen.le(low_freq_wavelen));
    return at::where(is_medium, smoothed, scaled);
  }
  return inv_freq;
}

namespace {

// llama.cpp's converter reorders the rows of Q and K so that its rotary kernel
// can rotate adjacent pairs; this restores transformers' half-split order.
// Within each head, GGUF orders the rows as (E/2, 2) pairs and HF as two
// (2, E/2) halves; the converter's permutation is the transpose between them.
at::Tensor undo_rotary_permutation(const at::Tensor& weight, int64_t n_head) {
  const int64_t rows = weight.size(0);
  std::vector<int64_t> grouped = {n_head, rows / n_head / 2, 2};
  for (int64_t d = 1; d < weight.dim(); ++d) grouped.push_back(weight.size(d));
  return weight.reshape(grouped).transpose(1, 2).reshape(weight.sizes()).contiguous();
}

class GGUFTensors {
 public:
  GGUFTensors(const io::GGUFFile& file, at::ScalarType dtype) : file_(file), dtype_(dtype) {}

  bool contains(const std::string& name) const { return file_.find_tensor(name) != nullptr; }

  at::Tensor load(const std::string& name, std::vector<int64_t> expected) const {
    const io::GGUFTensorInfo* info = file_.find_tensor(name);
    if (info == nullptr) {
      throw ModelError(fmt::format("{}: tensor {} is missing; the file is not a complete {} model",
                                   file_.path().string(), name, file_.get_string_opt("general.architecture").value_or("?")));
    }
    std::vector<int64_t> shape = io::GGUFFile::torch_shape(*info);
    at::Tensor tensor = at::empty(shape, at::kFloat);
    file_.dequantize(*info, tensor.data_ptr<float>());
    check_shape(tensor, std::move(expected), name, file_.path());
    return dtype_ == at::kFloat ? tensor : tensor.to(dtype_);
  }

  at::Tensor load_optional(const std::string& name, std::vector<int64_t> expected) const {
    return contains(name) ? load(name, std::move(expected)) : at::Tensor();
  }

 private:
  const io::GGUFFile& file_;
  at::ScalarType dtype_;
};

}  // namespace

LlamaWeights load_gguf_weights(const io::GGUFFile& file, const LlamaConfig& c, at::ScalarType dtype,
                               const std::filesystem::path& path) {
  GGUFTensors tensors(file, dtype);
  const int64_t q_rows = c.n_head * c.head_dim;
  const int64_t kv_rows = c.n_head_kv * c.head_dim;
  const bool permuted = c.architecture == "llama";

  LlamaWeights w;
  w.token_embedding = tensors.load("token_embd.weight", {c.vocab_size, c.n_embd});
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string prefix = fmt::format("blk.{}.", i);
    DecoderLayer layer;
    layer.attn_norm = tensors.load(prefix + "attn_norm.weight", {c.n_embd});
    layer.q_proj.weight = tensors.load(prefix + "attn_q.weight", {q_rows, c.n_embd});
    layer.k_proj.weight = tensors.load(prefix + "attn_k.weight", {kv_rows, c.n_embd});
    layer.v_proj.weight = tensors.load(prefix + "attn_v.weight", {kv_rows, c.n_embd});
    layer.o_proj.weight = tensors.load(prefix + "attn_output.weight", {c.n_embd, q_rows});
    layer.q_proj.bias = tensors.load_optional(prefix + "attn_q.bias", {q_rows});
    layer.k_proj.bias = tensors.load_optional(prefix + "attn_k.bias", {kv_rows});
    layer.v_proj.bias = tensors.load_optional(prefix + "attn_v.bias", {kv_rows});
    if (permuted) {
      // K uses the key/value head count: with grouped-query attention the
      // converter permuted K per key/value head, not per query head.
      layer.q_proj.weight = undo_rotary_permutation(layer.q_proj.weight, c.n_head);
      layer.k_proj.weight = undo_rotary_permutation(layer.k_proj.weight, c.n_head_kv);
      if (layer.q_proj.bias.defined()) layer.q_proj.bias = undo_rotary_permutation(layer.q_proj.bias, c.n_head);
      if (layer.k_proj.bias.defined()) layer.k_proj.bias = undo_rotary_permutation(layer.k_proj.bias, c.n_head_kv);
    }
    layer.ffn_norm = tensors.load(prefix + "ffn_norm.weight", {c.n_embd});
    layer.gate_proj.weight = tensors.load(prefix + "ffn_gate.weight", {c.n_ff, c.n_embd});
    layer.up_proj.weight = tensors.load(prefix + "ffn_up.weight", {c.n_ff, c.n_embd});
    layer.down_proj.weight = tensors.load(prefix + "ffn_down.weight", {c.n_embd, c.n_ff});
    w.layers.push_back(std::move(layer));
  }
  w.output_norm = tensors.load("output_norm.weight", {c.n_embd});
  // Files with tied embeddings (SmolLM2) have no output.weight.
  w.lm_head.weight = tensors.contains("output.weight") ? tensors.load("output.weight", {c.vocab_size, c.n_embd})
                                                       : w.token_embedding;
  at::Tensor freq_factors = tensors.contains("rope_freqs.weight")
                                ? tensors.load("rope_freqs.weight", {c.head_dim / 2}).to(at::kFloat)
                                : at::Tensor();
  w.inv_freq = rotary_inverse_frequencies(c, freq_factors);
  (void)path;
  return w;
}

namespace {

class SafetensorsTensors {
 public:
  SafetensorsTensors(const io::SafetensorsFolder& folder, at::ScalarType dtype) : folder_(folder), dtype_(dtype) {}

  bool contains(const std::string& name) const { return folder_.find(name).has_value(); }

  at::Tensor load(const std::string& name, std::vector<int64_t> expected) const {
    std::optional<io::SafetensorsFolder::Entry> entry = folder_.find(name);
    if (!entry) {
      throw ModelError(fmt::format("{}: tensor {} is missing from the safetensors files; the folder is not a "
                                   "complete Llama-family checkpoint",
                                   folder_.folder().string(), name));
    }
    at::Tensor tensor = at::empty(entry->info->shape, at::kFloat);
    entry->file->to_float(*entry->info, tensor.data_ptr<float>());
    check_shape(tensor, std::move(expected), name, entry->file->path());
    return dtype_ == at::kFloat ? tensor : tensor.to(dtype_);
  }

  at::Tensor load_optional(const std::string& name, std::vector<int64_t> expected) const {
    return contains(name) ? load(name, std::move(expected)) : at::Tensor();
  }

 private:
  const io::SafetensorsFolder& folder_;
  at::ScalarType dtype_;
};

}  // namespace

LlamaWeights load_safetensors_weights(const std::filesystem::path& folder_path, const LlamaConfig& c,
                                      at::ScalarType dtype) {
  io::SafetensorsFolder folder = io::SafetensorsFolder::open(folder_path);
  SafetensorsTensors tensors(folder, dtype);
  const int64_t q_rows = c.n_head * c.head_dim;
  const int64_t kv_rows = c.n_head_kv * c.head_dim;

  LlamaWeights w;
  w.token_embedding = tensors.load("model.embed_tokens.weight", {c.vocab_size, c.n_embd});
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string prefix = fmt::format("model.layers.{}.", i);
    DecoderLayer layer;
    layer.attn_norm = tensors.load(prefix + "input_layernorm.weight", {c.n_embd});
    layer.q_proj.weight = tensors.load(prefix + "self_attn.q_proj.weight", {q_rows, c.n_embd});
    layer.k_proj.weight = tensors.load(prefix + "self_attn.k_proj.weight", {kv_rows, c.n_embd});
    layer.v_proj.weight = tensors.load(prefix + "self_attn.v_proj.weight", {kv_rows, c.n_embd});
    layer.o_proj.weight = tensors.load(prefix + "self_attn.o_proj.weight", {c.n_embd, q_rows});
    layer.q_proj.bias = tensors.load_optional(prefix + "self_attn.q_proj.bias", {q_rows});
    layer.k_proj.bias = tensors.load_optional(prefix + "self_attn.k_proj.bias", {kv_rows});
    layer.v_proj.bias = tensors.load_optional(prefix + "self_attn.v_proj.bias", {kv_rows});
    if (c.attention_bias && !layer.q_proj.bias.defined()) {
      throw ModelError(fmt::format("{}: config.json sets attention_bias but {}self_attn.q_proj.bias is missing",
                                   folder_path.string(), prefix));
    }
    layer.ffn_norm = tensors.load(prefix + "post_attention_layernorm.weight", {c.n_embd});
    layer.gate_proj.weight = tensors.load(prefix + "mlp.gate_proj.weight", {c.n_ff, c.n_embd});
    layer.up_proj.weight = tensors.load(prefix + "mlp.up_proj.weight", {c.n_ff, c.n_embd});
    layer.down_proj.weight = tensors.load(prefix + "mlp.down_proj.weight", {c.n_embd, c.n_ff});
    w.layers.push_back(std::move(layer));
  }
  w.output_norm = tensors.load("model.norm.weight", {c.n_embd});
  if (tensors.contains("lm_head.weight") && !c.tie_word_embeddings) {
    w.lm_head.weight = tensors.load("lm_head.weight", {c.vocab_size, c.n_embd});
  } else if (c.tie_word_embeddings) {
    w.lm_head.weight = w.token_embedding;
  } else {
    throw ModelError(fmt::format("{}: lm_head.weight is missing and config.json does not set tie_word_embeddings",
                                 folder_path.string()));
  }
  w.inv_freq = rotary_inverse_frequencies(c);
  return w;
}

}  // namespace medfair::detail
