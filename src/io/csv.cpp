#include "medfair/io/csv.hpp"

#include <csv.h>
#include <fmt/format.h>
#include <utf8cpp/utf8.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include "medfair/error.hpp"

namespace medfair::io {

namespace {

// libcsv's parser states (libcsv.c). They are not exported by name, but the
// state field itself is part of the public struct csv_parser.
constexpr int kRowNotBegun = 0;
constexpr int kFieldNotBegun = 1;

// RFC 4180 keeps spaces inside fields, so nothing counts as trimmable space.
int no_space(unsigned char) { return 0; }

struct ParseState {
  std::vector<std::vector<std::string>> records;
  std::vector<std::vector<std::size_t>> field_offsets;
  std::vector<std::vector<bool>> field_quoted;
  std::vector<std::string> fields;
  std::vector<std::size_t> offsets;
  std::vector<bool> quoted;
  std::vector<std::size_t> record_offsets;  // first byte of each record
  std::optional<std::size_t> field_start;
  bool field_start_quoted = false;
  std::size_t current = 0;  // offset of the byte being fed
};

void on_field(void* data, std::size_t size, void* context) {
  auto& state = *static_cast<ParseState*>(context);
  state.fields.emplace_back(static_cast<const char*>(data), size);
  // An empty unquoted field never leaves the "not begun" state, so it starts
  // at the delimiter that ends it.
  state.offsets.push_back(state.field_start.value_or(state.current));
  state.quoted.push_back(state.field_start ? state.field_start_quoted : false);
  state.field_start.reset();
}

void on_record(int, void* context) {
  auto& state = *static_cast<ParseState*>(context);
  state.record_offsets.push_back(state.offsets.empty() ? state.current : state.offsets.front());
  state.records.push_back(std::move(state.fields));
  state.field_offsets.push_back(std::move(state.offsets));
  state.field_quoted.push_back(std::move(state.quoted));
  state.fields.clear();
  state.offsets.clear();
  state.quoted.clear();
}

class Parser {
 public:
  explicit Parser(unsigned char options) {
    if (csv_init(&parser_, options) != 0) throw std::bad_alloc();
    csv_set_space_func(&parser_, no_space);
  }
  ~Parser() { csv_free(&parser_); }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;
  csv_parser* get() { return &parser_; }

 private:
  csv_parser parser_{};
};

}  // namespace

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw IOError(fmt::format("{}: cannot open the file for reading; check that it exists and is readable",
                              path.string()));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw IOError(fmt::format("{}: reading the file failed", path.string()));
  return std::move(buffer).str();
}

std::string_view strip_utf8_bom(std::string_view text) {
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  return text;
}

TextPosition position_of(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  TextPosition position;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++position.line;
      line_start = i + 1;
    }
  }
  // Count code points: every byte that is not a UTF-8 continuation byte.
  for (std::size_t i = line_start; i < offset; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++position.column;
  }
  return position;
}

void require_valid_utf8(std::string_view text, const std::string& source) {
  auto invalid = utf8::find_invalid(text.begin(), text.end());
  if (invalid == text.end()) return;
  auto offset = static_cast<std::size_t>(invalid - text.begin());
  auto position = position_of(text, offset);
  throw FormatError(fmt::format(
      "{}:{}:{}: invalid UTF-8 (byte 0x{:02X} at offset {}); save the file as UTF-8, for example with "
      "iconv -f LATIN1 -t UTF-8",
      source, position.line, position.column, static_cast<unsigned char>(*invalid), offset));
}

CsvTable parse_csv(std::string text, std::string source, const CsvOptions& options) {
  CsvTable table;
  table.source_ = std::move(source);
  table.text_ = std::string(strip_utf8_bom(text));
  text.clear();
  require_valid_utf8(table.text_, table.source_);
  const std::string& body = table.text_;

  Parser parser(CSV_STRICT | CSV_STRICT_FINI);
  csv_set_delim(parser.get(), static_cast<unsigned char>(options.delimiter));
  ParseState state;
  // Feeding one byte at a time lets the callbacks know the offset of every
  // field start, which libcsv does not report itself.
  for (std::size_t i = 0; i < body.size(); ++i) {
    state.current = i;
    int before = parser.get()->pstate;
    if (csv_parse(parser.get(), body.data() + i, 1, on_field, on_record, &state) != 1) {
      auto position = position_of(body, i);
      throw FormatError(fmt::format(
          "{}:{}:{}: malformed CSV quoting ({}); a field that contains a quote must be enclosed in quotes, "
          "with each inner quote doubled (RFC 4180)",
          table.source_, position.line, position.column, csv_strerror(csv_error(parser.get()))));
    }
    int after = parser.get()->pstate;
    if ((before == kRowNotBegun || before == kFieldNotBegun) && after != kRowNotBegun && after != kFieldNotBegun &&
        !state.field_start) {
      state.field_start = i;
      state.field_start_quoted = parser.get()->quoted != 0;
    }
  }
  state.current = body.size();
  if (csv_fini(parser.get(), on_field, on_record, &state) != 0) {
    std::size_t start = state.field_start.value_or(body.size());
    auto position = position_of(body, start);
    throw FormatError(fmt::format(
        "{}:{}:{}: unterminated quoted field at the end of the file; add the closing quote", table.source_,
        position.line, position.column));
  }

  std::size_t first_data = 0;
  if (options.has_header) {
    if (state.records.empty()) {
      throw FormatError(fmt::format("{}: the file is empty; expected a header row naming the columns", table.source_));
    }
    table.header_ = state.records.front();
    first_data = 1;
  }
  std::size_t expected = options.has_header ? table.header_.size() : (state.records.empty() ? 0 : state.records[0].size());
  for (std::size_t r = first_data; r < state.records.size(); ++r) {
    auto& record = state.records[r];
    if (record.size() != expected) {
      auto position = position_of(body, state.record_offsets[r]);
      throw FormatError(fmt::format(
          "{}:{}:{}: row {} has {} fields but the header has {}; quote fields that contain the delimiter and "
          "give every row the same number of fields",
          table.source_, position.line, position.column, r - first_data + 1, record.size(), expected));
    }
    std::vector<CsvTable::FieldStart> starts;
    starts.reserve(record.size());
    for (std::size_t c = 0; c < record.size(); ++c) {
      starts.push_back({state.field_offsets[r][c], static_cast<bool>(state.field_quoted[r][c])});
    }
    table.rows_.push_back(std::move(record));
    table.starts_.push_back(std::move(starts));
  }
  return table;
}

CsvTable read_csv(const std::filesystem::path& path, const CsvOptions& options) {
  return parse_csv(read_text_file(path), path.string(), options);
}

std::optional<std::size_t> CsvTable::find_column(std::string_view name) const {
  auto it = std::find(header_.begin(), header_.end(), name);
  if (it == header_.end()) return std::nullopt;
  return static_cast<std::size_t>(it - header_.begin());
}

std::size_t CsvTable::require_column(std::string_view name) const {
  if (auto index = find_column(name)) return *index;
  std::string present;
  for (const auto& column : header_) {
    if (column.empty()) continue;
    if (!present.empty()) present += ", ";
    present += '"' + column + '"';
  }
  throw DataError(fmt::format("{}:1:1: missing column \"{}\" (the header has {}); add the column to the header row",
                              source_, name, present.empty() ? "no named columns" : present));
}

TextPosition CsvTable::position(std::size_t row, std::size_t column, std::size_t offset) const {
  const auto& start = starts_.at(row).at(column);
  const auto& value = rows_.at(row).at(column);
  std::size_t raw = start.offset + (start.quoted ? 1 : 0);
  for (std::size_t i = 0; i < offset && i < value.size(); ++i) {
    raw += (start.quoted && value[i] == '"') ? 2 : 1;
  }
  return position_of(text_, raw);
}

std::string CsvTable::where(std::size_t row, std::size_t column, std::size_t offset) const {
  auto pos = position(row, column, offset);
  std::string name = column < header_.size() ? header_[column] : std::string();
  return fmt::format("{}:{}:{}: row {}, column \"{}\"", source_, pos.line, pos.column, row + 1, name);
}

}  // namespace medfair::io
