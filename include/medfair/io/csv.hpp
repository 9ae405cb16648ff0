#pragma once
// RFC 4180 CSV reading with exact source positions, plus the text-file checks
// the CSV and JSONL readers share (UTF-8 validation, byte-order mark).
//
// Parsing is done by libcsv in strict mode. Fields keep their bytes exactly:
// no whitespace trimming, embedded newlines and doubled quotes as RFC 4180
// defines them, CRLF or LF record ends, and an optional UTF-8 byte-order mark.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace medfair::io {

/// A 1-based line and column in a text file; the column counts Unicode code
/// points, as editors do.
struct TextPosition {
  std::size_t line = 1;
  std::size_t column = 1;
};

/// Reads a whole file as bytes. Throws IOError when it cannot be opened or read.
std::string read_text_file(const std::filesystem::path& path);

/// Removes a leading UTF-8 byte-order mark (EF BB BF), if there is one.
std::string_view strip_utf8_bom(std::string_view text);

/// Throws FormatError naming `source`, the line and the column of the first
/// byte that is not valid UTF-8.
void require_valid_utf8(std::string_view text, const std::string& source);

/// Returns the line and column of byte `offset` in `text`.
TextPosition position_of(std::string_view text, std::size_t offset);

/// Options of read_csv and parse_csv.
struct CsvOptions {
  /// Field delimiter (default ',').
  char delimiter = ',';
  /// Whether the first record is a header naming the columns (default true).
  bool has_header = true;
};

/// A parsed CSV file: the header, the records, and where each field starts in
/// the source, so that errors about a cell can name its line and column.
class CsvTable {
 public:
  /// The file path or name given to the parser, used in messages.
  const std::string& source() const { return source_; }
  /// Column names (empty when the file has no header row).
  const std::vector<std::string>& header() const { return header_; }
  /// Data records, each with as many fields as the header.
  const std::vector<std::vector<std::string>>& rows() const { return rows_; }
  std::size_t row_count() const { return rows_.size(); }

  /// Index of the first column named `name`, or nullopt.
  std::optional<std::size_t> find_column(std::string_view name) const;
  /// Index of the column named `name`. Throws DataError naming the file and
  /// the columns that exist when there is none.
  std::size_t require_column(std::string_view name) const;

  /// The value of data row `row` (0-based) in column `column`.
  const std::string& cell(std::size_t row, std::size_t column) const { return rows_.at(row).at(column); }

  /// Line and column in the source of byte `offset` within the value of a
  /// cell, accounting for the opening quote and doubled quotes.
  TextPosition position(std::size_t row, std::size_t column, std::size_t offset = 0) const;

  /// "FILE:LINE:COL: row N, column "NAME"" for messages about a cell; rows are
  /// numbered from 1 for the first data record.
  std::string where(std::size_t row, std::size_t column, std::size_t offset = 0) const;

 private:
  friend CsvTable parse_csv(std::string text, std::string source, const CsvOptions& options);

  struct FieldStart {
    std::size_t offset = 0;  // byte offset of the field's first byte (its quote, if quoted)
    bool quoted = false;
  };

  std::string source_;
  std::string text_;  // the source without its byte-order mark
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<std::vector<FieldStart>> starts_;  // per data row
};

/// Parses CSV text; `source` names it in error messages. Throws FormatError for
/// invalid UTF-8, malformed quoting or a record whose field count differs from
/// the header's, each with line and column.
CsvTable parse_csv(std::string text, std::string source, const CsvOptions& options = {});

/// Reads and parses a CSV file (see parse_csv). Throws IOError when it cannot
/// be read.
CsvTable read_csv(const std::filesystem::path& path, const CsvOptions& options = {});

}  // namespace medfair::io
