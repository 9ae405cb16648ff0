#pragma once
// Private to the models layer: the tensors of a Llama-family decoder in
// Hugging Face layout (weights [out, in], rotary halves not interleaved), and
// the loaders that fill them from GGUF files and safetensors folders.

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <string>
#include <vector>

#include "medfair/models/config.hpp"

namespace medfair::detail {

/// y = x W^T + b for x [..., in], weight [out, in], optional bias [out].
struct Linear {
  at::Tensor weight;
  at::Tensor bias;  ///< undefined when the projection has no bias

  at::Tensor forward(const at::Tensor& x) const;
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

/// Checks a loaded tensor's shape and throws ModelError naming the tensor, the
/// file, the expected and the found shape.
void check_shape(const at::Tensor& tensor, std::vector<int64_t> expected, const std::string& name,
                 const std::filesystem::path& path);

}  // namespace medfair::detail
