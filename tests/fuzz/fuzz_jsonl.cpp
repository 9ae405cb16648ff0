// libFuzzer target: the JSON Lines parser and the generic JSONL task loader.
// Every input must parse or raise medfair::Error, and every parsed record
// must carry a line number inside the input.

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "medfair/error.hpp"
#include "medfair/io/jsonl.hpp"
#include "medfair/log.hpp"
#include "medfair/prompts/loaders.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = [] {
    medfair::log::set_level(medfair::log::Level::off);
    return true;
  }();
  (void)silenced;
  static const std::string path = "/tmp/medfair_fuzz_jsonl_" + std::to_string(::getpid()) + ".jsonl";
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  try {
    const auto records = medfair::io::parse_jsonl(input, "fuzz.jsonl");
    const auto lines = static_cast<std::size_t>(std::count(input.begin(), input.end(), '\n')) + 1;
    for (const auto& record : records) {
      if (record.line == 0 || record.line > lines) std::abort();
    }
  } catch (const medfair::Error&) {
  }

  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(input.data(), static_cast<std::streamsize>(input.size()));
  }
  try {
    (void)medfair::prompts::load_generic(path);
  } catch (const medfair::Error&) {
  }
  return 0;
}
