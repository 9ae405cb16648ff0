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
};

}  // namespace medfair
