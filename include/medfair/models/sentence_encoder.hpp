#pragma once
// medfair::SentenceEncoder: a BERT-family sentence-embedding encoder on
// libtorch (all-MiniLM-L6-v2 and other BERT models in Hugging Face folder
// format), with the pooling and normalisation of sentence-transformers.
//
// Shape letters used throughout this header: N sentences, B sentences in one
// batch, T tokens (the longest sentence of the batch, [CLS] and [SEP]
// included), H encoder width (hidden_size), D embedding width (H times the
// number of pooling modes).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace medfair {

namespace text {
class WordPieceTokenizer;
}

/// Shape and numerics of a BERT encoder, from a Hugging Face config.json
/// (transformers' BertConfig field names).
struct BertConfig {
  int64_t vocab_size = 0;               ///< rows of the word embedding
  int64_t hidden_size = 0;              ///< H: encoder width
  int64_t num_hidden_layers = 0;        ///< number of encoder layers
  int64_t num_attention_heads = 0;      ///< heads per self-attention; must divide hidden_size
  int64_t intermediate_size = 0;        ///< width of the feed-forward layer
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;          ///< rows of the token type (segment) embedding
  /// Activation of the feed-forward layer: "gelu" (exact, erf-based), "gelu_new"
  /// or "gelu_pytorch_tanh" (tanh approximation), or "relu".
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-12;

  /// Reads a config.json. Throws IOError when it cannot be read, FormatError
  /// for invalid JSON, ModelError for a model_type other than "bert", a
  /// position_embedding_type other than "absolute" or an unsupported
  /// hidden_act, and ConfigError for missing or inconsistent fields.
  static BertConfig from_hf_config(const std::filesystem::path& config_json);

  /// Checks that the sizes are positive and the heads divide the width.
  /// Throws ConfigError naming the first invalid field; `origin` names the
  /// file in the message.
  void validate(std::string_view origin) const;
};

/// Reduction of token embeddings [B, T, H] to one vector per sentence, named as
/// in sentence-transformers' Pooling module. Several modes are concatenated in
/// the order the Pooling config lists them (enum order for the legacy
/// pooling_mode_* booleans).
enum class PoolingMode {
  cls,                   ///< the first real token ([CLS])
  max,                   ///< element-wise maximum over real tokens
  mean,                  ///< mean over real tokens
  mean_sqrt_len_tokens,  ///< sum over real tokens divided by sqrt(number of real tokens)
  weightedmean,          ///< mean weighted by position (1, 2, ... T)
  lasttoken,             ///< the last real token
};

/// The sentence-transformers name of a pooling mode ("cls", "mean", ...).
std::string_view pooling_mode_name(PoolingMode mode);

/// Options for SentenceEncoder::load.
struct SentenceEncoderOptions {
  /// Sentences per forward pass in encode(); default 32.
  int64_t batch_size = 32;
  /// Maximum tokens per sentence, [CLS] and [SEP] included; longer sentences
  /// are truncated. Default 0: the model's own limit (max_seq_length of
  /// sentence_bert_config.json, else the smaller of the tokenizer's
  /// model_max_length and max_position_embeddings).
  int64_t max_length = 0;
};

class SentenceEncoder {
 public:
  /// Loads a sentence-transformers or plain Hugging Face BERT folder:
  /// config.json, model.safetensors (or its sharded index), tokenizer.json
  /// (or vocab.txt with tokenizer_config.json), and, when present,
  /// modules.json, sentence_bert_config.json and the Pooling module's
  /// config.json. Without modules.json the encoder uses mean pooling and no
  /// normalisation, as sentence-transformers does for a plain model.
  /// Throws IOError, FormatError, ConfigError or ModelError naming the file and
  /// the value at fault.
  static SentenceEncoder load(const std::filesystem::path& path, const SentenceEncoderOptions& options = {});

  const BertConfig& config() const;
  const text::WordPieceTokenizer& tokenizer() const;
  /// The folder given to load().
  const std::filesystem::path& source() const;
  /// D: width of the sentence embeddings.
  int64_t dimension() const;
  /// Maximum tokens per sentence, [CLS] and [SEP] included.
  int64_t max_length() const;
  int64_t batch_size() const;
  const std::vector<PoolingMode>& pooling_modes() const;
  /// True when the model lists a Normalize module, so embeddings have unit L2 norm.
  bool normalizes() const;

  /// Tokenizes one sentence into the ids encode() feeds the encoder: [CLS], the
  /// WordPiece tokens truncated to max_length() - 2, [SEP].
  std::vector<int32_t> tokenize(std::string_view sentence) const;

  /// Embeds sentences. Returns [N, D] float32 in input order, L2-normalised
  /// when normalizes() is true. Sentences are sorted by token count and run in
  /// batches of batch_size() with right padding. Thread-safe.
  at::Tensor encode(const std::vector<std::string>& sentences) const;

  /// Runs the encoder on input_ids [B, T] (int64) with attention_mask [B, T]
  /// (1 for real tokens, 0 for padding) and returns the last hidden state
  /// [B, T, H] float32.
  at::Tensor token_embeddings(const at::Tensor& input_ids, const at::Tensor& attention_mask) const;

  /// Applies the model's pooling modes (and normalisation, when it has it) to
  /// token embeddings [B, T, H] under attention_mask [B, T]; returns [B, D].
  at::Tensor pool(const at::Tensor& token_embeddings, const at::Tensor& attention_mask) const;

  struct Impl;

 private:
  explicit SentenceEncoder(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

/// Cosine similarity of two vectors of equal length (any floating dtype),
/// computed in float64; 0 when either vector has zero norm. Throws ConfigError
/// when the shapes differ or are not 1-D.
double cosine(const at::Tensor& a, const at::Tensor& b);

/// Cosine similarities [N, M] between the rows of a [N, D] and b [M, D].
/// Rows with zero norm give 0. Throws ConfigError when the widths differ.
at::Tensor cosine_similarity_matrix(const at::Tensor& a, const at::Tensor& b);

}  // namespace medfair
