// Byte-level BPE as Hugging Face tokenizers implements it (models/bpe in the
// tokenizers crate): pre-tokenize, map each piece to bytes, then apply merges
// lowest rank first, ties broken by position.

#include <fmt/format.h>

#include <array>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "internal.hpp"
#include "medfair/error.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair::text {

using detail::AddedToken;
using nlohmann::json;

struct BpeTokenizer::Impl {
  std::string origin;
  std::vector<std::string> tokens;       // vocabulary spelling, by id
  std::vector<std::string> token_bytes;  // bytes decode() emits, by id
  std::vector<bool> special;
  std::unordered_map<std::string, int32_t> spelling_to_id;
  std::unordered_map<std::string, int32_t> bytes_to_id;  // model tokens only, for ignore_merges
  std::array<int32_t, 256> byte_ids{};
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left, right) -> (rank, merged id)
  detail::AddedTokenMatcher added;
  std::unique_ptr<detail::PreTokenizer> pre_tokenizer;
  bool ignore_merges = false;
  SpecialTokenIds special_ids;
  std::vector<int32_t> prefix_ids;  // added by encode(add_special=true) before the text
  std::vector<int32_t> suffix_ids;

  static constexpr std::size_t kCacheCapacity = 50000;
  static constexpr std::size_t kCachedPieceMaxBytes = 256;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  // Registers token `spelling` as `id`, growing the tables as needed.
  void set_token(int32_t id, const std::string& spelling) {
    if (static_cast<std::size_t>(id) >= tokens.size()) {
      tokens.resize(id + 1);
      token_bytes.resize(id + 1);
      special.resize(id + 1, false);
    }
    tokens[id] = spelling;
    // As tokenizers' ByteLevel decoder does: a token whose characters are all
    // in the byte-level alphabet decodes to those bytes, any other to itself.
    token_bytes[id] = detail::byte_level_to_bytes(spelling).value_or(spelling);
    spelling_to_id[spelling] = id;
  }

  void finish_model_vocab() {
    byte_ids.fill(-1);
    std::vector<bool> added_id(tokens.size(), false);
    for (const auto& token : added.tokens()) added_id[token.id] = true;
    for (std::size_t id = 0; id < tokens.size(); ++id) {
      // Added tokens are matched before pre-tokenization, never as a whole pre-token.
      if (tokens[id].empty() || added_id[id]) continue;
      const auto bytes = detail::byte_level_to_bytes(tokens[id]);
      if (!bytes) continue;
      bytes_to_id.emplace(*bytes, static_cast<int32_t>(id));
    }
    const auto& alphabet = detail::byte_to_code_point();
    for (int b = 0; b < 256; ++b) {
      std::string spelling;
      detail::append_utf8(spelling, alphabet[b]);
      if (const auto it = spelling_to_id.find(spelling); it != spelling_to_id.end()) byte_ids[b] = it->second;
    }
  }

  void add_merge(std::string_view left, std::string_view right, std::size_t rank, std::string_view where) {
    const auto find = [&](const std::string& s) -> int32_t {
      const auto it = spelling_to_id.find(s);
      if (it == spelling_to_id.end()) {
        throw FormatError(fmt::format("{}: {} uses token {:?}, which is not in the vocabulary", origin, where, s));
      }
      return it->second;
    };
    const int32_t a = find(std::string(left));
    const int32_t b = find(std::string(right));
    const int32_t merged = find(std::string(left) + std::string(right));
    merges.try_emplace(pair_key(a, b), static_cast<int32_t>(rank), merged);
  }

  void add_merge_string(std::string_view merge, std::size_t rank, std::string_view where) {
    const std::size_t space = merge.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 >= merge.size() ||
        merge.find(' ', space + 1) != std::string_view::npos) {
      throw FormatError(fmt::format("{}: {} is {:?}; expected two tokens separated by one space, as \"a b\"", origin,
                                    where, std::string(merge)));
    }
    add_merge(merge.substr(0, space), merge.substr(space + 1), rank, where);
  }

  // Applies the merges to one pre-token's bytes and appends the resulting ids.
  void merge_piece(std::string_view piece, std::vector<int32_t>& out) const {
    if (ignore_merges) {
      if (const auto it = bytes_to_id.find(std::string(piece)); it != bytes_to_id.end()) {
        out.push_back(it->second);
        return;
      }
    }
    const bool cacheable = piece.size() <= kCachedPieceMaxBytes;
    if (cacheable) {
      std::lock_guard lock(cache_mutex);
      if (const auto it = cache.find(std::string(piece)); it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }

    std::vector<int32_t> symbols;
    symbols.reserve(piece.size());
    for (const char c : piece) {
      const int32_t id = byte_ids[static_cast<unsigned char>(c)];
      if (id >= 0) {
        symbols.push_back(id);
      } else if (special_ids.unk) {
        symbols.push_back(*special_ids.unk);
      } else {
        throw DataError(fmt::format("{}: byte 0x{:02X} has no token in the vocabulary and the model has no unknown "
                                    "token",
                                    origin, static_cast<unsigned char>(c)));
      }
    }
    std::vector<int32_t> result = merge_symbols(std::move(symbols));
    out.insert(out.end(), result.begin(), result.end());
    if (cacheable) {
      std::lock_guard lock(cache_mutex);
      if (cache.size() >= kCacheCapacity) cache.clear();
      cache.emplace(std::string(piece), std::move(result));
    }
  }

  // tokenizers' Word::merge_all: a min-heap of (rank, position) over adjacent
  // pairs; a popped entry whose pair has changed since it was pushed is stale.
  std::vector<int32_t> merge_symbols(std::vector<int32_t> symbol) const {
    const int n = static_cast<int>(symbol.size());
    std::vector<int> prev(n), next(n);
    for (int i = 0; i < n; ++i) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    struct Candidate {
      int32_t rank;
      int position;
      int32_t merged;
      bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : position > o.position;
      }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    const auto push_pair = [&](int i) {
      if (i < 0 || next[i] < 0) return;
      if (const auto it = merges.find(pair_key(symbol[i], symbol[next[i]])); it != merges.end()) {
        queue.push({it->second.first, i, it->second.second});
      }
    };
    for (int i = 0; i + 1 < n; ++i) push_pair(i);

    std::vector<bool> removed(n, false);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      const int i = top.position;
      if (removed[i] || next[i] < 0) continue;
      const auto it = merges.find(pair_key(symbol[i], symbol[next[i]]));
      if (it == merges.end() || it->second.second != top.merged) continue;
      const int j = next[i];
      symbol[i] = top.merged;
      removed[j] = true;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      push_pair(prev[i]);
      push_pair(i);
    }

    std::vector<int32_t> result;
    for (int i = 0; i < n; ++i) {
      if (!removed[i]) result.push_back(symbol[i]);
    }
    return result;
  }

  void check_id(int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens.size()) {
      throw DataError(fmt::format("{}: token id {} is out of range; the vocabulary has ids 0 to {}", origin, id,
                                  static_cast<long long>(tokens.size()) - 1));
    }
  }

  void check_special_ids() const {
    const auto check = [&](const std::optional<int32_t>& id, std::string_view name) {
      if (id && (*id < 0 || static_cast<std::size_t>(*id) >= tokens.size())) {
        throw FormatError(fmt::format("{}: {} token id {} is outside the vocabulary of {} tokens", origin, name, *id,
                                      tokens.size()));
      }
    };
    check(special_ids.bos, "BOS");
    check(special_ids.eos, "EOS");
    check(special_ids.pad, "padding");
    check(special_ids.unk, "unknown");
  }
};

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

// ---- tokenizer.json --------------------------------------------------------------

namespace {

// Reads the ids a TemplateProcessing / Roberta / Bert post-processor puts
// around a single sequence.
void read_post_processor(const json& spec, BpeTokenizer::Impl& impl, std::string_view origin) {
  if (spec.is_null()) return;
  const std::string type = detail::json_string(spec, "type", std::string());
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    for (const auto& p : spec.at("processors")) read_post_processor(p, impl, origin);
    return;
  }
  if (type == "TemplateProcessing") {
    const auto& specials = spec.value("special_tokens", json::object());
    bool before = true;
    for (const auto& item : spec.at("single")) {
      if (item.contains("Sequence")) {
        before = false;
        continue;
      }
      const std::string name = item.at("SpecialToken").at("id").get<std::string>();
      if (!specials.contains(name)) {
        throw FormatError(fmt::format("{}: post_processor template uses special token {:?}, which its "
                                      "\"special_tokens\" does not define",
                                      origin, name));
      }
      for (const auto& id : specials[name].at("ids")) (before ? impl.prefix_ids : impl.suffix_ids).push_back(id.get<int32_t>());
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    impl.prefix_ids.push_back(spec.at("cls").at(1).get<int32_t>());
    impl.suffix_ids.push_back(spec.at("sep").at(1).get<int32_t>());
    return;
  }
  throw ConfigError(fmt::format("{}: post_processor type {:?} is not supported; supported: TemplateProcessing, "
                                "ByteLevel, RobertaProcessing, BertProcessing, Sequence",
                                origin, type));
}

// True when a ByteLevel stage occurs anywhere in a pre_tokenizer description.
bool has_byte_level(const json& spec) {
  if (!spec.is_object()) return false;
  if (detail::json_string(spec, "type", "") == "ByteLevel") return true;
  for (const auto& stage : spec.value("pretokenizers", json::array())) {
    if (has_byte_level(stage)) return true;
  }
  return false;
}

std::optional<int32_t> find_id(const BpeTokenizer::Impl& impl, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (const auto it = impl.spelling_to_id.find(name); it != impl.spelling_to_id.end()) return it->second;
  }
  return std::nullopt;
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::filesystem::path& path) {
  return from_tokenizer_json_string(detail::read_file(path.string()), path.string());
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json_string(std::string_view text, std::string_view origin) {
  const json root = detail::parse_json(text, origin);
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  try {
    if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
      throw FormatError(fmt::format("{}: missing \"model\" object; a tokenizer.json has the vocabulary under "
                                    "\"model\"",
                                    origin));
    }
    const json& model = root["model"];
    const std::string type = detail::json_string(model, "type", std::string());
    if (type != "BPE") {
      throw ConfigError(fmt::format("{}: model type {:?} is not byte-level BPE; expected \"BPE\" (use "
                                    "load_tokenizer_json for WordPiece)",
                                    origin, type));
    }
    if (detail::json_bool(model, "byte_fallback", false) || !detail::json_string(model, "continuing_subword_prefix", std::string()).empty() ||
        !detail::json_string(model, "end_of_word_suffix", std::string()).empty() || !model.value("dropout", json()).is_null()) {
      throw ConfigError(fmt::format("{}: BPE options byte_fallback, continuing_subword_prefix, end_of_word_suffix "
                                    "and dropout are not supported; only byte-level BPE is",
                                    origin));
    }
    if (!root.value("normalizer", json()).is_null()) {
      throw ConfigError(fmt::format("{}: normalizer {} is not supported for byte-level BPE", origin,
                                    detail::json_string(root["normalizer"], "type", std::string("?"))));
    }
    if (!model.contains("vocab") || !model["vocab"].is_object()) {
      throw FormatError(fmt::format("{}: \"model.vocab\" must be an object mapping tokens to ids", origin));
    }
    for (const auto& [spelling, id] : model["vocab"].items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > 10'000'000) {
        throw FormatError(fmt::format("{}: model.vocab[{:?}] is {}; expected an id between 0 and 10000000", origin,
                                      spelling, id.dump()));
      }
      impl->set_token(id.get<int32_t>(), spelling);
    }
    impl->ignore_merges = detail::json_bool(model, "ignore_merges", false);
    for (const auto& added : root.value("added_tokens", json::array())) {
      AddedToken token;
      token.content = added.at("content").get<std::string>();
      token.id = added.at("id").get<int32_t>();
      token.special = detail::json_bool(added, "special", false);
      token.lstrip = detail::json_bool(added, "lstrip", false);
      token.rstrip = detail::json_bool(added, "rstrip", false);
      token.single_word = detail::json_bool(added, "single_word", false);
      if (token.id < 0 || token.id > 10'000'000) {
        throw FormatError(fmt::format("{}: added token {:?} has id {}; expected 0 to 10000000", origin, token.content,
                                      token.id));
      }
      impl->set_token(token.id, token.content);
      impl->special[token.id] = token.special;
      impl->added.add(std::move(token));
    }
    impl->finish_model_vocab();
    const json merges = model.value("merges", json::array());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const json& merge = merges[rank];
      const std::string where = fmt::format("model.merges[{}]", rank);
      if (merge.is_string()) {
        impl->add_merge_string(merge.get<std::string>(), rank, where);
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
        impl->add_merge(merge[0].get<std::string>(), merge[1].get<std::string>(), rank, where);
      } else {
        throw FormatError(fmt::format("{}: {} is {}; expected \"a b\" or [\"a\", \"b\"]", origin, where,
                                      merge.dump()));
      }
    }
    const json pre_tokenizer = root.value("pre_tokenizer", json());
    if (!has_byte_level(pre_tokenizer)) {
      throw ConfigError(fmt::format("{}: the pre_tokenizer has no ByteLevel stage, so this is not a byte-level BPE; "
                                    "medfair's BpeTokenizer supports byte-level BPE only",
                                    origin));
    }
    impl->pre_tokenizer = detail::pre_tokenizer_from_json(pre_tokenizer, origin);
    const json decoder = root.value("decoder", json());
    if (!decoder.is_null() && detail::json_string(decoder, "type", std::string()) != "ByteLevel") {
      throw ConfigError(fmt::format("{}: decoder type {:?} is not supported; byte-level BPE needs \"ByteLevel\"",
                                    origin, detail::json_string(decoder, "type", std::string())));
    }
    read_post_processor(root.value("post_processor", json()), *impl, origin);
    if (const auto unk = model.value("unk_token", json()); unk.is_string()) {
      impl->special_ids.unk = find_id(*impl, {unk.get<std::string>().c_str()});
    }
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("{}: unexpected tokenizer.json structure: {}", origin, e.what()));
  }
  // tokenizer.json does not name BOS/EOS; take the usual spellings when present.
  impl->special_ids.bos = find_id(*impl, {"<|begin_of_text|>", "<s>", "<|endoftext|>"});
  impl->special_ids.eos = find_id(*impl, {"<|eot_id|>", "<|im_end|>", "</s>", "<|endoftext|>"});
  if (!impl->prefix_ids.empty()) impl->special_ids.bos = impl->prefix_ids.front();
  impl->check_special_ids();
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

// ---- GGUF vocab ----------------------------------------------------------------------

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_gguf_vocab(const GgufVocab& vocab) {
  const std::string& origin = vocab.origin;
  if (vocab.model != "gpt2") {
    throw ConfigError(fmt::format("{}: tokenizer.ggml.model is {:?}; BpeTokenizer reads \"gpt2\" vocabularies only",
                                  origin, vocab.model));
  }
  if (vocab.tokens.empty()) throw FormatError(fmt::format("{}: tokenizer.ggml.tokens is empty", origin));
  if (!vocab.token_types.empty() && vocab.token_types.size() != vocab.tokens.size()) {
    throw FormatError(fmt::format("{}: tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                                  origin, vocab.token_types.size(), vocab.tokens.size()));
  }

  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  for (std::size_t id = 0; id < vocab.tokens.size(); ++id) impl->set_token(static_cast<int32_t>(id), vocab.tokens[id]);
  // Control tokens (type 3) are special; user-defined ones (type 4) are added
  // tokens matched in text without being special.
  for (std::size_t id = 0; id < vocab.token_types.size(); ++id) {
    const int32_t type = vocab.token_types[id];
    if (type != 3 && type != 4) continue;
    AddedToken token;
    token.content = vocab.tokens[id];
    token.id = static_cast<int32_t>(id);
    token.special = type == 3;
    impl->special[id] = token.special;
    impl->added.add(std::move(token));
  }
  impl->finish_model_vocab();

  for (std::size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    impl->add_merge_string(vocab.merges[rank], rank, fmt::format("tokenizer.ggml.merges[{}]", rank));
  }
  impl->pre_tokenizer = detail::pre_tokenizer_for_gguf(vocab.pre, origin);
  // Llama 3's tokenizer.json sets ignore_merges: a pre-token that is itself in
  // the vocabulary is emitted whole.
  impl->ignore_merges = vocab.pre == "llama-bpe" || vocab.pre == "llama3";
  impl->special_ids = vocab.special;
  impl->check_special_ids();

  if (vocab.add_bos) {
    if (!vocab.special.bos) throw FormatError(fmt::format("{}: add_bos_token is set but bos_token_id is missing", origin));
    impl->prefix_ids.push_back(*vocab.special.bos);
  }
  if (vocab.add_eos) {
    if (!vocab.special.eos) throw FormatError(fmt::format("{}: add_eos_token is set but eos_token_id is missing", origin));
    impl->suffix_ids.push_back(*vocab.special.eos);
  }
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

// ---- Tokenizer interface -----------------------------------------------------------------

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view text) const {
  detail::require_utf8(text, impl_->origin);
  std::vector<std::string> pieces;
  impl_->pre_tokenizer->split(text, pieces);
  return pieces;
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  detail::require_utf8(text, impl_->origin);
  std::vector<int32_t> ids;
  if (add_special) ids = impl_->prefix_ids;
  std::vector<std::string> pieces;
  for (const auto& segment : impl_->added.split(text, parse_special)) {
    if (segment.token) {
      ids.push_back(*segment.token);
      continue;
    }
    pieces.clear();
    impl_->pre_tokenizer->split(segment.text, pieces);
    for (const auto& piece : pieces) impl_->merge_piece(piece, ids);
  }
  if (add_special) ids.insert(ids.end(), impl_->suffix_ids.begin(), impl_->suffix_ids.end());
  return ids;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (const int32_t id : ids) {
    impl_->check_id(id);
    if (skip_special && impl_->special[id]) continue;
    bytes.append(impl_->token_bytes[id]);
  }
  return detail::utf8_lossy(bytes);
}

std::optional<int32_t> BpeTokenizer::token_to_id(std::string_view token) const {
  const auto it = impl_->spelling_to_id.find(std::string(token));
  if (it == impl_->spelling_to_id.end()) return std::nullopt;
  return it->second;
}

std::string BpeTokenizer::id_to_token(int32_t id) const {
  impl_->check_id(id);
  return impl_->tokens[id];
}

std::size_t BpeTokenizer::vocab_size() const { return impl_->tokens.size(); }

bool BpeTokenizer::is_special(int32_t id) const {
  impl_->check_id(id);
  return impl_->special[id];
}

const SpecialTokenIds& BpeTokenizer::special_ids() const { return impl_->special_ids; }

}  // namespace medfair::text
