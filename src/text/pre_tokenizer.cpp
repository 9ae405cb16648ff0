// Pre-tokenization: the PCRE2 split rules of each BPE model family, the
// pipeline stages of tokenizer.json's "pre_tokenizer", and added-token matching.

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/format.h>

#include <algorithm>

#include "internal.hpp"
#include "medfair/error.hpp"
#include "medfair/log.hpp"

namespace medfair::text::detail {

// Split rules as written in Hugging Face tokenizers: ByteLevel's built-in
// regex (tokenizers/src/pre_tokenizers/byte_level.rs) and the Split patterns of
// the Llama 3 and Qwen2 tokenizer.json files.
const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// ---- Regex --------------------------------------------------------------------

namespace {

uint32_t kCompileFlags = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK;

void* compile(std::string_view pattern, std::string_view origin, uint32_t extra_flags) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   kCompileFlags | extra_flags, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw ConfigError(fmt::format("{}: split pattern {:?} does not compile with PCRE2 at offset {}: {}", origin,
                                  std::string(pattern), error_offset, reinterpret_cast<const char*>(message)));
  }
  // JIT speeds matching several-fold; when unavailable the interpreter is used.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return code;
}

}  // namespace

Regex::Regex(std::string_view pattern, std::string_view origin) : pattern_(pattern) {
  code_ = compile(pattern, origin, 0);
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<std::size_t, std::size_t>> Regex::find_all(std::string_view text) const {
  auto* code = static_cast<pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw DataError(fmt::format("pre-tokenizer pattern {:?} failed to match at byte {}: {}", pattern_, start,
                                  reinterpret_cast<const char*>(message)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const std::size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      matches.emplace_back(begin, end);
      start = end;
    } else {
      // Empty match: step over one whole character so the scan moves on.
      if (begin >= text.size()) break;
      std::size_t next = begin;
      next_code_point(text, next);
      start = next;
    }
  }
  return matches;
}

// ---- Pipeline stages ------------------------------------------------------------

namespace {

class RegexSplit final : public PreTokenizer {
 public:
  RegexSplit(std::string_view pattern, SplitBehavior behavior, std::string_view origin, bool literal = false)
      : behavior_(behavior) {
    if (literal) {
      literal_ = std::string(pattern);
    } else {
      regex_ = std::make_unique<Regex>(pattern, origin);
    }
  }

  void split(std::string_view piece, std::vector<std::string>& out) const override {
    std::vector<std::pair<std::size_t, std::size_t>> matches;
    if (regex_) {
      matches = regex_->find_all(piece);
    } else if (!literal_.empty()) {
      for (std::size_t at = piece.find(literal_); at != std::string_view::npos; at = piece.find(literal_, at)) {
        matches.emplace_back(at, at + literal_.size());
        at += literal_.size();
      }
    }
    // Each behavior as documented for tokenizers' SplitDelimiterBehavior, e.g.
    // "the-final--countdown" split on "-" with merged_with_next gives
    // "the", "-final", "-", "-countdown".
    std::size_t start = 0;
    const auto emit = [&](std::size_t begin, std::size_t end) {
      if (end > begin) out.emplace_back(piece.substr(begin, end - begin));
    };
    switch (behavior_) {
      case SplitBehavior::isolated:
        for (const auto& [begin, end] : matches) {
          emit(start, begin);
          emit(begin, end);
          start = end;
        }
        break;
      case SplitBehavior::removed:
        for (const auto& [begin, end] : matches) {
          emit(start, begin);
          start = end;
        }
        break;
      case SplitBehavior::merged_with_previous:
        for (const auto& [begin, end] : matches) {
          emit(start, end);
          start = end;
        }
        break;
      case SplitBehavior::merged_with_next:
        for (const auto& [begin, end] : matches) {
          emit(start, begin);
          start = begin;
        }
        break;
      case SplitBehavior::contiguous:
        for (std::size_t i = 0; i < matches.size();) {
          const std::size_t begin = matches[i].first;
          std::size_t end = matches[i].second;
          for (++i; i < matches.size() && matches[i].first == end; ++i) end = matches[i].second;
          emit(start, begin);
          emit(begin, end);
          start = end;
        }
        break;
    }
    emit(start, piece.size());
  }

 private:
  SplitBehavior behavior_;
  std::unique_ptr<Regex> regex_;
  std::string literal_;
};

class ByteLevelSplit final : public PreTokenizer {
 public:
  ByteLevelSplit(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<RegexSplit>(kGpt2Pattern, SplitBehavior::isolated, "ByteLevel");
  }

  void split(std::string_view piece, std::vector<std::string>& out) const override {
    std::string prefixed;
    if (add_prefix_space_ && !piece.starts_with(' ')) {
      prefixed = " " + std::string(piece);
      piece = prefixed;
    }
    if (regex_) {
      regex_->split(piece, out);
    } else if (!piece.empty()) {
      out.emplace_back(piece);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<RegexSplit> regex_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> stages) : stages_(std::move(stages)) {}

  void split(std::string_view piece, std::vector<std::string>& out) const override {
    std::vector<std::string> current{std::string(piece)};
    std::vector<std::string> next;
    for (const auto& stage : stages_) {
      next.clear();
      for (const auto& p : current) stage->split(p, next);
      current.swap(next);
    }
    for (auto& p : current) {
      if (!p.empty()) out.push_back(std::move(p));
    }
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

SplitBehavior parse_behavior(const nlohmann::json& spec, std::string_view origin) {
  const std::string name = json_string(spec, "behavior", std::string("Isolated"));
  if (name == "Isolated") return SplitBehavior::isolated;
  if (name == "Removed") return SplitBehavior::removed;
  if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (name == "Contiguous") return SplitBehavior::contiguous;
  throw ConfigError(fmt::format("{}: pre_tokenizer Split has unknown behavior \"{}\"; expected Isolated, Removed, "
                                "MergedWithPrevious, MergedWithNext or Contiguous",
                                origin, name));
}

}  // namespace

std::unique_ptr<PreTokenizer> make_regex_split(std::string_view pattern, SplitBehavior behavior,
                                               std::string_view origin) {
  return std::make_unique<RegexSplit>(pattern, behavior, origin);
}

std::unique_ptr<PreTokenizer> make_digits(bool individual_digits) {
  return std::make_unique<RegexSplit>(individual_digits ? R"(\p{N})" : R"(\p{N}+)", SplitBehavior::isolated,
                                      "Digits");
}

std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelSplit>(add_prefix_space, use_regex);
}

std::unique_ptr<PreTokenizer> make_sequence(std::vector<std::unique_ptr<PreTokenizer>> stages) {
  return std::make_unique<Sequence>(std::move(stages));
}

std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& spec, std::string_view origin) {
  if (spec.is_null()) return make_sequence({});
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    throw FormatError(fmt::format("{}: \"pre_tokenizer\" must be null or an object with a \"type\" string", origin));
  }
  const std::string type = spec["type"].get<std::string>();
  if (type == "ByteLevel") {
    return make_byte_level(json_bool(spec, "add_prefix_space", true), json_bool(spec, "use_regex", true));
  }
  if (type == "Digits") return make_digits(json_bool(spec, "individual_digits", false));
  if (type == "Split") {
    if (json_bool(spec, "invert", false)) {
      throw ConfigError(fmt::format("{}: pre_tokenizer Split with \"invert\": true is not supported", origin));
    }
    const auto& pattern = spec.at("pattern");
    const SplitBehavior behavior = parse_behavior(spec, origin);
    if (pattern.contains("Regex")) {
      return std::make_unique<RegexSplit>(pattern["Regex"].get<std::string>(), behavior, origin);
    }
    if (pattern.contains("String")) {
      return std::make_unique<RegexSplit>(pattern["String"].get<std::string>(), behavior, origin, true);
    }
    throw FormatError(fmt::format("{}: pre_tokenizer Split needs \"pattern\": {{\"Regex\": ...}} or {{\"String\": ...}}",
                                  origin));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> stages;
    for (const auto& stage : spec.at("pretokenizers")) stages.push_back(pre_tokenizer_from_json(stage, origin));
    return make_sequence(std::move(stages));
  }
  throw ConfigError(fmt::format("{}: pre_tokenizer type \"{}\" is not supported for byte-level BPE; supported: "
                                "ByteLevel, Split, Digits, Sequence",
                                origin, type));
}

std::unique_ptr<PreTokenizer> pre_tokenizer_for_gguf(std::string_view pre, std::string_view origin) {
  std::vector<std::unique_ptr<PreTokenizer>> stages;
  if (pre == "llama-bpe" || pre == "llama3") {
    // Llama 3's tokenizer.json: Split(Isolated) with its own pattern, then ByteLevel without regex.
    stages.push_back(make_regex_split(kLlama3Pattern, SplitBehavior::isolated, origin));
    stages.push_back(make_byte_level(false, false));
  } else if (pre == "qwen2") {
    stages.push_back(make_regex_split(kQwen2Pattern, SplitBehavior::isolated, origin));
    stages.push_back(make_byte_level(false, false));
  } else if (pre == "smollm" || pre == "starcoder" || pre == "refact") {
    // SmolLM2 and StarCoder tokenizer.json: Digits(individual_digits) then ByteLevel.
    stages.push_back(make_digits(true));
    stages.push_back(make_byte_level(false, true));
  } else if (pre == "gpt2" || pre == "gpt-2" || pre == "default") {
    stages.push_back(make_byte_level(false, true));
  } else {
    log::warning_once(fmt::format("gguf-pre:{}", pre), "BpeTokenizer::from_gguf_vocab",
                      fmt::format("{}: unknown tokenizer.ggml.pre \"{}\"; assuming the GPT-2 split rule, which may "
                                  "tokenize digits and whitespace differently from the model's own tokenizer. Load "
                                  "the model's tokenizer.json instead, or set GgufVocab::pre to \"gpt2\" to accept "
                                  "this rule without the warning",
                                  origin, pre));
    stages.push_back(make_byte_level(false, true));
  }
  return make_sequence(std::move(stages));
}

// ---- Added tokens --------------------------------------------------------------------

void AddedTokenMatcher::add(AddedToken token) {
  if (token.content.empty()) return;
  const auto first = static_cast<unsigned char>(token.content[0]);
  tokens_.push_back(std::move(token));
  auto& bucket = by_first_byte_[first];
  bucket.push_back(tokens_.size() - 1);
  std::stable_sort(bucket.begin(), bucket.end(), [&](std::size_t a, std::size_t b) {
    return tokens_[a].content.size() > tokens_[b].content.size();
  });
}

namespace {

// NOTE: ASCII whitespace only; HF strips any Unicode whitespace for lstrip/rstrip.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) || c == '_';
}

}  // namespace

std::vector<Segment> AddedTokenMatcher::split(std::string_view text, bool parse_special) const {
  std::vector<Segment> segments;
  std::size_t segment_start = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const AddedToken* found = nullptr;
    if (const auto bucket = by_first_byte_.find(static_cast<unsigned char>(text[pos])); bucket != by_first_byte_.end()) {
      for (const std::size_t index : bucket->second) {
        const AddedToken& candidate = tokens_[index];
        if (candidate.special && !parse_special) continue;
        if (text.substr(pos).starts_with(candidate.content)) {
          const std::size_t end = pos + candidate.content.size();
          if (candidate.single_word &&
              ((pos > 0 && is_word_byte(text[pos - 1])) || (end < text.size() && is_word_byte(text[end])))) {
            continue;
          }
          found = &candidate;
          break;
        }
      }
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    std::size_t begin = pos;
    std::size_t end = pos + found->content.size();
    if (found->lstrip) {
      while (begin > segment_start && is_space(text[begin - 1])) --begin;
    }
    if (found->rstrip) {
      while (end < text.size() && is_space(text[end])) ++end;
    }
    if (begin > segment_start) segments.push_back({text.substr(segment_start, begin - segment_start), std::nullopt});
    segments.push_back({text.substr(begin, end - begin), found->id});
    pos = segment_start = end;
  }
  if (segment_start < text.size()) segments.push_back({text.substr(segment_start), std::nullopt});
  return segments;
}

}  // namespace medfair::text::detail
