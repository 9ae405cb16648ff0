// WordPiece with all-MiniLM-L6-v2's vocabulary against ids transformers gave
// for strings written in tests/golden/text/make_golden.py.

#include <catch2/catch.hpp>

#include "medfair/error.hpp"
#include "medfair/text/tokenizer.hpp"
#include "test_support.hpp"
#include "text_test_support.hpp"

using medfair::text::WordPieceOptions;
using medfair::text::WordPieceTokenizer;

namespace {

std::filesystem::path minilm() {
  const auto dir = medfair::test::minilm_dir();
  if (dir.empty()) FAIL("MEDFAIR_MINILM_DIR is not set; run eval \"$(python scripts/asset_paths.py)\"");
  return dir;
}

}  // namespace

TEST_CASE("wordpiece golden ids", "[text][wordpiece]") {
  const auto golden = medfair::test::read_json_file(medfair::test::text_golden_dir() / "wordpiece_golden.json");
  REQUIRE(golden.size() >= 10);
  WordPieceOptions options;
  const auto from_json = WordPieceTokenizer::from_tokenizer_json(minilm() / "tokenizer.json", options);
  const auto from_vocab = WordPieceTokenizer::from_vocab_txt(minilm() / "vocab.txt", options);
  for (const auto& c : golden) {
    const std::string text = c["text"];
    INFO(text);
    const auto expected = c["ids"].get<std::vector<int32_t>>();
    CHECK(from_json->encode(text, true) == expected);
    CHECK(from_vocab->encode(text, true) == expected);
  }
}

TEST_CASE("wordpiece truncation", "[text][wordpiece]") {
  WordPieceOptions options;
  options.max_length = 6;
  const auto tokenizer = WordPieceTokenizer::from_vocab_txt(minilm() / "vocab.txt", options);
  const auto ids = tokenizer->encode("one two three four five six seven", true);
  REQUIRE(ids.size() == 6);
  CHECK(ids.front() == 101);
  CHECK(ids.back() == 102);
  CHECK(tokenizer->decode(ids, true) == "one two three four");
  // The tokenizer.json of all-MiniLM-L6-v2 truncates to 128 tokens.
  const auto from_json = WordPieceTokenizer::from_tokenizer_json(minilm() / "tokenizer.json");
  CHECK(from_json->options().max_length == 128);
}

TEST_CASE("wordpiece long word unknown", "[text][wordpiece]") {
  const auto tokenizer = WordPieceTokenizer::from_vocab_txt(minilm() / "vocab.txt");
  const std::string long_word(101, 'a');
  CHECK(tokenizer->encode(long_word) == std::vector<int32_t>{100});
  CHECK(tokenizer->encode(std::string(100, 'a')) != std::vector<int32_t>{100});
}

TEST_CASE("wordpiece errors", "[text][wordpiece]") {
  const auto tokenizer = WordPieceTokenizer::from_vocab_txt(minilm() / "vocab.txt");
  MEDFAIR_CHECK_THROWS(tokenizer->decode(std::vector<int32_t>{30522}), medfair::DataError,
                       Catch::Matchers::Contains("token id 30522 is out of range"));
  MEDFAIR_CHECK_THROWS(tokenizer->encode("\xFF"), medfair::DataError,
                       Catch::Matchers::Contains("not valid UTF-8 at byte offset 0"));
  const auto empty = medfair::test::scratch_dir("text") / "empty_vocab.txt";
  std::ofstream(empty) << "a\nb\n";
  MEDFAIR_CHECK_THROWS(WordPieceTokenizer::from_vocab_txt(empty), medfair::FormatError,
                       Catch::Matchers::Contains("has no [UNK] token"));
}
