// UTF-8 validation and repair, and GPT-2's byte-to-unicode alphabet.

#include <fmt/format.h>

#include <array>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "internal.hpp"
#include "medfair/error.hpp"

namespace medfair::text::detail {

namespace {

// Length of the valid UTF-8 sequence starting at `pos`, or 0 when invalid.
// Follows the well-formed byte sequences of Unicode 15, table 3-7, so
// overlong forms, surrogates and code points above U+10FFFF are rejected.
std::size_t valid_sequence_length(std::string_view s, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(pos);
  const std::size_t left = s.size() - pos;
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return left >= 2 && (byte(pos + 1) & 0xC0) == 0x80 ? 2 : 0;
  unsigned char lo = 0x80, hi = 0xBF;
  std::size_t length = 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (left < 2 || byte(pos + 1) < lo || byte(pos + 1) > hi) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (left <= i || (byte(pos + i) & 0xC0) != 0x80) return 0;
  }
  return length;
}

// Length of the maximal prefix at `pos` that could start a valid sequence, at
// least one byte. utf8_lossy() replaces that prefix with one U+FFFD.
std::size_t maximal_invalid_prefix(std::string_view s, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(pos);
  std::size_t length = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  std::size_t i = 1;
  for (; i < length && pos + i < s.size(); ++i) {
    const unsigned char b = byte(pos + i);
    const bool ok = i == 1 ? (b >= lo && b <= hi) : (b & 0xC0) == 0x80;
    if (!ok) break;
  }
  return i;
}

}  // namespace

std::size_t find_invalid_utf8(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t n = valid_sequence_length(text, pos);
    if (n == 0) return pos;
    pos += n;
  }
  return std::string_view::npos;
}

void require_utf8(std::string_view text, std::string_view where) {
  const std::size_t bad = find_invalid_utf8(text);
  if (bad == std::string_view::npos) return;
  throw DataError(fmt::format("{}: input text is not valid UTF-8 at byte offset {} (byte 0x{:02X}); "
                              "decode the text to UTF-8 before tokenizing it",
                              where, bad, static_cast<unsigned char>(text[bad])));
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const std::size_t n = valid_sequence_length(bytes, pos);
    if (n > 0) {
      out.append(bytes.substr(pos, n));
      pos += n;
    } else {
      out.append("\xEF\xBF\xBD");
      pos += maximal_invalid_prefix(bytes, pos);
    }
  }
  return out;
}

char32_t next_code_point(std::string_view text, std::size_t& pos) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  std::size_t length = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
  if (pos + length > text.size()) length = text.size() - pos;
  char32_t cp = length == 1 ? b0 : length == 2 ? (b0 & 0x1F) : length == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (std::size_t i = 1; i < length; ++i) cp = (cp << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  pos += length;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// GPT-2's bytes_to_unicode() (openai/gpt-2, src/encoder.py): printable bytes
// keep their code point, the other 68 bytes map to U+0100 upwards in order.
const std::vector<char32_t>& byte_to_code_point() {
  static const std::vector<char32_t> table = [] {
    std::vector<char32_t> t(256);
    const auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) t[b] = printable(b) ? static_cast<char32_t>(b) : next++;
    return t;
  }();
  return table;
}

std::optional<std::string> byte_level_to_bytes(std::string_view token) {
  static const std::unordered_map<char32_t, unsigned char> inverse = [] {
    std::unordered_map<char32_t, unsigned char> m;
    const auto& t = byte_to_code_point();
    for (int b = 0; b < 256; ++b) m.emplace(t[b], static_cast<unsigned char>(b));
    return m;
  }();
  if (find_invalid_utf8(token) != std::string_view::npos) return std::nullopt;
  std::string out;
  std::size_t pos = 0;
  while (pos < token.size()) {
    const auto it = inverse.find(next_code_point(token, pos));
    if (it == inverse.end()) return std::nullopt;
    out.push_back(static_cast<char>(it->second));
  }
  return out;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& t = byte_to_code_point();
  std::string out;
  for (const char c : bytes) append_utf8(out, t[static_cast<unsigned char>(c)]);
  return out;
}

std::string json_string(const nlohmann::json& object, const char* key, const std::string& fallback) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  return it->get<std::string>();
}

bool json_bool(const nlohmann::json& object, const char* key, bool fallback) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  return it->get<bool>();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(fmt::format("{}: cannot open file for reading; check that the path exists", path));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw IOError(fmt::format("{}: read failed", path));
  return buffer.str();
}

nlohmann::json parse_json(std::string_view text, std::string_view origin) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(fmt::format("{}: invalid JSON at byte {}: {}", origin, e.byte, e.what()));
  } catch (const nlohmann::json::out_of_range& e) {
    // A number beyond the range of double (1e999) raises out_of_range, not parse_error.
    throw FormatError(fmt::format("{}: invalid JSON: {}", origin, e.what()));
  }
}

}  // namespace medfair::text::detail
