// SentencePiece BPE built from GGUF-style vocab data written here.

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "medfair/error.hpp"
#include "medfair/text/tokenizer.hpp"
#include "text_test_support.hpp"

using medfair::text::GgufVocab;
using medfair::text::SentencePieceTokenizer;

namespace {

// <unk>, <s>, </s>, the 256 byte pieces, then pieces whose scores order the
// merges: a higher score merges first.
GgufVocab tiny_vocab() {
  GgufVocab vocab;
  vocab.model = "llama";
  vocab.origin = "tiny.gguf";
  const auto add = [&](std::string piece, float score, int32_t type) {
    vocab.tokens.push_back(std::move(piece));
    vocab.scores.push_back(score);
    vocab.token_types.push_back(type);
  };
  add("<unk>", 0, 2);
  add("<s>", 0, 3);
  add("</s>", 0, 3);
  for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0, 6);
  const std::vector<std::string> pieces{"▁", "h", "e", "l", "o", "▁h", "▁he", "ll", "llo", "▁hello"};
  float score = -1;
  for (const auto& piece : pieces) add(piece, score--, 1);
  vocab.special.unk = 0;
  vocab.special.bos = 1;
  vocab.special.eos = 2;
  vocab.add_bos = true;
  return vocab;
}

std::vector<std::string> pieces_of(const SentencePieceTokenizer& tokenizer, const std::vector<int32_t>& ids) {
  std::vector<std::string> pieces;
  for (const int32_t id : ids) pieces.push_back(tokenizer.id_to_token(id));
  return pieces;
}

}  // namespace

TEST_CASE("sentencepiece gguf vocab merges", "[text][sentencepiece]") {
  const auto tokenizer = SentencePieceTokenizer::from_gguf_vocab(tiny_vocab());
  CHECK(tokenizer->vocab_size() == 3 + 256 + 10);
  CHECK(pieces_of(*tokenizer, tokenizer->encode("hello")) == std::vector<std::string>{"▁hello"});
  CHECK(pieces_of(*tokenizer, tokenizer->encode("hi")) == std::vector<std::string>{"▁h", "<0x69>"});
  const auto with_bos = tokenizer->encode("hello", true);
  REQUIRE(with_bos.size() == 2);
  CHECK(with_bos.front() == 1);
  CHECK(tokenizer->decode(tokenizer->encode("hello hi")) == "hello hi");
  CHECK(tokenizer->decode(with_bos) == "<s>hello");
  CHECK(tokenizer->decode(with_bos, true) == "hello");
  CHECK(tokenizer->is_special(1));
  CHECK_FALSE(tokenizer->is_special(268));
}

TEST_CASE("sentencepiece gguf vocab errors", "[text][sentencepiece]") {
  auto vocab = tiny_vocab();
  vocab.scores.pop_back();
  MEDFAIR_CHECK_THROWS(SentencePieceTokenizer::from_gguf_vocab(vocab), medfair::FormatError,
                       Catch::Matchers::Contains("tokenizer.ggml.scores has 268 entries"));
  vocab = tiny_vocab();
  vocab.token_types[5] = 9;
  MEDFAIR_CHECK_THROWS(SentencePieceTokenizer::from_gguf_vocab(vocab), medfair::FormatError,
                       Catch::Matchers::Contains("tokenizer.ggml.token_type[5] is 9"));
  vocab = tiny_vocab();
  vocab.model = "gpt2";
  CHECK_THROWS_AS(SentencePieceTokenizer::from_gguf_vocab(vocab), medfair::ConfigError);
  const auto tokenizer = SentencePieceTokenizer::from_gguf_vocab(tiny_vocab());
  MEDFAIR_CHECK_THROWS(tokenizer->decode(std::vector<int32_t>{269}), medfair::DataError,
                       Catch::Matchers::Contains("token id 269 is out of range"));
}
