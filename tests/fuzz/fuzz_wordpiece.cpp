// libFuzzer target: WordPiece (BERT) encode and decode with a fixed
// vocab.txt (tests/fuzz/data/wordpiece_vocab.txt), once with the uncased
// defaults and once cased with a short max_length. Every call must succeed
// or raise medfair::Error, and every id must be inside the vocabulary.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "medfair/error.hpp"
#include "medfair/log.hpp"
#include "medfair/text/tokenizer.hpp"

namespace {

void exercise(const medfair::text::WordPieceTokenizer& tokenizer, std::string_view input) {
  try {
    const auto ids = tokenizer.encode(input, true, true);
    for (int32_t id : ids) {
      if (id < 0 || static_cast<std::size_t>(id) >= tokenizer.vocab_size()) std::abort();
    }
    if (tokenizer.options().max_length > 0 && ids.size() > tokenizer.options().max_length) std::abort();
    (void)tokenizer.decode(ids, true);
  } catch (const medfair::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using medfair::text::WordPieceOptions;
  using medfair::text::WordPieceTokenizer;
  static const char* const vocab = MEDFAIR_SOURCE_DIR "/tests/fuzz/data/wordpiece_vocab.txt";
  static const std::unique_ptr<WordPieceTokenizer> uncased = [] {
    medfair::log::set_level(medfair::log::Level::off);
    return WordPieceTokenizer::from_vocab_txt(vocab);
  }();
  static const std::unique_ptr<WordPieceTokenizer> cased = [] {
    WordPieceOptions options;
    options.lowercase = false;
    options.max_input_chars_per_word = 8;
    options.max_length = 6;
    return WordPieceTokenizer::from_vocab_txt(vocab, options);
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  exercise(*uncased, input);
  exercise(*cased, input);

  std::vector<int32_t> raw(size / sizeof(int32_t));
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * sizeof(int32_t));
  try {
    (void)uncased->decode(raw, false);
  } catch (const medfair::Error&) {
  }
  return 0;
}
