// SentencePiece through libsentencepiece. GGUF files of Llama 2-style models
// carry the vocabulary (pieces, scores, types) instead of the .model file, so
// from_gguf_vocab() rebuilds a ModelProto from it.

#include <sentencepiece_processor.h>

#include <fmt/format.h>

#include <bit>
#include <cstring>

#include "internal.hpp"
#include "medfair/error.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair::text {

struct SentencePieceTokenizer::Impl {
  std::string origin;
  sentencepiece::SentencePieceProcessor processor;
  SpecialTokenIds special_ids;
  bool add_bos = true;
  bool add_eos = false;
  std::vector<bool> special;  // control and unknown pieces
  detail::AddedTokenMatcher added;

  void check_id(int32_t id) const {
    if (id < 0 || id >= processor.GetPieceSize()) {
      throw DataError(fmt::format("{}: token id {} is out of range; the vocabulary has ids 0 to {}", origin, id,
                                  processor.GetPieceSize() - 1));
    }
  }

  void finish() {
    const int size = processor.GetPieceSize();
    special.assign(size, false);
    for (int id = 0; id < size; ++id) {
      const bool control = processor.IsControl(id);
      special[id] = control || processor.IsUnknown(id);
      if (control) {
        detail::AddedToken token;
        token.content = processor.IdToPiece(id);
        token.id = id;
        token.special = true;
        added.add(std::move(token));
      }
    }
    const auto id_or_null = [](int id) { return id >= 0 ? std::optional<int32_t>(id) : std::nullopt; };
    if (!special_ids.bos) special_ids.bos = id_or_null(processor.bos_id());
    if (!special_ids.eos) special_ids.eos = id_or_null(processor.eos_id());
    if (!special_ids.unk) special_ids.unk = id_or_null(processor.unk_id());
    if (!special_ids.pad) special_ids.pad = id_or_null(processor.pad_id());
  }
};

SentencePieceTokenizer::SentencePieceTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_model_file(const std::filesystem::path& path,
                                                                                bool add_bos, bool add_eos) {
  const std::string bytes = detail::read_file(path.string());
  auto impl = std::make_unique<Impl>();
  impl->origin = path.string();
  const auto status = impl->processor.LoadFromSerializedProto(bytes);
  if (!status.ok()) {
    throw FormatError(fmt::format("{}: not a valid SentencePiece model: {}", path.string(), status.ToString()));
  }
  impl->add_bos = add_bos;
  impl->add_eos = add_eos;
  impl->finish();
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(impl)));
}

// ---- ModelProto wire format ------------------------------------------------------

namespace {

// Protocol buffers encoding (protobuf.dev/programming-guides/encoding); field
// numbers from sentencepiece's sentencepiece_model.proto.
void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_tag(std::string& out, uint32_t field, uint32_t wire_type) { put_varint(out, (field << 3) | wire_type); }

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

void put_int(std::string& out, uint32_t field, int64_t value) {
  put_tag(out, field, 0);
  put_varint(out, static_cast<uint64_t>(value));  // negative int32 values take ten bytes, as protobuf encodes them
}

void put_float(std::string& out, uint32_t field, float value) {
  put_tag(out, field, 5);
  const auto bits = std::bit_cast<uint32_t>(value);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

}  // namespace

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_gguf_vocab(const GgufVocab& vocab) {
  const std::string& origin = vocab.origin;
  if (vocab.model != "llama") {
    throw ConfigError(fmt::format("{}: tokenizer.ggml.model is {:?}; SentencePieceTokenizer reads \"llama\" "
                                  "vocabularies only",
                                  origin, vocab.model));
  }
  const std::size_t n = vocab.tokens.size();
  if (n == 0) throw FormatError(fmt::format("{}: tokenizer.ggml.tokens is empty", origin));
  if (!vocab.scores.empty() && vocab.scores.size() != n) {
    throw FormatError(fmt::format("{}: tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}", origin,
                                  vocab.scores.size(), n));
  }
  if (!vocab.token_types.empty() && vocab.token_types.size() != n) {
    throw FormatError(fmt::format("{}: tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                                  origin, vocab.token_types.size(), n));
  }

  std::string model;
  bool has_bytes = false;
  for (std::size_t id = 0; id < n; ++id) {
    const int32_t type = vocab.token_types.empty() ? 1 : vocab.token_types[id];
    if (type < 1 || type > 6) {
      throw FormatError(fmt::format("{}: tokenizer.ggml.token_type[{}] is {}; expected 1 to 6", origin, id, type));
    }
    has_bytes = has_bytes || type == 6;
    std::string piece;
    put_bytes(piece, 1, vocab.tokens[id]);
    put_float(piece, 2, vocab.scores.empty() ? 0.0f : vocab.scores[id]);
    put_int(piece, 3, type);  // GGUF token types use SentencePiece's numbering
    put_bytes(model, 1, piece);
  }

  const auto piece_at = [&](const std::optional<int32_t>& id, std::string_view name) -> std::optional<std::string> {
    if (!id) return std::nullopt;
    if (*id < 0 || static_cast<std::size_t>(*id) >= n) {
      throw FormatError(fmt::format("{}: {} token id {} is outside the vocabulary of {} tokens", origin, name, *id, n));
    }
    return vocab.tokens[*id];
  };
  std::string trainer;
  put_int(trainer, 3, 2);  // model_type = BPE
  put_int(trainer, 35, has_bytes ? 1 : 0);  // byte_fallback
  put_int(trainer, 40, vocab.special.unk.value_or(-1));
  put_int(trainer, 41, vocab.special.bos.value_or(-1));
  put_int(trainer, 42, vocab.special.eos.value_or(-1));
  put_int(trainer, 43, vocab.special.pad.value_or(-1));
  if (const auto p = piece_at(vocab.special.unk, "unknown")) put_bytes(trainer, 45, *p);
  if (const auto p = piece_at(vocab.special.bos, "BOS")) put_bytes(trainer, 46, *p);
  if (const auto p = piece_at(vocab.special.eos, "EOS")) put_bytes(trainer, 47, *p);
  if (const auto p = piece_at(vocab.special.pad, "padding")) put_bytes(trainer, 48, *p);
  put_bytes(model, 2, trainer);

  // Llama 2's normalizer: no character map, a "▁" dummy prefix, spaces kept.
  std::string normalizer;
  put_bytes(normalizer, 1, "identity");
  put_int(normalizer, 3, vocab.add_space_prefix.value_or(true) ? 1 : 0);
  put_int(normalizer, 4, 0);  // remove_extra_whitespaces
  put_int(normalizer, 5, 1);  // escape_whitespaces
  put_bytes(model, 3, normalizer);

  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  const auto status = impl->processor.LoadFromSerializedProto(model);
  if (!status.ok()) {
    throw FormatError(fmt::format("{}: libsentencepiece rejected the vocabulary built from tokenizer.ggml.*: {}", origin,
                                  status.ToString()));
  }
  impl->special_ids = vocab.special;
  impl->add_bos = vocab.add_bos;
  impl->add_eos = vocab.add_eos;
  impl->finish();
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(impl)));
}

// ---- Tokenizer interface ----------------------------------------------------------

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool add_special,
                                                    bool parse_special) const {
  detail::require_utf8(text, impl_->origin);
  std::vector<int32_t> ids;
  if (add_special && impl_->add_bos && impl_->special_ids.bos) ids.push_back(*impl_->special_ids.bos);
  // NOTE: each text run between special tokens is encoded separately, so it
  // gets its own dummy prefix "▁" as libsentencepiece adds it to any input.
  for (const auto& segment : impl_->added.split(text, parse_special)) {
    if (segment.token) {
      ids.push_back(*segment.token);
      continue;
    }
    std::vector<int> piece_ids;
    const auto status = impl_->processor.Encode(segment.text, &piece_ids);
    if (!status.ok()) {
      throw DataError(fmt::format("{}: SentencePiece encoding failed: {}", impl_->origin, status.ToString()));
    }
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }
  if (add_special && impl_->add_eos && impl_->special_ids.eos) ids.push_back(*impl_->special_ids.eos);
  return ids;
}

std::string SentencePieceTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  // libsentencepiece drops control pieces when decoding, so runs of ordinary
  // pieces are decoded by it and control pieces are written as their text.
  std::string text;
  std::vector<int> run;
  const auto flush = [&] {
    if (run.empty()) return;
    std::string decoded;
    const auto status = impl_->processor.Decode(run, &decoded);
    if (!status.ok()) {
      throw DataError(fmt::format("{}: SentencePiece decoding failed: {}", impl_->origin, status.ToString()));
    }
    text += decoded;
    run.clear();
  };
  for (const int32_t id : ids) {
    impl_->check_id(id);
    if (impl_->processor.IsControl(id)) {
      flush();
      if (!skip_special) text += impl_->processor.IdToPiece(id);
    } else {
      run.push_back(id);
    }
  }
  flush();
  return detail::utf8_lossy(text);
}

std::optional<int32_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const int id = impl_->processor.PieceToId(token);
  // PieceToId returns the unknown id for pieces it does not know.
  if (id < 0 || (impl_->processor.IsUnknown(id) && impl_->processor.IdToPiece(id) != token)) return std::nullopt;
  return id;
}

std::string SentencePieceTokenizer::id_to_token(int32_t id) const {
  impl_->check_id(id);
  return impl_->processor.IdToPiece(id);
}

std::size_t SentencePieceTokenizer::vocab_size() const { return impl_->processor.GetPieceSize(); }

bool SentencePieceTokenizer::is_special(int32_t id) const {
  impl_->check_id(id);
  return impl_->special[id];
}

const SpecialTokenIds& SentencePieceTokenizer::special_ids() const { return impl_->special_ids; }

}  // namespace medfair::text
