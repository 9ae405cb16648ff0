#pragma once
// JSON Lines (https://jsonlines.org): one JSON value per line, UTF-8.

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace medfair::io {

/// One parsed line of a JSON Lines file.
struct JsonlRecord {
  nlohmann::json value;
  /// 1-based line number in the file.
  std::size_t line = 0;
};

/// Parses JSON Lines text; `source` names it in messages. Blank lines are
/// skipped, a byte-order mark and CRLF line ends are accepted. Throws
/// FormatError naming the line and column of invalid UTF-8 or invalid JSON.
std::vector<JsonlRecord> parse_jsonl(std::string_view text, const std::string& source);

/// Reads and parses a JSON Lines file (see parse_jsonl).
std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path);

/// Serializes one value as a single line (no trailing newline), with
/// non-ASCII text as UTF-8 and the keys in insertion order.
std::string to_jsonl_line(const nlohmann::ordered_json& value);

/// Writes one line per value, each ending in '\n'. Throws IOError on failure.
void write_jsonl(const std::filesystem::path& path, const std::vector<nlohmann::ordered_json>& values);

}  // namespace medfair::io
