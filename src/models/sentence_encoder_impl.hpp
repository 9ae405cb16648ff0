#pragma once
// Private state behind medfair::SentenceEncoder: the BERT weights, the
// sentence-transformers module layout of a folder, and the encoder forward.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "medfair/models/sentence_encoder.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair::detail {

/// Weights of one BERT encoder layer, float32, in nn.Linear layout [out, in].
struct BertLayerWeights {
  at::Tensor qkv_weight;  ///< [3H, H]: query, key and value projections stacked
  at::Tensor qkv_bias;    ///< [3H]
  at::Tensor attention_output_weight, attention_output_bias;  ///< [H, H], [H]
  at::Tensor attention_norm_weight, attention_norm_bias;      ///< [H], [H]
  at::Tensor intermediate_weight, intermediate_bias;          ///< [I, H], [I]
  at::Tensor output_weight, output_bias;                      ///< [H, I], [H]
  at::Tensor output_norm_weight, output_norm_bias;            ///< [H], [H]
};

struct BertWeights {
  at::Tensor word_embeddings;        ///< [V, H]
  at::Tensor position_embeddings;    ///< [max_position_embeddings, H]
  at::Tensor token_type_embeddings;  ///< [type_vocab_size, H]
  at::Tensor embeddings_norm_weight, embeddings_norm_bias;  ///< [H], [H]
  std::vector<BertLayerWeights> layers;
};

/// Settings from a folder's sentence-transformers files (modules.json,
/// sentence_bert_config.json, the Pooling config). The defaults describe a
/// plain Hugging Face folder, which sentence-transformers mean-pools.
struct SentenceTransformerLayout {
  std::filesystem::path transformer_dir;  ///< folder with config.json, weights and tokenizer
  std::vector<PoolingMode> pooling_modes{PoolingMode::mean};
  bool normalize = false;
  std::optional<int64_t> max_seq_length;  ///< sentence_bert_config.json max_seq_length
  bool do_lower_case = false;             ///< sentence_bert_config.json do_lower_case
};

/// Reads modules.json and the files of the modules it lists. Throws IOError
/// for a listed file that is missing, FormatError for invalid JSON and
/// ModelError for module types and pooling modes the encoder does not implement.
SentenceTransformerLayout read_sentence_transformer_layout(const std::filesystem::path& folder);

/// Loads and shape-checks the encoder weights of `folder` (tensor names with
/// or without the "bert." prefix). Throws ModelError for a missing tensor, a
/// shape that does not match `config` or a non-floating dtype.
BertWeights load_bert_weights(const std::filesystem::path& folder, const BertConfig& config);

/// Runs the encoder: input_ids [B, T] int64, attention_mask [B, T] (nonzero
/// for real tokens) → last hidden state [B, T, H] float32. Inputs are checked
/// by the caller.
at::Tensor bert_forward(const BertConfig& config, const BertWeights& weights, const at::Tensor& input_ids,
                        const at::Tensor& attention_mask);

}  // namespace medfair::detail

namespace medfair {

struct SentenceEncoder::Impl {
  std::filesystem::path source;
  BertConfig config;
  detail::BertWeights weights;
  detail::SentenceTransformerLayout layout;
  std::unique_ptr<text::WordPieceTokenizer> tokenizer;
  /// Lower-case the text before tokenizing (do_lower_case over a cased tokenizer).
  bool lowercase_input = false;
  int64_t max_length = 0;
  int64_t batch_size = 32;
  int64_t pad_id = 0;
};

}  // namespace medfair
