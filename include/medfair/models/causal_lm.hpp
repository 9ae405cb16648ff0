#pragma once
// medfair::CausalLM: a Llama-family decoder (Llama 2/3/3.1, SmolLM2, Mistral,
// Qwen2) on libtorch, loaded from a GGUF file or a Hugging Face folder.
//
// Shape letters used throughout this header: B batch, T tokens in this call,
// P tokens already in the KV cache, D model width, V vocabulary, H query heads,
// G key/value heads, E head width.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "medfair/chat.hpp"
#include "medfair/models/config.hpp"
#include "medfair/models/lora.hpp"

namespace medfair {

namespace text {
class Tokenizer;
class ChatTemplate;
}  // namespace text

/// Options for CausalLM::load.
struct LoadOptions {
  /// Weight and activation type: "float32" (default) or "bfloat16". Norms and
  /// the softmax always run in float32.
  std::string dtype = "float32";
  /// Chat template family to force ("chatml", "llama3", "llama2", "gemma", ...);
  /// empty means: recognise it from the model's own template string.
  std::string chat_template;
  /// A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors)
  /// to attach after loading; empty (default) means none.
  std::filesystem::path adapter;
};

/// BOS, EOS and PAD token ids as transformers' tokenizer for the same files
/// reports them.
struct SpecialTokens {
  std::optional<int64_t> bos;
  std::optional<int64_t> eos;
  std::optional<int64_t> pad;
};

/// Keys and values of the tokens already processed, for incremental decoding
/// and for reusing a shared prompt prefix across a batch.
struct KVCache {
  std::vector<at::Tensor> keys;    ///< per layer, [B, G, P, E]
  std::vector<at::Tensor> values;  ///< per layer, [B, G, P, E]
  at::Tensor mask;                 ///< [B, P] bool, true where a cached position is a real token
  at::Tensor next_position;        ///< [B] int64, rotary position of each row's next token
  /// Positions that keys and values can hold before forward() must copy them
  /// to grow; 0 (default) unless reserve() was called.
  int64_t capacity = 0;

  bool empty() const { return keys.empty(); }
  int64_t batch_size() const;
  int64_t length() const;  ///< P

  /// Makes room for `length` positions in total, so that forward() writes new
  /// keys and values in place instead of copying the whole cache on every
  /// call. Copies of this struct then share one buffer: append through one
  /// copy only. expand() and select_rows() return caches without the room.
  void reserve(int64_t length);

  /// Returns a cache whose B rows all copy row 0 of this one (shared-prefix reuse).
  KVCache expand(int64_t batch_size) const;
  /// Returns the cache restricted to the given rows, in that order.
  KVCache select_rows(const at::Tensor& rows) const;
};

/// Outputs of CausalLM::forward.
struct ForwardOutput {
  at::Tensor logits;  ///< [B, T, V] float32, or [B, 1, V] when only the last position was requested
};

class CausalLM {
 public:
  /// Loads a model from a `.gguf` file or a Hugging Face folder (config.json,
  /// model.safetensors or model.safetensors.index.json, tokenizer.json).
  /// Throws IOError, FormatError or ModelError naming the file and what is wrong.
  static CausalLM load(const std::filesystem::path& path, const LoadOptions& options = {});

  const LlamaConfig& config() const;
  const text::Tokenizer& tokenizer() const;
  std::shared_ptr<const text::Tokenizer> shared_tokenizer() const;
  /// BOS, EOS and PAD: from tokenizer_config.json for a folder (falling back to
  /// the tokenizer's own), from the GGUF metadata for a file.
  const SpecialTokens& special_tokens() const;
  /// Path of the weights, as given to load().
  const std::filesystem::path& source() const;
  /// "float32" or "bfloat16".
  std::string dtype() const;

  /// The weights under their Hugging Face names (model.layers.0.self_attn.q_proj.weight,
  /// ...), in the model's dtype. The tensors are the model's own, not copies.
  std::map<std::string, at::Tensor> state_dict() const;

  /// Renders a conversation through the model's chat template.
  std::string apply_chat_template(const Conversation& messages, bool add_generation_prompt = true) const;
  /// Tokenizes a prompt that is already formatted. Special tokens such as
  /// <|im_start|> are recognised and no BOS is added, since chat templates
  /// write their own.
  std::vector<int64_t> encode_prompt(const std::string& formatted_prompt) const;

  /// Runs the decoder on input_ids [B, T] (int64). attention_mask [B, T] marks
  /// real tokens with 1 and padding with 0 (left or right padding); an
  /// undefined mask means no padding. When `cache` is given, its P positions
  /// are attended to and the T new positions are appended to it. With
  /// `last_position_only`, logits are computed for position T-1 of each row
  /// only, which is what scoring and sampling need.
  ForwardOutput forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                        KVCache* cache = nullptr, bool last_position_only = false) const;

  /// Logits [B, T, V] (float32) for input_ids [B, T]; shorthand for forward().
  at::Tensor logits(const at::Tensor& input_ids, const at::Tensor& attention_mask = {}) const;

  /// The decoder's output after the final norm, [B, T, D] in the model's
  /// dtype. With output_logits() it splits forward() in two, so a caller can
  /// project only the positions it needs onto the vocabulary.
  at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask = {}) const;
  /// Logits [..., V] (float32) for hidden states [..., D] from hidden_states().
  at::Tensor output_logits(const at::Tensor& hidden) const;

  // ---- LoRA adapters ----------------------------------------------------------
  // Adapters are shared by every copy of this CausalLM, since copies share the
  // weights. Base weights never require gradients; the adapter matrices do.

  /// Attaches fresh adapters initialised as PEFT does by default (A
  /// kaiming-uniform with a = sqrt(5), B zero), so the model's output is
  /// unchanged until training. Throws ConfigError when adapters are already
  /// attached or the options are invalid.
  void add_lora(const LoraOptions& options);
  /// Attaches the adapter of a PEFT folder (adapter_config.json,
  /// adapter_model.safetensors). Throws IOError, FormatError or ConfigError
  /// naming the file, and ModelError when a tensor's shape does not fit.
  void load_adapter(const std::filesystem::path& folder);
  /// Writes the adapters as a PEFT folder: adapter_config.json and
  /// adapter_model.safetensors (float32, PEFT's tensor names), both atomically.
  /// Creates the folder. Throws ConfigError without adapters.
  void save_adapter(const std::filesystem::path& folder) const;
  /// Writes a Hugging Face model folder with the adapters merged into the
  /// weights (W + scaling B A): config.json, model.safetensors in the model's
  /// dtype, and the tokenizer files when the model was loaded from a folder.
  void save_merged(const std::filesystem::path& folder) const;
  /// Removes the adapters.
  void remove_lora();

  bool has_lora() const;
  /// The adapters' settings; throws ConfigError without adapters.
  const LoraOptions& lora_options() const;
  /// Adapter matrices under PEFT's names
  /// (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight, ...),
  /// float32. The tensors are the model's own, so an optimiser can update them.
  std::map<std::string, at::Tensor> adapter_state_dict() const;
  /// The adapter matrices in a fixed order (layer, then projection, A before B).
  std::vector<at::Tensor> adapter_parameters() const;
  /// Turns the adapters' contribution on (default) or off; off gives the base
  /// model, which DPO uses as its reference.
  void set_adapters_enabled(bool enabled);
  bool adapters_enabled() const;
  /// Training mode applies adapter dropout; default off.
  void set_training(bool training);
  bool training() const;
  /// Activation checkpointing; default off. When on, a forward pass that
  /// records gradients without a KV cache keeps only each decoder layer's
  /// input, and the backward pass runs the layer again to rebuild its
  /// activations. That trades about one more forward pass for memory. Adapter
  /// dropout draws the same mask in both runs.
  void set_gradient_checkpointing(bool enabled);
  bool gradient_checkpointing() const;

  /// Greedy decoding of up to `max_new_tokens` tokens after `prompt_ids`,
  /// stopping at an end-of-sequence token. Returns only the new tokens.
  std::vector<int64_t> generate_greedy(const std::vector<int64_t>& prompt_ids, int64_t max_new_tokens) const;

  struct Impl;

 private:
  explicit CausalLM(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace medfair
