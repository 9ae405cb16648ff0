#include "medfair/io/jsonl.hpp"

#include <fmt/format.h>

#include <fstream>

#include "medfair/error.hpp"
#include "medfair/io/csv.hpp"

namespace medfair::io {

std::vector<JsonlRecord> parse_jsonl(std::string_view text, const std::string& source) {
  text = strip_utf8_bom(text);
  require_valid_utf8(text, source);
  std::vector<JsonlRecord> records;
  std::size_t line_number = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    ++line_number;
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool blank = line.find_first_not_of(" \t") == std::string_view::npos;
    if (!blank) {
      try {
        records.push_back({nlohmann::json::parse(line), line_number});
      } catch (const nlohmann::json::parse_error& error) {
        // nlohmann reports the byte position (1-based) of the failing token.
        std::size_t byte = error.byte > 0 ? error.byte - 1 : 0;
        auto column = position_of(line, byte).column;
        throw FormatError(fmt::format("{}:{}:{}: invalid JSON ({}); each line must hold one complete JSON value",
                                      source, line_number, column, error.what()));
      } catch (const nlohmann::json::out_of_range& error) {
        // A number beyond the range of double (1e999) raises out_of_range, not parse_error.
        throw FormatError(fmt::format("{}:{}: invalid JSON ({}); each line must hold one complete JSON value",
                                      source, line_number, error.what()));
      }
    }
    if (end == text.size()) break;
    start = end + 1;
  }
  return records;
}

std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path) {
  return parse_jsonl(read_text_file(path), path.string());
}

std::string to_jsonl_line(const nlohmann::ordered_json& value) {
  // dump() escapes control characters, so a value never spans lines.
  return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
}

void write_jsonl(const std::filesystem::path& path, const std::vector<nlohmann::ordered_json>& values) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IOError(fmt::format("{}: cannot open the file for writing", path.string()));
  for (const auto& value : values) out << to_jsonl_line(value) << '\n';
  out.flush();
  if (!out) throw IOError(fmt::format("{}: writing the file failed (disk full?)", path.string()));
}

}  // namespace medfair::io
