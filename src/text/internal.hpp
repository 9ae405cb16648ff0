#pragma once
// Helpers shared by the tokenizers in src/text; not part of the public API.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace medfair::text::detail {

// ---- UTF-8 -----------------------------------------------------------------

/// Returns the byte offset of the first invalid UTF-8 sequence, or npos.
std::size_t find_invalid_utf8(std::string_view text);

/// Throws DataError naming `where` and the offset when `text` is not valid UTF-8.
void require_utf8(std::string_view text, std::string_view where);

/// Replaces each maximal invalid subsequence with U+FFFD (the policy of
/// Rust's String::from_utf8_lossy and Python's errors="replace").
std::string utf8_lossy(std::string_view bytes);

/// Decodes the code point at `pos` of valid UTF-8 and advances `pos`.
char32_t next_code_point(std::string_view text, std::size_t& pos);

void append_utf8(std::string& out, char32_t cp);

// ---- GPT-2 byte-level alphabet ----------------------------------------------

/// The code point GPT-2's bytes_to_unicode() assigns to each byte.
const std::vector<char32_t>& byte_to_code_point();

/// Maps a token spelled in the byte-level alphabet back to raw bytes; returns
/// nullopt when a character is outside the alphabet (an added token spelled raw).
std::optional<std::string> byte_level_to_bytes(std::string_view token);

/// Spells raw bytes in the byte-level alphabet.
std::string bytes_to_byte_level(std::string_view bytes);

// ---- PCRE2 -------------------------------------------------------------------

/// A compiled PCRE2 pattern in UTF + UCP mode. Immutable after construction;
/// match data is allocated per call, so one object serves many threads.
class Regex {
 public:
  /// Throws ConfigError naming `origin` when the pattern does not compile.
  Regex(std::string_view pattern, std::string_view origin);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Returns the [begin, end) byte ranges of all non-overlapping matches.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view text) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  std::string pattern_;
};

// ---- Pre-tokenizers ------------------------------------------------------------

/// One stage of a Hugging Face pre-tokenizer pipeline, applied to every piece
/// the previous stage produced.
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void split(std::string_view piece, std::vector<std::string>& out) const = 0;
};

/// The split regex of GPT-2 (HF ByteLevel with use_regex).
extern const char* const kGpt2Pattern;
extern const char* const kLlama3Pattern;
extern const char* const kQwen2Pattern;

/// How a Split stage treats the matched delimiters (HF SplitDelimiterBehavior).
enum class SplitBehavior { isolated, removed, merged_with_previous, merged_with_next, contiguous };

std::unique_ptr<PreTokenizer> make_regex_split(std::string_view pattern, SplitBehavior behavior, std::string_view origin);
std::unique_ptr<PreTokenizer> make_digits(bool individual_digits);
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex);
std::unique_ptr<PreTokenizer> make_sequence(std::vector<std::unique_ptr<PreTokenizer>> stages);

/// Builds the pipeline of a tokenizer.json "pre_tokenizer" object (null gives
/// an identity pipeline). Throws ConfigError for unsupported types.
std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& spec, std::string_view origin);

/// Builds the pipeline for a GGUF tokenizer.ggml.pre name.
std::unique_ptr<PreTokenizer> pre_tokenizer_for_gguf(std::string_view pre, std::string_view origin);

// ---- Added tokens ----------------------------------------------------------------

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

/// A run of input text: either plain text to tokenize or one added token.
struct Segment {
  std::string_view text;
  std::optional<int32_t> token;
};

/// Finds added tokens in text, leftmost-longest first, as HF's AddedVocabulary does.
class AddedTokenMatcher {
 public:
  void add(AddedToken token);
  bool empty() const { return tokens_.empty(); }
  /// Splits `text`. Special tokens are only matched when `parse_special` is set;
  /// non-special added tokens are always matched.
  std::vector<Segment> split(std::string_view text, bool parse_special) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  std::unordered_map<unsigned char, std::vector<std::size_t>> by_first_byte_;  // longest first
};

/// Returns `object[key]` as a string, or `fallback` when the key is missing or null.
std::string json_string(const nlohmann::json& object, const char* key, const std::string& fallback);

/// Returns `object[key]` as a bool, or `fallback` when the key is missing or null.
bool json_bool(const nlohmann::json& object, const char* key, bool fallback);

/// Reads a whole file; throws IOError naming it.
std::string read_file(const std::string& path);

/// Parses JSON, throwing FormatError that names `origin` and the byte offset.
nlohmann::json parse_json(std::string_view text, std::string_view origin);

}  // namespace medfair::text::detail
