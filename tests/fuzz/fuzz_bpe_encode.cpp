// libFuzzer target: byte-level BPE encode and decode with a fixed tokenizer
// (tests/golden/text/bpe_tiny.json). Valid UTF-8 input must round-trip
// exactly through encode and decode, invalid UTF-8 must raise
// medfair::Error, and decoding arbitrary ids must succeed or raise
// medfair::Error.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "medfair/error.hpp"
#include "medfair/log.hpp"
#include "medfair/text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::unique_ptr<medfair::text::BpeTokenizer> tokenizer = [] {
    medfair::log::set_level(medfair::log::Level::off);
    return medfair::text::BpeTokenizer::from_tokenizer_json(MEDFAIR_SOURCE_DIR "/tests/golden/text/bpe_tiny.json");
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  bool encoded = false;
  std::vector<int32_t> ids;
  try {
    ids = tokenizer->encode(input, false, false);
    encoded = true;
  } catch (const medfair::Error&) {
  }
  if (encoded) {
    // Without special-token parsing, byte-level BPE is lossless.
    if (tokenizer->decode(ids, false) != input) std::abort();
    for (int32_t id : ids) {
      if (id < 0 || static_cast<std::size_t>(id) >= tokenizer->vocab_size()) std::abort();
    }
  }
  try {
    const auto special_ids = tokenizer->encode(input, true, true);
    (void)tokenizer->decode(special_ids, true);
  } catch (const medfair::Error&) {
  }

  std::vector<int32_t> raw(size / sizeof(int32_t));
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * sizeof(int32_t));
  try {
    (void)tokenizer->decode(raw, false);
  } catch (const medfair::Error&) {
  }
  return 0;
}
