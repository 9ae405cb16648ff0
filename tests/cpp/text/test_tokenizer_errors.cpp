// Malformed tokenizer.json and GGUF vocab data: each error names what is wrong.

#include <catch2/catch.hpp>

#include "medfair/error.hpp"
#include "medfair/text/tokenizer.hpp"
#include "test_support.hpp"
#include "text_test_support.hpp"

using medfair::text::BpeTokenizer;
using medfair::text::GgufVocab;
using nlohmann::json;
using Catch::Matchers::Contains;

namespace {

json minimal_bpe() {
  return json::parse(R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"}
  })");
}

std::filesystem::path write_scratch(const std::string& name, const std::string& text) {
  const auto path = medfair::test::scratch_dir("text") / name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

}  // namespace

TEST_CASE("tokenizer json minimal loads", "[text][errors]") {
  const auto tokenizer = BpeTokenizer::from_tokenizer_json_string(minimal_bpe().dump(), "minimal");
  CHECK(tokenizer->encode("ab") == std::vector<int32_t>{2});
  CHECK(tokenizer->encode("ba") == std::vector<int32_t>{1, 0});
}

TEST_CASE("tokenizer json missing model", "[text][errors]") {
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(R"({"version": "1.0"})", "t.json"),
                       medfair::FormatError, Contains("t.json: missing \"model\" object"));
  const auto path = write_scratch("no_model.json", R"({"version": "1.0"})");
  MEDFAIR_CHECK_THROWS(medfair::text::load_tokenizer_json(path), medfair::FormatError, Contains("missing \"model\""));
}

TEST_CASE("tokenizer json bad merges entry", "[text][errors]") {
  json spec = minimal_bpe();
  spec["model"]["merges"] = json::array({"a b", "ab"});
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::FormatError,
                       Contains("model.merges[1] is \"ab\"; expected two tokens separated by one space"));
  spec["model"]["merges"] = json::array({json::array({"a"})});
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::FormatError,
                       Contains("model.merges[0] is [\"a\"]"));
  spec["model"]["merges"] = json::array({"a c"});
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::FormatError,
                       Contains("uses token \"c\", which is not in the vocabulary"));
}

TEST_CASE("tokenizer json unknown model type", "[text][errors]") {
  json spec = minimal_bpe();
  spec["model"]["type"] = "Unigram";
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::ConfigError,
                       Contains("model type \"Unigram\" is not byte-level BPE"));
  const auto path = write_scratch("unigram.json", spec.dump());
  MEDFAIR_CHECK_THROWS(medfair::text::load_tokenizer_json(path), medfair::ConfigError,
                       Contains("model type \"Unigram\" is not supported; expected \"BPE\" or \"WordPiece\""));
}

TEST_CASE("tokenizer json invalid json", "[text][errors]") {
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(R"({"model": )", "t.json"), medfair::FormatError,
                       Contains("t.json: invalid JSON at byte"));
}

TEST_CASE("tokenizer json unsupported parts", "[text][errors]") {
  json spec = minimal_bpe();
  spec["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [{"type": "Metaspace"}, {"type": "ByteLevel"}]})");
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::ConfigError,
                       Contains("pre_tokenizer type \"Metaspace\" is not supported"));
  spec = minimal_bpe();
  spec["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}, {"type": "ByteLevel"}]})");
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::ConfigError,
                       Contains("does not compile with PCRE2"));
  spec = minimal_bpe();
  spec["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}, {"type": "ByteLevel"}]})");
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::ConfigError,
                       Contains("unknown behavior \"Sideways\""));
  spec = minimal_bpe();
  spec["pre_tokenizer"] = json::parse(R"({"type": "Digits", "individual_digits": true})");
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::ConfigError,
                       Contains("has no ByteLevel stage"));
  spec = minimal_bpe();
  spec["decoder"] = json{{"type", "Metaspace"}};
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::ConfigError,
                       Contains("decoder type \"Metaspace\" is not supported"));
  spec = minimal_bpe();
  spec["model"]["vocab"]["x"] = -3;
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(spec.dump(), "t.json"), medfair::FormatError,
                       Contains("model.vocab[\"x\"] is -3"));
}

TEST_CASE("tokenizer json missing file", "[text][errors]") {
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json("/nonexistent/tokenizer.json"), medfair::IOError,
                       Contains("/nonexistent/tokenizer.json: cannot open file"));
}

TEST_CASE("gguf vocab errors", "[text][errors]") {
  GgufVocab vocab;
  vocab.model = "t5";
  vocab.pre = "gpt2";
  vocab.tokens = {"a"};
  vocab.origin = "m.gguf";
  MEDFAIR_CHECK_THROWS(medfair::text::tokenizer_from_gguf_vocab(vocab), medfair::ConfigError,
                       Contains("m.gguf: tokenizer.ggml.model \"t5\" is not supported"));
  vocab.model = "gpt2";
  vocab.tokens = {};
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_gguf_vocab(vocab), medfair::FormatError,
                       Contains("tokenizer.ggml.tokens is empty"));
  vocab.tokens = {"a", "b", "ab"};
  vocab.token_types = {1, 1};
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_gguf_vocab(vocab), medfair::FormatError,
                       Contains("token_type has 2 entries but tokenizer.ggml.tokens has 3"));
  vocab.token_types = {};
  vocab.merges = {"a  b"};
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_gguf_vocab(vocab), medfair::FormatError,
                       Contains("tokenizer.ggml.merges[0] is \"a  b\""));
  vocab.merges = {"a b"};
  vocab.special.bos = 7;
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_gguf_vocab(vocab), medfair::FormatError,
                       Contains("BOS token id 7 is outside the vocabulary of 3 tokens"));
  vocab.special.bos.reset();
  vocab.add_bos = true;
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_gguf_vocab(vocab), medfair::FormatError,
                       Contains("add_bos_token is set but bos_token_id is missing"));
}

// nlohmann raises out_of_range, not parse_error, for a number beyond the range
// of double; found with fuzz_tokenizer_json after fuzz_jsonl hit it.
TEST_CASE("tokenizer json number overflow", "[text][errors]") {
  MEDFAIR_CHECK_THROWS(BpeTokenizer::from_tokenizer_json_string(R"({"model": 1e999})", "t.json"), medfair::FormatError,
                       Contains("t.json: invalid JSON") && Contains("number overflow parsing '1e999'"));
}

// Found by fuzz_tokenizer_json: a non-string "model.type" made
// load_tokenizer_json throw nlohmann's type_error instead of FormatError. The
// fuzzer's input is kept in tests/fuzz/regressions/.
TEST_CASE("tokenizer json model type not string", "[text][errors]") {
  const auto path = write_scratch("type_array.json", R"({"model": {"type": ["a b"]}})");
  MEDFAIR_CHECK_THROWS(medfair::text::load_tokenizer_json(path), medfair::FormatError,
                       Contains("unexpected tokenizer.json structure") && Contains("type must be string, but is array"));
  const auto fuzz_input =
      std::filesystem::path(MEDFAIR_SOURCE_DIR) / "tests/fuzz/regressions/tokenizer_json_model_type_array.json";
  CHECK_THROWS_AS(medfair::text::load_tokenizer_json(fuzz_input), medfair::FormatError);
}
