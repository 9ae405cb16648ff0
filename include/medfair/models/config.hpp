#pragma once
// Hyperparameters of a Llama-family decoder (Llama 2/3/3.1, SmolLM2, Mistral,
// Qwen2), read from GGUF metadata or a Hugging Face config.json.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace medfair {

namespace io {
class GGUFFile;
}

/// How rotary position frequencies are rescaled for long contexts.
struct RopeScaling {
  /// "none", "linear" (positions divided by `factor`) or "llama3" (the
  /// wavelength-dependent rule of Llama 3.1's config.json `rope_scaling`).
  std::string type = "none";
  double factor = 1.0;                             ///< context extension factor
  double low_freq_factor = 1.0;                    ///< llama3 only
  double high_freq_factor = 4.0;                   ///< llama3 only
  int64_t original_max_position_embeddings = 8192; ///< llama3 only
};

/// Shape and numerics of a Llama-family decoder. Names follow llama.cpp's
/// convention: the most general word first (`n_layer`, `n_head_kv`).
struct LlamaConfig {
  std::string architecture = "llama";  ///< "llama", "mistral" or "qwen2"
  int64_t vocab_size = 0;              ///< V: rows of the token embedding
  int64_t n_embd = 0;                  ///< D: model width (hidden_size)
  int64_t n_layer = 0;                 ///< number of decoder blocks
  int64_t n_head = 0;                  ///< query heads
  int64_t n_head_kv = 0;               ///< key/value heads (grouped-query attention when < n_head)
  int64_t head_dim = 0;                ///< width of one head; n_embd / n_head unless set
  int64_t n_ff = 0;                    ///< width of the SwiGLU MLP (intermediate_size)
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;    ///< the output head reuses the token embedding
  bool attention_bias = false;         ///< q/k/v projections carry biases (Qwen2)
  /// Mistral's sliding attention window in tokens; 0 means full attention.
  /// CausalLM implements full attention only and rejects longer inputs.
  int64_t sliding_window = 0;

  /// Reads the `<arch>.*` keys of a GGUF file. Throws ModelError for an
  /// unsupported `general.architecture` and FormatError for missing keys.
  static LlamaConfig from_gguf(const io::GGUFFile& file);

  /// Reads a Hugging Face config.json. Throws ModelError for an unsupported
  /// `model_type` and ConfigError for missing or inconsistent fields.
  static LlamaConfig from_hf_config(const std::filesystem::path& config_json);

  /// Checks that the sizes are positive and consistent (heads divide evenly).
  /// Throws ConfigError naming the first inconsistent field.
  void validate() const;
};

/// Architectures `CausalLM` implements, as spelled in GGUF `general.architecture`
/// and Hugging Face `model_type`.
const std::vector<std::string>& supported_architectures();

}  // namespace medfair
