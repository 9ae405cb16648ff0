// Byte-level BPE against ids that Hugging Face tokenizers produced for a tiny
// vocabulary (tests/golden/text/make_golden.py), through tokenizer.json and
// through GGUF-style vocab data.

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "medfair/error.hpp"
#include "medfair/log.hpp"
#include "medfair/text/tokenizer.hpp"
#include "text_test_support.hpp"

using medfair::text::BpeTokenizer;
using medfair::text::GgufVocab;
using nlohmann::json;

namespace {

const json& base_spec() {
  static const json spec = medfair::test::read_json_file(medfair::test::text_golden_dir() / "bpe_tiny.json");
  return spec;
}

const json& golden() {
  static const json g = medfair::test::read_json_file(medfair::test::text_golden_dir() / "bpe_golden.json");
  return g;
}

std::unique_ptr<BpeTokenizer> tokenizer_for(const json& variant) {
  json spec = base_spec();
  spec["pre_tokenizer"] = variant["pre_tokenizer"];
  spec["model"]["ignore_merges"] = variant["ignore_merges"];
  return BpeTokenizer::from_tokenizer_json_string(spec.dump(), "bpe_tiny.json");
}

GgufVocab gguf_vocab_from_base(const std::string& pre) {
  const json& spec = base_spec();
  GgufVocab vocab;
  vocab.model = "gpt2";
  vocab.pre = pre;
  std::size_t size = 0;
  for (const auto& [token, id] : spec["model"]["vocab"].items()) size = std::max(size, id.get<std::size_t>() + 1);
  vocab.tokens.resize(size);
  vocab.token_types.assign(size, 1);
  for (const auto& [token, id] : spec["model"]["vocab"].items()) vocab.tokens[id.get<std::size_t>()] = token;
  for (const auto& added : spec["added_tokens"]) vocab.token_types[added["id"].get<std::size_t>()] = 3;
  for (const auto& merge : spec["model"]["merges"]) {
    vocab.merges.push_back(merge.is_string() ? merge.get<std::string>()
                                             : merge[0].get<std::string>() + " " + merge[1].get<std::string>());
  }
  vocab.special.eos = 0;
  vocab.origin = "bpe_tiny (gguf)";
  return vocab;
}

void check_cases(const BpeTokenizer& tokenizer, const json& variant, const std::string& name) {
  for (const auto& c : variant["cases"]) {
    const std::string text = c["text"];
    INFO(name << ": " << text);
    const auto ids = tokenizer.encode(text);
    CHECK(ids == c["ids"].get<std::vector<int32_t>>());
    CHECK(tokenizer.decode(ids) == c["decoded"].get<std::string>());
    CHECK(tokenizer.decode(ids, true) == c["decoded_skip_special"].get<std::string>());
  }
}

}  // namespace

TEST_CASE("bpe tokenizer.json golden ids", "[text][bpe]") {
  REQUIRE(golden().size() >= 10);
  for (const auto& [name, variant] : golden().items()) {
    const auto tokenizer = tokenizer_for(variant);
    check_cases(*tokenizer, variant, name);
  }
}

TEST_CASE("bpe gguf vocab golden ids", "[text][bpe]") {
  int checked = 0;
  for (const auto& [name, variant] : golden().items()) {
    if (variant["gguf_pre"].is_null()) continue;
    const auto tokenizer = BpeTokenizer::from_gguf_vocab(gguf_vocab_from_base(variant["gguf_pre"]));
    check_cases(*tokenizer, variant, name + " via gguf");
    ++checked;
  }
  CHECK(checked == 4);
}

TEST_CASE("bpe merges as pairs and strings agree", "[text][bpe]") {
  json spec = base_spec();
  json strings = json::array();
  for (const auto& merge : spec["model"]["merges"]) {
    strings.push_back(merge.is_string() ? merge.get<std::string>()
                                        : merge[0].get<std::string>() + " " + merge[1].get<std::string>());
  }
  const auto as_pairs = BpeTokenizer::from_tokenizer_json_string(spec.dump(), "pairs");
  spec["model"]["merges"] = strings;
  const auto as_strings = BpeTokenizer::from_tokenizer_json_string(spec.dump(), "strings");
  const std::string text = "The quick brown fox jumps over 12345 lazy dogs.";
  CHECK(as_pairs->encode(text) == as_strings->encode(text));
  CHECK(as_pairs->encode(text).size() < text.size());
}

TEST_CASE("bpe special tokens unparsed", "[text][bpe]") {
  const auto tokenizer = tokenizer_for(golden()["gpt2"]);
  const auto id = tokenizer->token_to_id("<|im_start|>");
  REQUIRE(id);
  const auto parsed = tokenizer->encode("a<|im_start|>b");
  CHECK(std::count(parsed.begin(), parsed.end(), *id) == 1);
  const auto plain = tokenizer->encode("a<|im_start|>b", false, false);
  CHECK(std::count(plain.begin(), plain.end(), *id) == 0);
  CHECK(tokenizer->decode(plain) == "a<|im_start|>b");
  CHECK(tokenizer->is_special(*id));
}

TEST_CASE("bpe pre_tokenize smollm digits", "[text][bpe]") {
  const auto tokenizer = BpeTokenizer::from_gguf_vocab(gguf_vocab_from_base("smollm"));
  const std::vector<std::string> expected{"a", "  ", "1", "2", " b"};
  CHECK(tokenizer->pre_tokenize("a  12 b") == expected);
}

TEST_CASE("bpe add_bos from gguf", "[text][bpe]") {
  GgufVocab vocab = gguf_vocab_from_base("gpt2");
  vocab.special.bos = 1;
  vocab.add_bos = true;
  const auto tokenizer = BpeTokenizer::from_gguf_vocab(vocab);
  const auto ids = tokenizer->encode("hi", true);
  REQUIRE(!ids.empty());
  CHECK(ids.front() == 1);
  CHECK(tokenizer->encode("hi", false).front() != 1);
  CHECK(tokenizer->bos_id() == 1);
}

TEST_CASE("bpe unknown gguf pre warns once", "[text][bpe]") {
  std::vector<std::string> messages;
  auto previous = medfair::log::set_sink(
      [&](medfair::log::Level, std::string_view, std::string_view message) { messages.emplace_back(message); });
  const auto first = BpeTokenizer::from_gguf_vocab(gguf_vocab_from_base("no-such-pre"));
  const auto second = BpeTokenizer::from_gguf_vocab(gguf_vocab_from_base("no-such-pre"));
  medfair::log::set_sink(previous);
  REQUIRE(messages.size() == 1);
  CHECK_THAT(messages[0], Catch::Contains("unknown tokenizer.ggml.pre \"no-such-pre\""));
  CHECK_THAT(messages[0], Catch::Contains("GPT-2 split rule"));
  CHECK_THAT(messages[0], Catch::Contains("set GgufVocab::pre to \"gpt2\""));
  const auto gpt2 = tokenizer_for(golden()["gpt2"]);
  CHECK(first->encode("a  1 b   22") == gpt2->encode("a  1 b   22"));
}

TEST_CASE("bpe invalid utf8 rejected", "[text][bpe]") {
  const auto tokenizer = tokenizer_for(golden()["gpt2"]);
  MEDFAIR_CHECK_THROWS(tokenizer->encode("ok \xC3\x28 bad"), medfair::DataError,
                       Catch::Matchers::Contains("not valid UTF-8 at byte offset 3"));
  MEDFAIR_CHECK_THROWS(tokenizer->encode("\xED\xA0\x80"), medfair::DataError,
                       Catch::Matchers::Contains("byte offset 0"));
}

TEST_CASE("bpe decode replaces broken utf8", "[text][bpe]") {
  const auto tokenizer = tokenizer_for(golden()["gpt2"]);
  const auto ids = tokenizer->encode("😀");
  REQUIRE(ids.size() >= 2);
  const std::vector<int32_t> head(ids.begin(), ids.begin() + 1);
  CHECK(tokenizer->decode(head) == "\xEF\xBF\xBD");
  CHECK(tokenizer->decode(ids) == "😀");
}

TEST_CASE("bpe decode id out of range", "[text][bpe]") {
  const auto tokenizer = tokenizer_for(golden()["gpt2"]);
  const int32_t size = static_cast<int32_t>(tokenizer->vocab_size());
  const std::vector<int32_t> ids{1, size};
  MEDFAIR_CHECK_THROWS(tokenizer->decode(ids), medfair::DataError,
                       Catch::Matchers::Contains("token id " + std::to_string(size) + " is out of range"));
  CHECK_THROWS_AS(tokenizer->id_to_token(-1), medfair::DataError);
}

TEST_CASE("bpe encode from many threads", "[text][bpe]") {
  const auto tokenizer = tokenizer_for(golden()["smollm"]);
  const auto& cases = golden()["smollm"]["cases"];
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        for (const auto& c : cases) {
          if (tokenizer->encode(c["text"].get<std::string>()) != c["ids"].get<std::vector<int32_t>>()) ++mismatches;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == 0);
}
