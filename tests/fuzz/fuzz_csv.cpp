// libFuzzer target: the CSV reader and the option-list parser. Every input
// must either parse or throw medfair::Error, and looking up the position of
// every parsed cell must return a valid 1-based line and column.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "medfair/error.hpp"
#include "medfair/io/csv.hpp"
#include "medfair/prompts/loaders.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    medfair::io::CsvTable table = medfair::io::parse_csv(text, "fuzz.csv");
    for (std::size_t r = 0; r < table.row_count(); ++r) {
      for (std::size_t c = 0; c < table.header().size(); ++c) {
        auto position = table.position(r, c, table.cell(r, c).size());
        if (position.line == 0 || position.column == 0) std::abort();
      }
    }
  } catch (const medfair::Error&) {
  }
  try {
    medfair::prompts::parse_option_list(text, "fuzz");
  } catch (const medfair::Error&) {
  }
  return 0;
}
