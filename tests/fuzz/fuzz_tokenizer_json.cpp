// libFuzzer target: tokenizer.json loading. The input is read as a BPE
// tokenizer.json from memory and, through a scratch file, by
// load_tokenizer_json (BPE or WordPiece). A tokenizer that loads then encodes
// a few fixed strings and the input itself, and decodes the ids it produced
// and ids taken from the input bytes. Every step must succeed or throw
// medfair::Error.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "medfair/error.hpp"
#include "medfair/log.hpp"
#include "medfair/text/tokenizer.hpp"

namespace {

void exercise(const medfair::text::Tokenizer& tokenizer, std::string_view input) {
  static const char* const samples[] = {"", "Hello world", "  pain 7/10\n", "<|im_start|>user\nhi<|im_end|>",
                                        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"};
  for (const char* sample : samples) {
    try {
      const auto ids = tokenizer.encode(sample, true, true);
      (void)tokenizer.decode(ids, false);
      (void)tokenizer.decode(ids, true);
    } catch (const medfair::Error&) {
    }
  }
  try {
    const auto ids = tokenizer.encode(input.substr(0, 512), false, true);
    (void)tokenizer.decode(ids, false);
  } catch (const medfair::Error&) {
  }
  std::vector<int32_t> raw(input.size() / sizeof(int32_t) < 64 ? input.size() / sizeof(int32_t) : 64);
  std::memcpy(raw.data(), input.data(), raw.size() * sizeof(int32_t));
  for (int32_t id : raw) {
    try {
      (void)tokenizer.id_to_token(id);
      (void)tokenizer.is_special(id);
    } catch (const medfair::Error&) {
    }
  }
  try {
    (void)tokenizer.decode(raw, false);
  } catch (const medfair::Error&) {
  }
  (void)tokenizer.token_to_id(input.substr(0, 16));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = [] {
    medfair::log::set_level(medfair::log::Level::off);
    return true;
  }();
  (void)silenced;
  static const std::string path = "/tmp/medfair_fuzz_tokenizer_" + std::to_string(::getpid()) + ".json";
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  try {
    const auto tokenizer = medfair::text::BpeTokenizer::from_tokenizer_json_string(input, "fuzz.json");
    exercise(*tokenizer, input);
  } catch (const medfair::Error&) {
  }

  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(input.data(), static_cast<std::streamsize>(input.size()));
  }
  try {
    const auto tokenizer = medfair::text::load_tokenizer_json(path);
    exercise(*tokenizer, input);
  } catch (const medfair::Error&) {
  }
  return 0;
}
