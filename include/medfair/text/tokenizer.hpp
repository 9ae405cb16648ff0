#pragma once
// Tokenizers for the model families medfair runs: byte-level BPE (GPT-2,
// SmolLM2, Llama 3, Qwen2), SentencePiece (Llama 2, Mistral, Gemma) and
// WordPiece (BERT). Each one reproduces the ids that Hugging Face tokenizers
// produce for the same vocabulary. Encoding and decoding are const and
// thread-safe.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace medfair::text {

/// Ids of the tokens a model gives a fixed role; unset where the vocabulary has none.
struct SpecialTokenIds {
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  std::optional<int32_t> pad;
  std::optional<int32_t> unk;
};

/// Common interface of all tokenizers.
///
/// Text passed to encode() must be valid UTF-8, otherwise encode() throws
/// DataError naming the byte offset. decode() replaces byte sequences that are
/// not valid UTF-8 (a token sequence cut inside a character) with U+FFFD, as
/// Hugging Face tokenizers do. Ids outside [0, vocab_size()) raise DataError.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Splits `text` into token ids. With `add_special`, the tokens the model's
  /// post-processor adds (BOS, [CLS]/[SEP], ...) are added. With `parse_special`,
  /// special tokens written in the text (such as "<|im_start|>") become their
  /// single ids; without it they are tokenized as plain text.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = false,
                                      bool parse_special = true) const = 0;

  /// Joins the tokens of `ids` back into text, leaving out special tokens when
  /// `skip_special` is set.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = false) const = 0;

  /// Returns the id of a token given in the vocabulary's own spelling (for
  /// byte-level BPE that is the GPT-2 byte-to-unicode form, e.g. "Ġthe").
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;

  /// Returns the vocabulary spelling of `id`; throws DataError when out of range.
  virtual std::string id_to_token(int32_t id) const = 0;

  /// Number of ids, including added and special tokens.
  virtual std::size_t vocab_size() const = 0;

  /// True for control and special tokens (those decode() skips on request).
  virtual bool is_special(int32_t id) const = 0;

  /// Short name of the algorithm: "bpe", "sentencepiece" or "wordpiece".
  virtual std::string_view kind() const = 0;

  virtual const SpecialTokenIds& special_ids() const = 0;
  std::optional<int32_t> bos_id() const { return special_ids().bos; }
  std::optional<int32_t> eos_id() const { return special_ids().eos; }
  std::optional<int32_t> pad_id() const { return special_ids().pad; }
  std::optional<int32_t> unk_id() const { return special_ids().unk; }
};

/// The tokenizer fields of a GGUF file, filled by the caller from the metadata
/// keys named on each field. Only `model` and `tokens` are required.
struct GgufVocab {
  /// tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
  std::string model;
  /// tokenizer.ggml.pre: the pre-tokenizer name. Known: "gpt2"/"default" (GPT-2 regex),
  /// "smollm"/"starcoder"/"refact" (single digits, then the GPT-2 regex), "llama-bpe"/"llama3"
  /// (Llama 3 regex, ignore_merges), "qwen2". Any other name (also "") logs a warning once
  /// and uses the GPT-2 regex.
  std::string pre;
  /// tokenizer.ggml.tokens, indexed by id.
  std::vector<std::string> tokens;
  /// tokenizer.ggml.scores (SentencePiece only); empty means 0 for every token.
  std::vector<float> scores;
  /// tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
  /// Empty means normal for every token.
  std::vector<int32_t> token_types;
  /// tokenizer.ggml.merges ("a b" in byte-to-unicode spelling, BPE only), highest priority first.
  std::vector<std::string> merges;
  /// tokenizer.ggml.bos_token_id, eos_token_id, unknown_token_id, padding_token_id.
  SpecialTokenIds special;
  /// tokenizer.ggml.add_bos_token / add_eos_token: what encode(text, add_special=true) adds.
  bool add_bos = false;
  bool add_eos = false;
  /// tokenizer.ggml.add_space_prefix (SentencePiece only); unset means true, as for Llama 2.
  std::optional<bool> add_space_prefix;
  /// Name used in error messages, normally the GGUF file path.
  std::string origin = "<gguf vocab>";
};

/// Byte-level BPE over PCRE2 pre-tokenization.
class BpeTokenizer final : public Tokenizer {
 public:
  /// Loads a tokenizer.json whose model type is "BPE"; throws IOError, FormatError or ConfigError.
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::filesystem::path& path);
  /// Same from the JSON text; `origin` names it in error messages.
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json_string(std::string_view json, std::string_view origin);
  /// Builds the tokenizer of a GGUF file with tokenizer.ggml.model = "gpt2".
  static std::unique_ptr<BpeTokenizer> from_gguf_vocab(const GgufVocab& vocab);

  ~BpeTokenizer() override;
  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text, bool add_special = false, bool parse_special = true) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  std::size_t vocab_size() const override;
  bool is_special(int32_t id) const override;
  std::string_view kind() const override { return "bpe"; }
  const SpecialTokenIds& special_ids() const override;

  /// Splits `text` (no special-token handling) into the pre-tokens that BPE
  /// merges within, in their raw UTF-8 form. Exposed for tests.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  struct Impl;

 private:
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// SentencePiece (.model files, and GGUF files with tokenizer.ggml.model = "llama")
/// through libsentencepiece.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  /// Loads a SentencePiece .model file; throws IOError or FormatError.
  static std::unique_ptr<SentencePieceTokenizer> from_model_file(const std::filesystem::path& path,
                                                                 bool add_bos = true, bool add_eos = false);
  /// Builds a SentencePiece BPE model (byte fallback, dummy prefix) from GGUF vocab data.
  static std::unique_ptr<SentencePieceTokenizer> from_gguf_vocab(const GgufVocab& vocab);

  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text, bool add_special = false, bool parse_special = true) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  std::size_t vocab_size() const override;
  bool is_special(int32_t id) const override;
  std::string_view kind() const override { return "sentencepiece"; }
  const SpecialTokenIds& special_ids() const override;

  struct Impl;

 private:
  explicit SentencePieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Options of the WordPiece tokenizer; defaults follow BERT uncased.
struct WordPieceOptions {
  /// Lowercase and strip accents (BertNormalizer lowercase/strip_accents); default true.
  bool lowercase = true;
  /// Put spaces around CJK ideographs (handle_chinese_chars); default true.
  bool handle_chinese_chars = true;
  /// Words longer than this many characters become [UNK]; default 100.
  std::size_t max_input_chars_per_word = 100;
  /// When > 0, encode() keeps at most this many ids, special tokens included; default 0 (no truncation).
  std::size_t max_length = 0;
};

/// BERT's WordPiece with its normalizer, pre-tokenizer and [CLS]/[SEP] post-processing.
class WordPieceTokenizer final : public Tokenizer {
 public:
  /// Loads a tokenizer.json whose model type is "WordPiece".
  static std::unique_ptr<WordPieceTokenizer> from_tokenizer_json(const std::filesystem::path& path,
                                                                 std::optional<WordPieceOptions> options = {});
  /// Loads a vocab.txt (one token per line, id = line number).
  static std::unique_ptr<WordPieceTokenizer> from_vocab_txt(const std::filesystem::path& path,
                                                            const WordPieceOptions& options = {});

  ~WordPieceTokenizer() override;
  WordPieceTokenizer(const WordPieceTokenizer&) = delete;
  WordPieceTokenizer& operator=(const WordPieceTokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text, bool add_special = false, bool parse_special = true) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  std::size_t vocab_size() const override;
  bool is_special(int32_t id) const override;
  std::string_view kind() const override { return "wordpiece"; }
  const SpecialTokenIds& special_ids() const override;

  const WordPieceOptions& options() const;
  std::optional<int32_t> cls_id() const;
  std::optional<int32_t> sep_id() const;

  struct Impl;

 private:
  explicit WordPieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Loads a tokenizer.json of model type "BPE" or "WordPiece".
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& path);

/// Builds the tokenizer a GGUF file describes ("gpt2" → BPE, "llama" → SentencePiece);
/// throws ConfigError for other tokenizer.ggml.model values.
std::unique_ptr<Tokenizer> tokenizer_from_gguf_vocab(const GgufVocab& vocab);

}  // namespace medfair::text
