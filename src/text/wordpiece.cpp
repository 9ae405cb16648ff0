// BERT's WordPiece tokenizer as Hugging Face tokenizers implements it:
// BertNormalizer, BertPreTokenizer, greedy longest-match WordPiece with "##"
// continuations, and [CLS] ... [SEP] around the sequence. Unicode properties
// (categories, NFD, lower case) come from ICU.

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <fmt/format.h>

#include <sstream>
#include <unordered_map>

#include "internal.hpp"
#include "medfair/error.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair::text {

using nlohmann::json;

namespace {

bool is_bert_whitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || u_charType(static_cast<UChar32>(c)) == U_SPACE_SEPARATOR;
}

// tokenizers' is_control: the "Other" categories, except tab, newline and return.
bool is_bert_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (u_charType(static_cast<UChar32>(c))) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_SURROGATE:
    case U_PRIVATE_USE_CHAR:
    case U_UNASSIGNED:
      return true;
    default:
      return false;
  }
}

bool is_bert_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  switch (u_charType(static_cast<UChar32>(c))) {
    case U_CONNECTOR_PUNCTUATION:
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
      return true;
    default:
      return false;
  }
}

// The CJK Unified Ideographs blocks that BERT's handle_chinese_chars spaces out.
bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::u32string to_u32(std::string_view utf8) {
  std::u32string out;
  std::size_t pos = 0;
  while (pos < utf8.size()) out.push_back(detail::next_code_point(utf8, pos));
  return out;
}

std::string to_utf8(std::u32string_view text) {
  std::string out;
  for (const char32_t c : text) detail::append_utf8(out, c);
  return out;
}

std::u16string to_utf16(std::u32string_view text) {
  std::u16string out;
  for (const char32_t c : text) {
    if (c < 0x10000) {
      out.push_back(static_cast<char16_t>(c));
    } else {
      out.push_back(static_cast<char16_t>(0xD800 + ((c - 0x10000) >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + ((c - 0x10000) & 0x3FF)));
    }
  }
  return out;
}

std::u32string from_utf16(const std::u16string& text) {
  std::u32string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char16_t c = text[i];
    if (c >= 0xD800 && c <= 0xDBFF && i + 1 < text.size()) {
      out.push_back(0x10000 + ((static_cast<char32_t>(c) - 0xD800) << 10) + (text[i + 1] - 0xDC00));
      ++i;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string nfd(std::u32string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* normalizer = unorm2_getNFDInstance(&status);
  const std::u16string source = to_utf16(text);
  std::u16string result(source.size() * 4 + 16, u'\0');
  const int32_t length = unorm2_normalize(normalizer, reinterpret_cast<const UChar*>(source.data()),
                                          static_cast<int32_t>(source.size()), reinterpret_cast<UChar*>(result.data()),
                                          static_cast<int32_t>(result.size()), &status);
  if (U_FAILURE(status)) throw DataError(fmt::format("ICU NFD normalization failed: {}", u_errorName(status)));
  result.resize(length);
  return from_utf16(result);
}

// Full lower-case mapping of one code point on its own, as Rust's
// char::to_lowercase (no context, so no final-sigma rule).
void append_lower(std::u32string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  const std::u16string source = to_utf16(std::u32string_view(&c, 1));
  UChar buffer[16];
  UErrorCode status = U_ZERO_ERROR;
  const int32_t length = u_strToLower(buffer, 16, reinterpret_cast<const UChar*>(source.data()),
                                      static_cast<int32_t>(source.size()), "", &status);
  if (U_FAILURE(status)) {
    out.push_back(c);
    return;
  }
  const auto lowered = from_utf16(std::u16string(reinterpret_cast<const char16_t*>(buffer), length));
  out += lowered;
}

}  // namespace

struct WordPieceTokenizer::Impl {
  std::string origin;
  WordPieceOptions options;
  std::vector<std::string> tokens;
  std::vector<bool> special;
  std::unordered_map<std::string, int32_t> ids;
  detail::AddedTokenMatcher added;
  SpecialTokenIds special_ids;
  std::optional<int32_t> cls, sep;
  std::string prefix = "##";
  bool strip_accents = true;
  bool clean_text = true;
  bool decoder_cleanup = true;

  std::optional<int32_t> find(const std::string& token) const {
    const auto it = ids.find(token);
    return it == ids.end() ? std::nullopt : std::optional<int32_t>(it->second);
  }

  void set_token(int32_t id, const std::string& token) {
    if (static_cast<std::size_t>(id) >= tokens.size()) {
      tokens.resize(id + 1);
      special.resize(id + 1, false);
    }
    tokens[id] = token;
    ids[token] = id;
  }

  void finish() {
    special_ids.unk = find("[UNK]");
    special_ids.pad = find("[PAD]");
    cls = find("[CLS]");
    sep = find("[SEP]");
    special_ids.bos = cls;
    special_ids.eos = sep;
    if (!special_ids.unk) {
      throw FormatError(fmt::format("{}: the vocabulary has no [UNK] token, which WordPiece needs", origin));
    }
    if (added.empty()) {
      for (const char* name : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
        if (const auto id = find(name)) {
          special[*id] = true;
          added.add({name, *id, true, false, false, false});
        }
      }
    }
  }

  // BertNormalizer: clean text, space out CJK ideographs, strip accents, lower case.
  std::u32string normalize(std::string_view text) const {
    std::u32string out;
    for (const char32_t c : to_u32(text)) {
      if (clean_text) {
        if (c == 0 || c == 0xFFFD || is_bert_control(c)) continue;
        if (is_bert_whitespace(c)) {
          out.push_back(' ');
          continue;
        }
      }
      if (options.handle_chinese_chars && is_cjk_ideograph(c)) {
        out.push_back(' ');
        out.push_back(c);
        out.push_back(' ');
      } else {
        out.push_back(c);
      }
    }
    if (strip_accents) {
      std::u32string stripped;
      for (const char32_t c : nfd(out)) {
        if (u_charType(static_cast<UChar32>(c)) != U_NON_SPACING_MARK) stripped.push_back(c);
      }
      out.swap(stripped);
    }
    if (options.lowercase) {
      std::u32string lowered;
      for (const char32_t c : out) append_lower(lowered, c);
      out.swap(lowered);
    }
    return out;
  }

  // BertPreTokenizer: split on whitespace (dropped) and punctuation (kept alone).
  static std::vector<std::u32string> pre_tokenize(const std::u32string& text) {
    std::vector<std::u32string> words;
    std::u32string current;
    const auto flush = [&] {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
    };
    for (const char32_t c : text) {
      if (is_bert_whitespace(c) || (c < 0x80 && std::isspace(static_cast<int>(c)))) {
        flush();
      } else if (is_bert_punctuation(c)) {
        flush();
        words.emplace_back(1, c);
      } else {
        current.push_back(c);
      }
    }
    flush();
    return words;
  }

  void word_piece(const std::u32string& word, std::vector<int32_t>& out) const {
    if (word.size() > options.max_input_chars_per_word) {
      out.push_back(*special_ids.unk);
      return;
    }
    std::vector<int32_t> pieces;
    std::size_t start = 0;
    while (start < word.size()) {
      std::optional<int32_t> match;
      std::size_t end = word.size();
      for (; end > start; --end) {
        std::string candidate = to_utf8(std::u32string_view(word).substr(start, end - start));
        if (start > 0) candidate = prefix + candidate;
        if ((match = find(candidate))) break;
      }
      if (!match) {
        out.push_back(*special_ids.unk);
        return;
      }
      pieces.push_back(*match);
      start = end;
    }
    out.insert(out.end(), pieces.begin(), pieces.end());
  }

  void check_id(int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens.size()) {
      throw DataError(fmt::format("{}: token id {} is out of range; the vocabulary has ids 0 to {}", origin, id,
                                  static_cast<long long>(tokens.size()) - 1));
    }
  }
};

WordPieceTokenizer::WordPieceTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WordPieceTokenizer::~WordPieceTokenizer() = default;

std::unique_ptr<WordPieceTokenizer> WordPieceTokenizer::from_vocab_txt(const std::filesystem::path& path,
                                                                       const WordPieceOptions& options) {
  const std::string text = detail::read_file(path.string());
  auto impl = std::make_unique<Impl>();
  impl->origin = path.string();
  impl->options = options;
  impl->strip_accents = options.lowercase;
  std::istringstream lines(text);
  std::string line;
  int32_t id = 0;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    impl->set_token(id++, line);
  }
  impl->finish();
  return std::unique_ptr<WordPieceTokenizer>(new WordPieceTokenizer(std::move(impl)));
}

std::unique_ptr<WordPieceTokenizer> WordPieceTokenizer::from_tokenizer_json(const std::filesystem::path& path,
                                                                            std::optional<WordPieceOptions> options) {
  const std::string origin = path.string();
  const json root = detail::parse_json(detail::read_file(origin), origin);
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  try {
    if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
      throw FormatError(fmt::format("{}: missing \"model\" object; a tokenizer.json has the vocabulary under "
                                    "\"model\"",
                                    origin));
    }
    const json& model = root["model"];
    if (detail::json_string(model, "type", std::string()) != "WordPiece") {
      throw ConfigError(fmt::format("{}: model type {:?} is not \"WordPiece\"", origin,
                                    detail::json_string(model, "type", std::string())));
    }
    WordPieceOptions resolved;
    resolved.max_input_chars_per_word = model.value("max_input_chars_per_word", std::size_t{100});
    impl->prefix = detail::json_string(model, "continuing_subword_prefix", std::string("##"));
    const json normalizer = root.value("normalizer", json());
    if (!normalizer.is_null()) {
      if (detail::json_string(normalizer, "type", std::string()) != "BertNormalizer") {
        throw ConfigError(fmt::format("{}: normalizer {:?} is not supported; WordPiece needs BertNormalizer", origin,
                                      detail::json_string(normalizer, "type", std::string())));
      }
      resolved.lowercase = detail::json_bool(normalizer, "lowercase", true);
      resolved.handle_chinese_chars = detail::json_bool(normalizer, "handle_chinese_chars", true);
      impl->clean_text = detail::json_bool(normalizer, "clean_text", true);
      const json strip = normalizer.value("strip_accents", json());
      impl->strip_accents = strip.is_boolean() ? strip.get<bool>() : resolved.lowercase;
    } else {
      resolved.lowercase = false;
      resolved.handle_chinese_chars = false;
      impl->clean_text = false;
      impl->strip_accents = false;
    }
    const json pre = root.value("pre_tokenizer", json());
    if (!pre.is_null() && detail::json_string(pre, "type", std::string()) != "BertPreTokenizer") {
      throw ConfigError(fmt::format("{}: pre_tokenizer {:?} is not supported; WordPiece needs BertPreTokenizer", origin,
                                    detail::json_string(pre, "type", std::string())));
    }
    if (const json truncation = root.value("truncation", json()); truncation.is_object()) {
      resolved.max_length = truncation.value("max_length", std::size_t{0});
    }
    impl->options = options.value_or(resolved);
    if (options) impl->strip_accents = options->lowercase;
    for (const auto& [token, id] : model.at("vocab").items()) impl->set_token(id.get<int32_t>(), token);
    for (const auto& entry : root.value("added_tokens", json::array())) {
      detail::AddedToken token{entry.at("content").get<std::string>(), entry.at("id").get<int32_t>(),
                               detail::json_bool(entry, "special", false), detail::json_bool(entry, "lstrip", false),
                               detail::json_bool(entry, "rstrip", false), detail::json_bool(entry, "single_word", false)};
      impl->set_token(token.id, token.content);
      impl->special[token.id] = token.special;
      impl->added.add(std::move(token));
    }
    if (const json decoder = root.value("decoder", json()); decoder.is_object()) {
      impl->decoder_cleanup = detail::json_bool(decoder, "cleanup", true);
    }
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("{}: unexpected tokenizer.json structure: {}", origin, e.what()));
  }
  impl->finish();
  return std::unique_ptr<WordPieceTokenizer>(new WordPieceTokenizer(std::move(impl)));
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  detail::require_utf8(text, impl_->origin);
  std::vector<int32_t> ids;
  for (const auto& segment : impl_->added.split(text, parse_special)) {
    if (segment.token) {
      ids.push_back(*segment.token);
      continue;
    }
    for (const auto& word : Impl::pre_tokenize(impl_->normalize(segment.text))) impl_->word_piece(word, ids);
  }
  const std::size_t max_length = impl_->options.max_length;
  if (add_special && impl_->cls && impl_->sep) {
    if (max_length > 0) ids.resize(std::min(ids.size(), max_length > 2 ? max_length - 2 : 0));
    ids.insert(ids.begin(), *impl_->cls);
    ids.push_back(*impl_->sep);
  } else if (max_length > 0 && ids.size() > max_length) {
    ids.resize(max_length);
  }
  return ids;
}

std::string WordPieceTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  // tokenizers' WordPiece decoder: "##" pieces join the previous token,
  // others get a leading space, and cleanup runs on each token on its own
  // (so " ' " never matches, but " ," does).
  static const std::pair<std::string_view, std::string_view> kCleanup[] = {
      {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},         {" ' ", "'"},   {" n't", "n't"},
      {" 'm", "'m"},   {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string text;
  bool first = true;
  for (const int32_t id : ids) {
    impl_->check_id(id);
    if (skip_special && impl_->special[id]) continue;
    const std::string& token = impl_->tokens[id];
    std::string piece;
    if (!first && token.starts_with(impl_->prefix)) {
      piece = token.substr(impl_->prefix.size());
    } else {
      piece = first ? token : " " + token;
    }
    first = false;
    if (impl_->decoder_cleanup) {
      for (const auto& [from, to] : kCleanup) {
        for (std::size_t at = piece.find(from); at != std::string::npos; at = piece.find(from, at + to.size())) {
          piece.replace(at, from.size(), to);
        }
      }
    }
    text += piece;
  }
  return text;
}

std::optional<int32_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  return impl_->find(std::string(token));
}

std::string WordPieceTokenizer::id_to_token(int32_t id) const {
  impl_->check_id(id);
  return impl_->tokens[id];
}

std::size_t WordPieceTokenizer::vocab_size() const { return impl_->tokens.size(); }

bool WordPieceTokenizer::is_special(int32_t id) const {
  impl_->check_id(id);
  return impl_->special[id];
}

const SpecialTokenIds& WordPieceTokenizer::special_ids() const { return impl_->special_ids; }
const WordPieceOptions& WordPieceTokenizer::options() const { return impl_->options; }
std::optional<int32_t> WordPieceTokenizer::cls_id() const { return impl_->cls; }
std::optional<int32_t> WordPieceTokenizer::sep_id() const { return impl_->sep; }

// ---- Factories over all tokenizer kinds --------------------------------------------

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& path) {
  const std::string origin = path.string();
  const std::string text = detail::read_file(origin);
  const json root = detail::parse_json(text, origin);
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
    throw FormatError(fmt::format("{}: missing \"model\" object; a tokenizer.json has the vocabulary under \"model\"",
                                  origin));
  }
  std::string type;
  try {
    type = detail::json_string(root["model"], "type", std::string());
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("{}: unexpected tokenizer.json structure: {}", origin, e.what()));
  }
  if (type == "BPE") return BpeTokenizer::from_tokenizer_json_string(text, origin);
  if (type == "WordPiece") return WordPieceTokenizer::from_tokenizer_json(path);
  throw ConfigError(fmt::format("{}: model type {:?} is not supported; expected \"BPE\" or \"WordPiece\" (load "
                                "SentencePiece models from their .model file)",
                                origin, type));
}

std::unique_ptr<Tokenizer> tokenizer_from_gguf_vocab(const GgufVocab& vocab) {
  if (vocab.model == "gpt2") return BpeTokenizer::from_gguf_vocab(vocab);
  if (vocab.model == "llama") return SentencePieceTokenizer::from_gguf_vocab(vocab);
  throw ConfigError(fmt::format("{}: tokenizer.ggml.model {:?} is not supported; expected \"gpt2\" (byte-level BPE) "
                                "or \"llama\" (SentencePiece)",
                                vocab.origin, vocab.model));
}

}  // namespace medfair::text
