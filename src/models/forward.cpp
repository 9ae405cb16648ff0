// The decoder's forward pass. It follows Hugging Face transformers'
// modeling_llama.py numerics (RMSNorm in float32, rotate-half rotary
// embeddings, scaled dot-product attention with grouped key/value heads), so
// logits can be compared with transformers directly.

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <optional>
#include <string_view>

#include "causal_lm_impl.hpp"
#include "medfair/error.hpp"

namespace medfair {

namespace detail {

namespace {

using OneDnnLinear = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                std::string_view, c10::List<std::optional<at::Scalar>>,
                                std::optional<std::string_view>);

// libtorch's oneDNN linear (mkldnn::_linear_pointwise), or nothing when this
// build of libtorch does not register it.
const std::optional<c10::TypedOperatorHandle<OneDnnLinear>>& onednn_linear() {
  static const std::optional<c10::TypedOperatorHandle<OneDnnLinear>> op =
      []() -> std::optional<c10::TypedOperatorHandle<OneDnnLinear>> {
    if (!at::hasMKLDNN()) return std::nullopt;
    auto handle = c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
    if (!handle) return std::nullopt;
    return handle->typed<OneDnnLinear>();
  }();
  return op;
}

// x W^T + b. In inference mode, float32 on the CPU runs through oneDNN, which
// is faster than at::linear's BLAS call here (bench/linear_backends.py).
// NOTE: mkldnn::_linear_pointwise is an internal libtorch operator without
// autograd support. Training keeps at::linear, and so does activation
// checkpointing, whose two passes must round alike. A libtorch without the
// operator falls back to at::linear.
at::Tensor base_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (c10::InferenceMode::is_enabled() && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
      weight.scalar_type() == at::kFloat && weight.dim() == 2 && weight.is_contiguous() && onednn_linear()) {
    std::optional<at::Tensor> b;
    if (bias.defined()) b = bias;
    return onednn_linear()->call(x.contiguous(), weight, b, "none", c10::List<std::optional<at::Scalar>>(),
                                 std::nullopt);
  }
  return at::linear(x, weight, bias);
}

}  // namespace

at::Tensor Linear::forward(const at::Tensor& x) const { return base_linear(x, weight, bias); }

at::Tensor Linear::forward(const at::Tensor& x, const AdapterMode& mode) const {
  if (!lora || !mode.enabled) return base_linear(x, weight, bias);
  at::Tensor input = x.to(lora->a.scalar_type());
  if (mode.training && lora->dropout > 0.0) input = at::dropout(input, lora->dropout, /*train=*/true);
  // The scaling goes into B, the small factor, instead of into the update.
  at::Tensor scaled_b = lora->b * lora->scaling;
  if (x.scalar_type() != lora->a.scalar_type()) {
    // PEFT casts the input to the adapter's dtype, adds in that dtype and
    // casts the sum back to the base output's dtype.
    at::Tensor y = at::linear(x, weight, bias);
    return (y + at::linear(at::linear(input, lora->a), scaled_b)).to(y.scalar_type());
  }
  // Same dtype: the update accumulates into the base output in one matrix
  // product, without a separate update tensor.
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = weight.size(0);
  at::Tensor rows = x.reshape({-1, x.size(-1)});
  at::Tensor y = base_linear(rows, weight, bias);
  y.addmm_(at::mm(input.reshape({-1, input.size(-1)}), lora->a.t()), scaled_b.t());
  return y.view(shape);
}

at::Tensor Linear::merged_weight() const {
  if (!lora) return weight;
  at::Tensor delta = at::matmul(lora->b, lora->a) * lora->scaling;
  return (weight.to(at::kFloat) + delta).to(weight.scalar_type());
}

namespace {

// RMSNorm as transformers computes it: normalise in float32, cast back, scale.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor x32 = x.to(at::kFloat);
  at::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  at::Tensor normed = x32 * at::rsqrt(variance + eps);
  return weight * normed.to(x.scalar_type());
}

// Rotates the two halves of the last dimension: (x1, x2) -> (-x2, x1).
at::Tensor rotate_half(const at::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half);
  at::Tensor x2 = x.narrow(-1, half, half);
  return at::cat({x2.neg(), x1}, -1);
}

// Positions of the new tokens [B, T]. Each real token gets its index among the
// real tokens of its row, continuing from the cache, and padding gets 0.
at::Tensor token_positions(const at::Tensor& mask, const at::Tensor& start) {
  at::Tensor counts = mask.to(at::kLong).cumsum(1) - 1;
  return (start.unsqueeze(1) + counts).clamp_min(0);
}

// Boolean attention mask [B, 1, T, P+T]. Query i attends to key j when j is a
// real token and j <= P + i. Every query also attends to itself, so a padding
// row is never fully masked, because that would make its softmax NaN.
at::Tensor attention_mask(const at::Tensor& key_mask, int64_t past, int64_t new_tokens) {
  auto options = at::TensorOptions().dtype(at::kLong).device(key_mask.device());
  at::Tensor query_index = at::arange(new_tokens, options).unsqueeze(1) + past;  // [T, 1]
  at::Tensor key_index = at::arange(past + new_tokens, options).unsqueeze(0);    // [1, P+T]
  at::Tensor causal = key_index.le(query_index);                                 // [T, P+T]
  at::Tensor self = key_index.eq(query_index);
  at::Tensor allowed = causal.unsqueeze(0).logical_and(key_mask.unsqueeze(1));   // [B, T, P+T]
  allowed = allowed.logical_or(self.unsqueeze(0));
  return allowed.unsqueeze(1);
}

// Appends this call's keys or values [B, G, T, E] to a layer's cached ones and
// returns all of them [B, G, P+T, E]. A cache with reserved room is written in
// place, and any other cache is copied into a new tensor.
at::Tensor append_to_cache(at::Tensor& cached, const at::Tensor& fresh, int64_t past, int64_t capacity) {
  const int64_t total = past + fresh.size(2);
  if (capacity >= total) {
    if (!cached.defined()) {
      // The first call on a reserved cache allocates its buffer.
      cached = at::empty({fresh.size(0), fresh.size(1), capacity, fresh.size(3)}, fresh.options()).narrow(2, 0, 0);
    }
    at::Tensor grown = cached.as_strided({fresh.size(0), fresh.size(1), total, fresh.size(3)}, cached.strides(),
                                         cached.storage_offset());
    grown.narrow(2, past, fresh.size(2)).copy_(fresh);
    cached = grown;
    return grown;
  }
  cached = past > 0 ? at::cat({cached, fresh}, 2) : fresh;
  return cached;
}

}  // namespace

at::Tensor decoder_layer(const CausalLM::Impl& m, int64_t layer_index, const at::Tensor& input,
                         const LayerInputs& shared, KVCache* cache) {
  const LlamaConfig& c = m.config;
  const DecoderLayer& layer = m.weights.layers[layer_index];
  const AdapterMode& mode = shared.mode;
  const int64_t batch = input.size(0);
  const int64_t tokens = input.size(1);

  // Attention: norm, project, rotate, attend over cache + new tokens, project back.
  at::Tensor h = rms_norm(input, layer.attn_norm, c.rms_norm_eps);
  at::Tensor k = layer.k_proj.forward(h, mode).view({batch, tokens, c.n_head_kv, c.head_dim}).transpose(1, 2);
  at::Tensor v = layer.v_proj.forward(h, mode).view({batch, tokens, c.n_head_kv, c.head_dim}).transpose(1, 2);
  k = k * shared.cos + rotate_half(k) * shared.sin;
  if (cache != nullptr) {
    const int64_t past = cache->length();
    k = append_to_cache(cache->keys[layer_index], k, past, cache->capacity);
    v = append_to_cache(cache->values[layer_index], v, past, cache->capacity);
  }

  // Every position needs keys and values, but a layer whose output is wanted
  // at one position per row computes queries, attention, the output
  // projection and the MLP for that position alone.
  at::Tensor residual = input;
  at::Tensor cos = shared.cos;
  at::Tensor sin = shared.sin;
  std::optional<at::Tensor> mask;
  if (shared.attn_mask.defined()) mask = shared.attn_mask;
  bool causal = shared.causal_only;
  int64_t queries = tokens;
  if (shared.output_position.defined()) {
    auto pick = [&](const at::Tensor& t, int64_t dim) {
      std::vector<int64_t> shape = t.sizes().vec();
      shape[dim] = 1;
      std::vector<int64_t> view(t.dim(), 1);
      view[0] = batch;
      return t.gather(dim, shared.output_position.view(view).expand(shape));
    };
    h = pick(h, 1);
    residual = pick(input, 1);
    cos = pick(cos, 2);
    sin = pick(sin, 2);
    if (mask) mask = pick(*mask, 2);
    // Without a mask, the position is the row's last token and attends to
    // every key. A causal flag would align it with the first key instead.
    causal = false;
    queries = 1;
  }
  at::Tensor q = layer.q_proj.forward(h, mode).view({batch, queries, c.n_head, c.head_dim}).transpose(1, 2);
  q = q * cos + rotate_half(q) * sin;
  at::Tensor attended = at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/causal, std::nullopt,
                                                         /*enable_gqa=*/c.n_head != c.n_head_kv);
  attended = attended.transpose(1, 2).reshape({batch, queries, c.n_head * c.head_dim});
  at::Tensor x = residual + layer.o_proj.forward(attended, mode);

  // MLP: norm, SwiGLU, residual.
  h = rms_norm(x, layer.ffn_norm, c.rms_norm_eps);
  at::Tensor gated = at::silu(layer.gate_proj.forward(h, mode)) * layer.up_proj.forward(h, mode);
  return x + layer.down_proj.forward(gated, mode);
}

}  // namespace detail

namespace {

// The decoder up to and including the final norm: hidden states [B, T, D], or
// [B, 1, D] with `last_position_only`, in the model's dtype.
at::Tensor decoder_hidden(const CausalLM::Impl& m, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                          KVCache* cache, bool last_position_only) {
  const LlamaConfig& c = m.config;
  if (input_ids.dim() != 2) {
    throw ConfigError(fmt::format("CausalLM.forward: input_ids must be [batch, tokens], got {} dimensions",
                                  input_ids.dim()));
  }
  const int64_t batch = input_ids.size(0);
  const int64_t tokens = input_ids.size(1);
  if (tokens == 0) throw ConfigError("CausalLM.forward: input_ids has no tokens");
  at::Tensor ids = input_ids.to(at::kLong);
  if (ids.numel() > 0) {
    int64_t low = ids.min().item<int64_t>();
    int64_t high = ids.max().item<int64_t>();
    if (low < 0 || high >= c.vocab_size) {
      throw ConfigError(fmt::format("CausalLM.forward: token id {} is outside the vocabulary [0, {})",
                                    low < 0 ? low : high, c.vocab_size));
    }
  }
  at::Tensor mask = attention_mask.defined() ? attention_mask.to(at::kBool) : at::ones({batch, tokens}, at::kBool);
  if (mask.sizes() != ids.sizes()) {
    throw ConfigError(fmt::format("CausalLM.forward: attention_mask has shape [{}] but input_ids has [{}]",
                                  fmt::join(mask.sizes(), ", "), fmt::join(ids.sizes(), ", ")));
  }
  const bool use_cache = cache != nullptr && !cache->empty();
  if (use_cache && cache->batch_size() != batch) {
    throw ConfigError(fmt::format("CausalLM.forward: the KV cache contains {} rows but input_ids has {}",
                                  cache->batch_size(), batch));
  }
  const int64_t past = use_cache ? cache->length() : 0;
  if (c.sliding_window > 0 && past + tokens > c.sliding_window) {
    // NOTE: within the window, sliding and full attention are identical, so
    // only longer sequences would need the windowed mask.
    throw ConfigError(fmt::format("CausalLM.forward: {} tokens exceed the model's sliding window of {}; medfair "
                                  "implements full attention only, so shorten the input",
                                  past + tokens, c.sliding_window));
  }

  // Positions, rotary tables and the attention mask shared by all layers.
  at::Tensor start = use_cache ? cache->next_position : at::zeros({batch}, at::kLong);
  at::Tensor positions = detail::token_positions(mask, start);                           // [B, T]
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * m.weights.inv_freq;         // [B, T, E/2]
  at::Tensor angles = at::cat({freqs, freqs}, -1).unsqueeze(1);                           // [B, 1, T, E]
  at::Tensor cos = angles.cos().to(m.dtype);
  at::Tensor sin = angles.sin().to(m.dtype);
  at::Tensor key_mask = use_cache ? at::cat({cache->mask, mask}, 1) : mask;               // [B, P+T]

  // Without padding, a pass with no cache is plainly causal and a single new
  // token attends to every key. Neither needs an explicit mask, so SDPA can
  // use its fused kernels instead of the masked reference path.
  const bool no_padding = key_mask.all().item<bool>();
  const bool causal_only = no_padding && past == 0 && tokens > 1;
  at::Tensor attn_mask;                                                                   // [B, 1, T, P+T]
  if (!no_padding || (past > 0 && tokens > 1)) attn_mask = detail::attention_mask(key_mask, past, tokens);

  // Token embedding.
  at::Tensor x = at::embedding(m.weights.token_embedding, ids);  // [B, T, D]

  detail::LayerInputs shared{cos, sin, attn_mask, causal_only, m.adapter_mode, {}};
  const bool checkpoint = m.gradient_checkpointing && cache == nullptr && at::GradMode::is_enabled();
  if (cache != nullptr && cache->empty()) {
    cache->keys.resize(c.n_layer);
    cache->values.resize(c.n_layer);
  }
  // Each row's last real token. When only its logits are wanted, the last
  // layer computes its output there alone.
  at::Tensor last;
  if (last_position_only) last = (tokens - 1) - mask.flip({1}).to(at::kLong).argmax(1);  // [B]
  const bool narrow_last_layer = last_position_only && tokens > 1 && !checkpoint;
  for (int64_t layer_index = 0; layer_index < c.n_layer; ++layer_index) {
    if (checkpoint) {
      x = detail::checkpointed_layer(m, layer_index, x, shared);
    } else if (narrow_last_layer && layer_index == c.n_layer - 1) {
      detail::LayerInputs at_last = shared;
      at_last.output_position = last;
      x = detail::decoder_layer(m, layer_index, x, at_last, cache);  // [B, 1, D]
    } else {
      x = detail::decoder_layer(m, layer_index, x, shared, cache);
    }
  }

  if (cache != nullptr) {
    cache->mask = key_mask;
    cache->next_position = start + mask.to(at::kLong).sum(1);
  }

  // Final norm and output head, optionally on each row's last real token only.
  if (last_position_only && !narrow_last_layer) {
    at::Tensor index = last.view({batch, 1, 1}).expand({batch, 1, x.size(2)});
    x = x.gather(1, index);
  }
  return detail::rms_norm(x, m.weights.output_norm, c.rms_norm_eps);
}

}  // namespace

ForwardOutput CausalLM::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, KVCache* cache,
                                bool last_position_only) const {
  at::Tensor hidden = decoder_hidden(*impl_, input_ids, attention_mask, cache, last_position_only);
  return ForwardOutput{impl_->weights.lm_head.forward(hidden).to(at::kFloat)};
}

at::Tensor CausalLM::hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask) const {
  return decoder_hidden(*impl_, input_ids, attention_mask, nullptr, false);
}

at::Tensor CausalLM::output_logits(const at::Tensor& hidden) const {
  return impl_->weights.lm_head.forward(hidden).to(at::kFloat);
}

at::Tensor CausalLM::logits(const at::Tensor& input_ids, const at::Tensor& attention_mask) const {
  return forward(input_ids, attention_mask).logits;
}

}  // namespace medfair
