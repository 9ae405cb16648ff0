// BERT encoder weights from safetensors and the encoder forward pass, following
// transformers' BertModel (models/bert/modeling_bert.py): embeddings (word +
// absolute position + token type, LayerNorm), then post-LayerNorm layers of
// self-attention and a feed-forward block.

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <string>
#include <vector>

#include "medfair/error.hpp"
#include "medfair/io/safetensors.hpp"
#include "sentence_encoder_impl.hpp"

namespace medfair::detail {

namespace {

class BertTensorReader {
 public:
  BertTensorReader(const std::filesystem::path& folder, const BertConfig& config)
      : weights_(io::SafetensorsFolder::open(folder)), config_(config) {
    // BertModel.save_pretrained writes bare names; BertForMaskedLM and other
    // task models nest the encoder under "bert.".
    if (!weights_.find("embeddings.word_embeddings.weight") && weights_.find("bert.embeddings.word_embeddings.weight")) {
      prefix_ = "bert.";
    }
  }

  // Reads `name` (LayerNorm parameters may use the TensorFlow-era names gamma
  // and beta, which transformers also accepts) and checks its shape.
  at::Tensor read(const std::string& name, std::vector<int64_t> expected_shape) const {
    std::string full_name = prefix_ + name;
    std::optional<io::SafetensorsFolder::Entry> entry = weights_.find(full_name);
    if (!entry) entry = find_legacy_norm(full_name);
    if (!entry) {
      throw ModelError(fmt::format("{}: missing tensor \"{}\" (looked for it with and without the \"bert.\" prefix); "
                                   "the folder does not hold a BERT encoder with config.json's {} layers",
                                   weights_.folder().string(), name, config_.num_hidden_layers));
    }
    const io::SafetensorsTensorInfo& info = *entry->info;
    if (info.shape != expected_shape) {
      throw ModelError(fmt::format("{}: tensor \"{}\" has shape [{}], expected [{}] from config.json (hidden_size {}, "
                                   "intermediate_size {}, vocab_size {})",
                                   weights_.folder().string(), info.name, fmt::join(info.shape, ", "),
                                   fmt::join(expected_shape, ", "), config_.hidden_size, config_.intermediate_size,
                                   config_.vocab_size));
    }
    at::Tensor tensor = at::empty(expected_shape, at::kFloat);
    entry->file->to_float(info, tensor.data_ptr<float>());
    return tensor;
  }

 private:
  std::optional<io::SafetensorsFolder::Entry> find_legacy_norm(const std::string& name) const {
    const std::pair<std::string_view, std::string_view> renames[] = {{"LayerNorm.weight", "LayerNorm.gamma"},
                                                                     {"LayerNorm.bias", "LayerNorm.beta"}};
    for (const auto& [modern, legacy] : renames) {
      if (name.ends_with(modern)) {
        return weights_.find(name.substr(0, name.size() - modern.size()) + std::string(legacy));
      }
    }
    return std::nullopt;
  }

  io::SafetensorsFolder weights_;
  const BertConfig& config_;
  std::string prefix_;
};

at::Tensor activation(const at::Tensor& x, const std::string& name) {
  if (name == "gelu") return at::gelu(x);  // exact erf form, as torch.nn.functional.gelu
  if (name == "relu") return at::relu(x);
  return at::gelu(x, "tanh");  // gelu_new and gelu_pytorch_tanh
}

}  // namespace

BertWeights load_bert_weights(const std::filesystem::path& folder, const BertConfig& config) {
  BertTensorReader reader(folder, config);
  const int64_t H = config.hidden_size;
  const int64_t I = config.intermediate_size;

  BertWeights weights;
  weights.word_embeddings = reader.read("embeddings.word_embeddings.weight", {config.vocab_size, H});
  weights.position_embeddings =
      reader.read("embeddings.position_embeddings.weight", {config.max_position_embeddings, H});
  weights.token_type_embeddings = reader.read("embeddings.token_type_embeddings.weight", {config.type_vocab_size, H});
  weights.embeddings_norm_weight = reader.read("embeddings.LayerNorm.weight", {H});
  weights.embeddings_norm_bias = reader.read("embeddings.LayerNorm.bias", {H});

  for (int64_t index = 0; index < config.num_hidden_layers; ++index) {
    const std::string layer = fmt::format("encoder.layer.{}.", index);
    BertLayerWeights w;
    w.qkv_weight = at::cat({reader.read(layer + "attention.self.query.weight", {H, H}),
                            reader.read(layer + "attention.self.key.weight", {H, H}),
                            reader.read(layer + "attention.self.value.weight", {H, H})});
    w.qkv_bias = at::cat({reader.read(layer + "attention.self.query.bias", {H}),
                          reader.read(layer + "attention.self.key.bias", {H}),
                          reader.read(layer + "attention.self.value.bias", {H})});
    w.attention_output_weight = reader.read(layer + "attention.output.dense.weight", {H, H});
    w.attention_output_bias = reader.read(layer + "attention.output.dense.bias", {H});
    w.attention_norm_weight = reader.read(layer + "attention.output.LayerNorm.weight", {H});
    w.attention_norm_bias = reader.read(layer + "attention.output.LayerNorm.bias", {H});
    w.intermediate_weight = reader.read(layer + "intermediate.dense.weight", {I, H});
    w.intermediate_bias = reader.read(layer + "intermediate.dense.bias", {I});
    w.output_weight = reader.read(layer + "output.dense.weight", {H, I});
    w.output_bias = reader.read(layer + "output.dense.bias", {H});
    w.output_norm_weight = reader.read(layer + "output.LayerNorm.weight", {H});
    w.output_norm_bias = reader.read(layer + "output.LayerNorm.bias", {H});
    weights.layers.push_back(std::move(w));
  }
  return weights;
}

at::Tensor bert_forward(const BertConfig& config, const BertWeights& weights, const at::Tensor& input_ids,
                        const at::Tensor& attention_mask) {
  const int64_t B = input_ids.size(0);
  const int64_t T = input_ids.size(1);
  const int64_t H = config.hidden_size;
  const int64_t heads = config.num_attention_heads;
  const int64_t head_dim = H / heads;
  const double eps = config.layer_norm_eps;

  // Single-sentence inputs: every token has token type 0.
  at::Tensor x = at::embedding(weights.word_embeddings, input_ids) +
                 weights.position_embeddings.slice(0, 0, T).unsqueeze(0) + weights.token_type_embeddings[0];
  x = at::layer_norm(x, {H}, weights.embeddings_norm_weight, weights.embeddings_norm_bias, eps);

  // [B, 1, 1, T]: every query attends to the real tokens of its row only.
  const at::Tensor key_mask = attention_mask.ne(0).view({B, 1, 1, T});

  for (const BertLayerWeights& w : weights.layers) {
    at::Tensor qkv = at::linear(x, w.qkv_weight, w.qkv_bias).view({B, T, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
    at::Tensor context = at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], key_mask);  // [B, heads, T, E]
    context = context.transpose(1, 2).reshape({B, T, H});
    at::Tensor attended = at::linear(context, w.attention_output_weight, w.attention_output_bias);
    x = at::layer_norm(attended + x, {H}, w.attention_norm_weight, w.attention_norm_bias, eps);

    at::Tensor hidden = activation(at::linear(x, w.intermediate_weight, w.intermediate_bias), config.hidden_act);
    at::Tensor output = at::linear(hidden, w.output_weight, w.output_bias);
    x = at::layer_norm(output + x, {H}, w.output_norm_weight, w.output_norm_bias, eps);
  }
  return x;
}

}  // namespace medfair::detail
