#pragma once
// Options of the low-rank adapters (LoRA, Hu et al. 2021, arXiv:2106.09685)
// that CausalLM can attach to its projections. The numerics, initialisation
// and file layout follow Hugging Face PEFT (0.21) so that adapters move
// between medfair and PEFT unchanged.

#include <cstdint>
#include <string>
#include <vector>

namespace medfair {

/// Adapter settings, with PEFT LoraConfig's field meanings.
struct LoraOptions {
  /// Rank r of each adapter; default 8 (PEFT's default).
  int64_t r = 8;
  /// lora_alpha; the update B A x is scaled by alpha / r. Default 8.
  double alpha = 8.0;
  /// Dropout probability on the adapter's input while training; default 0.
  double dropout = 0.0;
  /// Rank-stabilised scaling alpha / sqrt(r) (rsLoRA) instead of alpha / r; default false.
  bool use_rslora = false;
  /// Projections that get an adapter, from q_proj, k_proj, v_proj, o_proj,
  /// gate_proj, up_proj, down_proj; default q_proj and v_proj (PEFT's Llama default).
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};
  /// Seed of the generator that initialises the A matrices; default 0.
  uint64_t seed = 0;

  /// The factor applied to B A x: alpha / r, or alpha / sqrt(r) with use_rslora.
  double scaling() const;
  /// Throws ConfigError naming the first invalid field.
  void validate() const;
};

/// The projection names an adapter can target, in decoder-layer order.
const std::vector<std::string>& lora_target_names();

}  // namespace medfair
