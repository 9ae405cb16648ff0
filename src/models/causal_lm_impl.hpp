#pragma once
// Private state behind medfair::CausalLM.

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "llama_weights.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/models/lora.hpp"
#include "medfair/text/chat_template.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair {

struct CausalLM::Impl {
  LlamaConfig config;
  detail::LlamaWeights weights;
  at::ScalarType dtype = at::kFloat;
  std::filesystem::path source;
  std::shared_ptr<const text::Tokenizer> tokenizer;
  std::shared_ptr<const text::ChatTemplate> chat_template;
  std::vector<int64_t> eos_ids;  ///< tokens that end generation
  SpecialTokens special_tokens;

  bool has_lora = false;          ///< adapters are attached (add_lora or load_adapter)
  LoraOptions lora;               ///< their settings, when has_lora
  detail::AdapterMode adapter_mode;  ///< enabled follows has_lora unless disabled
  bool gradient_checkpointing = false;  ///< recompute layer activations in the backward pass
};

namespace detail {

/// Tensors that every decoder layer of one forward call shares.
struct LayerInputs {
  at::Tensor cos;        ///< [B, 1, T, E] rotary cosines in the model's dtype
  at::Tensor sin;        ///< [B, 1, T, E] rotary sines
  at::Tensor attn_mask;  ///< [B, 1, T, P+T] bool, or undefined when no mask is needed
  bool causal_only = false;  ///< plain causal attention without a mask
  AdapterMode mode;          ///< the model's adapter mode when the call started
  /// [B] int64, or undefined. When defined, the layer returns its output
  /// [B, 1, D] at this one position of each row only, while still caching
  /// the keys and values of every position.
  at::Tensor output_position;
};

/// Runs decoder layer `layer_index` on hidden states [B, T, D], appending its
/// keys and values to `cache` when one is given.
at::Tensor decoder_layer(const CausalLM::Impl& model, int64_t layer_index, const at::Tensor& input,
                         const LayerInputs& shared, KVCache* cache);

/// decoder_layer without a cache, keeping only its input for the backward
/// pass, which runs the layer again to rebuild the activations.
at::Tensor checkpointed_layer(const CausalLM::Impl& model, int64_t layer_index, const at::Tensor& input,
                              const LayerInputs& shared);

}  // namespace detail

}  // namespace medfair
