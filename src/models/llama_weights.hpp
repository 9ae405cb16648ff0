#pragma once
// Private to the models layer: the tensors of a Llama-family decoder in
// Hugging Face layout (weights [out, in], rotary halves not interleaved), and
// the loaders that fill them from GGUF files and safetensors folders.

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "medfair/models/config.hpp"

namespace medfair::detail {

/// A low-rank update of one projection, as PEFT's lora.Linear computes it:
/// y += scaling * B (A dropout(x)). The matrices are float32 whatever the base
/// dtype, as PEFT keeps them by default.
struct LoraAdapter {
  at::Tensor a;          ///< lora_A.weight [r, in]
  at::Tensor b;          ///< lora_B.weight [out, r]
  double scaling = 1.0;  ///< alpha / r, or alpha / sqrt(r) for rsLoRA
  double dropout = 0.0;  ///< dropout probability on x, applied while training only
};

/// Whether the adapters take part in a forward pass.
struct AdapterMode {
  bool enabled = false;   ///< add the adapters' updates
  bool training = false;  ///< apply adapter dropout
};

/// y = x W^T + b for x [..., in], weight [out, in], optional bias [out], plus
/// the adapter's update when one is attached and enabled.
struct Linear {
  at::Tensor weight;
  at::Tensor bias;                    ///< undefined when the projection has no bias
  std::shared_ptr<LoraAdapter> lora;  ///< null when the projection has no adapter

  /// The base projection only.
  at::Tensor forward(const at::Tensor& x) const;
  /// The projection with its adapter's update when `mode.enabled`.
  at::Tensor forward(const at::Tensor& x, const AdapterMode& mode) const;
  /// weight + scaling * B A in the weight's dtype (the weight itself without an adapter).
  at::Tensor merged_weight() const;
};

struct DecoderLayer {
  at::Tensor attn_norm;  ///< [D]
  Linear q_proj;         ///< [H*E, D]
  Linear k_proj;         ///< [G*E, D]
  Linear v_proj;         ///< [G*E, D]
  Linear o_proj;         ///< [D, H*E]
  at::Tensor ffn_norm;   ///< [D]
  Linear gate_proj;      ///< [F, D]
  Linear up_proj;        ///< [F, D]
  Linear down_proj;      ///< [D, F]
};

struct LlamaWeights {
  at::Tensor token_embedding;  ///< [V, D]
  std::vector<DecoderLayer> layers;
  at::Tensor output_norm;      ///< [D]
  Linear lm_head;              ///< [V, D]; shares token_embedding's storage when tied
  at::Tensor inv_freq;         ///< [E/2] float32 rotary inverse frequencies, scaling applied
};

/// Loads every tensor of a GGUF file, dequantized to float32 then cast to
/// `dtype`, undoing llama.cpp's Q/K row permutation for the "llama" family.
LlamaWeights load_gguf_weights(const io::GGUFFile& file, const LlamaConfig& config, at::ScalarType dtype,
                               const std::filesystem::path& path);

/// Loads a Hugging Face folder's model.safetensors (or its sharded index).
LlamaWeights load_safetensors_weights(const std::filesystem::path& folder, const LlamaConfig& config,
                                      at::ScalarType dtype);

/// Rotary inverse frequencies [E/2] for the config, with Llama 3 or linear
/// scaling applied. `freq_factors`, when defined, divides the frequencies as
/// GGUF's rope_freqs.weight tensor prescribes.
at::Tensor rotary_inverse_frequencies(const LlamaConfig& config, const at::Tensor& freq_factors = {});

/// The projection of `layer` called `name` (q_proj, ..., down_proj); throws
/// ConfigError for other names.
Linear& projection(DecoderLayer& layer, const std::string& name);
const Linear& projection(const DecoderLayer& layer, const std::string& name);

/// Checks a loaded tensor's shape and throws ModelError naming the tensor, the
/// file, the expected and the found shape.
void check_shape(const at::Tensor& tensor, std::vector<int64_t> expected, const std::string& name,
                 const std::filesystem::path& path);

}  // namespace medfair::detail
