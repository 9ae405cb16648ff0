// SentenceEncoder: loading a BERT sentence-embedding folder, batched encoding,
// pooling and normalisation as sentence-transformers does them
// (sentence_transformers 6.3.0: Transformer, Pooling and Normalize modules).

#include "medfair/models/sentence_encoder.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "medfair/error.hpp"
#include "medfair/log.hpp"
#include "sentence_encoder_impl.hpp"

namespace medfair {

namespace {

using nlohmann::json;

std::optional<json> read_optional_json(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  std::ifstream stream(path);
  if (!stream) throw IOError(fmt::format("cannot open {}: check the file's permissions", path.string()));
  try {
    return json::parse(stream);
  } catch (const json::exception& error) {
    throw FormatError(fmt::format("{}: invalid JSON: {}", path.string(), error.what()));
  }
}

// Rejects a tokenizer file whose explicit strip_accents differs from its
// lowercase setting, which WordPieceOptions cannot express (there accents are
// stripped exactly when text is lowercased).
void reject_independent_strip_accents(const json& normalizer_or_config, const char* lowercase_key,
                                      const std::filesystem::path& path) {
  if (!normalizer_or_config.is_object()) return;
  const auto strip = normalizer_or_config.find("strip_accents");
  if (strip == normalizer_or_config.end() || !strip->is_boolean()) return;
  const bool lowercase = normalizer_or_config.value(lowercase_key, true);
  if (strip->get<bool>() != lowercase) {
    throw ModelError(fmt::format("{}: strip_accents {} with {} {} is not supported; medfair's WordPiece tokenizer "
                                 "strips accents exactly when it lowercases",
                                 path.string(), strip->get<bool>(), lowercase_key, lowercase));
  }
}

// Loads the folder's WordPiece tokenizer with truncation at `max_length` ids,
// [CLS] and [SEP] included.
std::unique_ptr<text::WordPieceTokenizer> load_tokenizer(const std::filesystem::path& folder, int64_t max_length) {
  const std::filesystem::path tokenizer_json = folder / "tokenizer.json";
  if (std::filesystem::exists(tokenizer_json)) {
    auto tokenizer = text::WordPieceTokenizer::from_tokenizer_json(tokenizer_json);
    if (tokenizer->options().max_length == static_cast<std::size_t>(max_length)) return tokenizer;
    // Overriding the file's truncation means passing explicit options, and
    // those cannot carry an independent strip_accents.
    if (auto root = read_optional_json(tokenizer_json); root && root->is_object()) {
      reject_independent_strip_accents(root->value("normalizer", json()), "lowercase", tokenizer_json);
    }
    text::WordPieceOptions options = tokenizer->options();
    options.max_length = static_cast<std::size_t>(max_length);
    return text::WordPieceTokenizer::from_tokenizer_json(tokenizer_json, options);
  }

  const std::filesystem::path vocab_txt = folder / "vocab.txt";
  if (std::filesystem::exists(vocab_txt)) {
    const std::filesystem::path config_path = folder / "tokenizer_config.json";
    const json config = read_optional_json(config_path).value_or(json::object());
    text::WordPieceOptions options;
    if (config.is_object()) {
      reject_independent_strip_accents(config, "do_lower_case", config_path);
      options.lowercase = config.value("do_lower_case", true);
      options.handle_chinese_chars = config.value("tokenize_chinese_chars", true);
    }
    options.max_length = static_cast<std::size_t>(max_length);
    return text::WordPieceTokenizer::from_vocab_txt(vocab_txt, options);
  }

  throw IOError(fmt::format("{}: found neither tokenizer.json nor vocab.txt; a BERT folder needs one of them",
                            folder.string()));
}

// The model's own token limit, as sentence-transformers derives it: the
// max_seq_length of sentence_bert_config.json, else the tokenizer's
// model_max_length capped at max_position_embeddings.
int64_t model_max_length(const detail::SentenceTransformerLayout& layout, const BertConfig& config) {
  if (layout.max_seq_length) {
    if (*layout.max_seq_length > config.max_position_embeddings) {
      log::warning("SentenceEncoder::load",
                   fmt::format("{}: max_seq_length {} exceeds max_position_embeddings {}; truncating at {}",
                               (layout.transformer_dir / "sentence_bert_config.json").string(),
                               *layout.max_seq_length, config.max_position_embeddings,
                               config.max_position_embeddings));
      return config.max_position_embeddings;
    }
    return *layout.max_seq_length;
  }
  const std::optional<json> tokenizer_config = read_optional_json(layout.transformer_dir / "tokenizer_config.json");
  if (tokenizer_config && tokenizer_config->is_object()) {
    const json limit = tokenizer_config->value("model_max_length", json());
    // transformers writes a huge float (1e30) when the tokenizer has no limit.
    if (limit.is_number() && limit.get<double>() >= 2 && limit.get<double>() < config.max_position_embeddings) {
      return static_cast<int64_t>(limit.get<double>());
    }
  }
  return config.max_position_embeddings;
}

std::string ascii_lowercase(std::string_view text) {
  std::string lowered(text);
  for (char& c : lowered) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lowered;
}

std::string shape_string(const at::Tensor& tensor) {
  if (!tensor.defined()) return "undefined";
  std::string text = "[";
  for (int64_t d = 0; d < tensor.dim(); ++d) text += (d ? ", " : "") + std::to_string(tensor.size(d));
  return text + "]";
}

// Pooling of token embeddings [B, T, H] under mask [B, T] (int64, 1 for real
// tokens) into [B, D], following sentence-transformers' Pooling._forward_padded.
at::Tensor pool_tokens(const std::vector<PoolingMode>& modes, bool normalize, const at::Tensor& hidden,
                       const at::Tensor& mask) {
  const int64_t B = hidden.size(0);
  const int64_t T = hidden.size(1);
  const int64_t H = hidden.size(2);
  const at::Tensor mask_f = mask.unsqueeze(-1).to(hidden.scalar_type());  // [B, T, 1]
  // Index of each row's first real token; 0 for right padding.
  const at::Tensor first_real = mask.to(at::kInt).argmax(1);

  std::vector<at::Tensor> pooled;
  for (PoolingMode mode : modes) {
    switch (mode) {
      case PoolingMode::cls: {
        at::Tensor index = first_real.to(at::kLong).view({B, 1, 1}).expand({B, 1, H});
        pooled.push_back(hidden.gather(1, index).squeeze(1));
        break;
      }
      case PoolingMode::max:
        pooled.push_back(hidden.masked_fill(mask_f.eq(0), -std::numeric_limits<float>::infinity()).amax(1));
        break;
      case PoolingMode::mean:
      case PoolingMode::mean_sqrt_len_tokens: {
        at::Tensor sum = (hidden * mask_f).sum(1);
        at::Tensor count = mask_f.sum(1).clamp_min(1e-9);
        pooled.push_back(mode == PoolingMode::mean ? sum / count : sum / count.sqrt());
        break;
      }
      case PoolingMode::weightedmean: {
        // Position weights 1, 2, ... counted from the first real token.
        at::Tensor weights = at::arange(1, T + 1, hidden.options()).view({1, T, 1}) -
                             first_real.to(hidden.scalar_type()).view({B, 1, 1});
        at::Tensor weighted_mask = mask_f * weights;
        pooled.push_back((hidden * weighted_mask).sum(1) / weighted_mask.sum(1).clamp_min(1e-9));
        break;
      }
      case PoolingMode::lasttoken: {
        auto [values, indices] = mask.flip(1).max(1);
        indices = at::where(values.eq(0), at::full_like(indices, T - 1), indices);
        at::Tensor index = (T - 1 - indices).view({B, 1, 1}).expand({B, 1, H});
        pooled.push_back((hidden * mask_f).gather(1, index).squeeze(1));
        break;
      }
    }
  }
  at::Tensor embeddings = pooled.size() == 1 ? pooled.front() : at::cat(pooled, -1);
  if (normalize) {
    // torch.nn.functional.normalize(p=2, dim=-1): divide by max(norm, 1e-12).
    embeddings = embeddings / embeddings.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
  }
  return embeddings;
}

}  // namespace

SentenceEncoder::SentenceEncoder(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

SentenceEncoder SentenceEncoder::load(const std::filesystem::path& path, const SentenceEncoderOptions& options) {
  if (options.batch_size <= 0) {
    throw ConfigError(fmt::format("SentenceEncoderOptions.batch_size must be positive, found {}", options.batch_size));
  }
  if (options.max_length < 0 || options.max_length == 1) {
    throw ConfigError(fmt::format("SentenceEncoderOptions.max_length must be 0 (the model's own limit) or at least "
                                  "2 ([CLS] and [SEP]), found {}",
                                  options.max_length));
  }
  if (!std::filesystem::is_directory(path)) {
    throw IOError(fmt::format("{}: not a directory; SentenceEncoder loads a Hugging Face model folder with "
                              "config.json and model.safetensors",
                              path.string()));
  }

  auto impl = std::make_shared<Impl>();
  impl->source = path;
  impl->batch_size = options.batch_size;
  impl->layout = detail::read_sentence_transformer_layout(path);
  const std::filesystem::path& transformer_dir = impl->layout.transformer_dir;
  impl->config = BertConfig::from_hf_config(transformer_dir / "config.json");

  impl->max_length = options.max_length > 0 ? options.max_length : model_max_length(impl->layout, impl->config);
  if (impl->max_length > impl->config.max_position_embeddings) {
    throw ConfigError(fmt::format("SentenceEncoderOptions.max_length {} exceeds max_position_embeddings {} of {}",
                                  impl->max_length, impl->config.max_position_embeddings,
                                  (transformer_dir / "config.json").string()));
  }

  impl->tokenizer = load_tokenizer(transformer_dir, impl->max_length);
  if (!impl->tokenizer->cls_id() || !impl->tokenizer->sep_id()) {
    throw ModelError(fmt::format("{}: the vocabulary has no [CLS] or no [SEP] token, which BERT inputs need",
                                 transformer_dir.string()));
  }
  if (impl->tokenizer->vocab_size() > static_cast<std::size_t>(impl->config.vocab_size)) {
    throw ModelError(fmt::format("{}: the tokenizer has {} tokens but config.json's vocab_size is {}",
                                 transformer_dir.string(), impl->tokenizer->vocab_size(), impl->config.vocab_size));
  }
  impl->pad_id = impl->tokenizer->pad_id().value_or(0);
  // NOTE: do_lower_case over a tokenizer that keeps case lowercases ASCII
  // letters only; sentence-transformers applies Unicode lowercasing.
  impl->lowercase_input = impl->layout.do_lower_case && !impl->tokenizer->options().lowercase;

  impl->weights = detail::load_bert_weights(transformer_dir, impl->config);
  return SentenceEncoder(std::move(impl));
}

const BertConfig& SentenceEncoder::config() const { return impl_->config; }
const text::WordPieceTokenizer& SentenceEncoder::tokenizer() const { return *impl_->tokenizer; }
const std::filesystem::path& SentenceEncoder::source() const { return impl_->source; }
int64_t SentenceEncoder::max_length() const { return impl_->max_length; }
int64_t SentenceEncoder::batch_size() const { return impl_->batch_size; }
const std::vector<PoolingMode>& SentenceEncoder::pooling_modes() const { return impl_->layout.pooling_modes; }
bool SentenceEncoder::normalizes() const { return impl_->layout.normalize; }

int64_t SentenceEncoder::dimension() const {
  return impl_->config.hidden_size * static_cast<int64_t>(impl_->layout.pooling_modes.size());
}

std::vector<int32_t> SentenceEncoder::tokenize(std::string_view sentence) const {
  if (impl_->lowercase_input) {
    return impl_->tokenizer->encode(ascii_lowercase(sentence), /*add_special=*/true, /*parse_special=*/true);
  }
  return impl_->tokenizer->encode(sentence, /*add_special=*/true, /*parse_special=*/true);
}

at::Tensor SentenceEncoder::encode(const std::vector<std::string>& sentences) const {
  const int64_t N = static_cast<int64_t>(sentences.size());
  at::Tensor embeddings;
  {
    c10::InferenceMode guard;
    std::vector<std::vector<int32_t>> ids;
    ids.reserve(sentences.size());
    for (const std::string& sentence : sentences) ids.push_back(tokenize(sentence));

    // Longest first, so each batch pads to a similar length.
    std::vector<int64_t> order(sentences.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ids[a].size() > ids[b].size(); });

    embeddings = at::empty({N, dimension()}, at::kFloat);
    for (int64_t start = 0; start < N; start += impl_->batch_size) {
      const int64_t B = std::min(impl_->batch_size, N - start);
      const int64_t T = static_cast<int64_t>(ids[order[start]].size());
      at::Tensor input_ids = at::full({B, T}, impl_->pad_id, at::kLong);
      at::Tensor mask = at::zeros({B, T}, at::kLong);
      at::Tensor rows = at::empty({B}, at::kLong);
      auto input_access = input_ids.accessor<int64_t, 2>();
      auto mask_access = mask.accessor<int64_t, 2>();
      auto rows_access = rows.accessor<int64_t, 1>();
      for (int64_t b = 0; b < B; ++b) {
        const std::vector<int32_t>& sentence_ids = ids[order[start + b]];
        for (std::size_t t = 0; t < sentence_ids.size(); ++t) {
          input_access[b][static_cast<int64_t>(t)] = sentence_ids[t];
          mask_access[b][static_cast<int64_t>(t)] = 1;
        }
        rows_access[b] = order[start + b];
      }
      at::Tensor hidden = detail::bert_forward(impl_->config, impl_->weights, input_ids, mask);
      embeddings.index_copy_(0, rows, pool_tokens(impl_->layout.pooling_modes, impl_->layout.normalize, hidden, mask));
    }
  }
  // A copy made outside inference mode is an ordinary tensor, which callers
  // may modify in place or use in autograd.
  return embeddings.clone();
}

at::Tensor SentenceEncoder::token_embeddings(const at::Tensor& input_ids, const at::Tensor& attention_mask) const {
  if (!input_ids.defined() || input_ids.dim() != 2 || input_ids.size(1) == 0 ||
      at::isFloatingType(input_ids.scalar_type())) {
    throw ConfigError(fmt::format("SentenceEncoder.token_embeddings: input_ids must be an integer tensor [B, T] with "
                                  "T >= 1, found {} of {}",
                                  shape_string(input_ids), input_ids.defined() ? c10::toString(input_ids.scalar_type()) : "none"));
  }
  if (!attention_mask.defined() || !attention_mask.sizes().equals(input_ids.sizes())) {
    throw ConfigError(fmt::format("SentenceEncoder.token_embeddings: attention_mask must have the shape of input_ids "
                                  "{}, found {}",
                                  shape_string(input_ids), shape_string(attention_mask)));
  }
  const int64_t T = input_ids.size(1);
  if (T > impl_->config.max_position_embeddings) {
    throw ConfigError(fmt::format("SentenceEncoder.token_embeddings: {} tokens exceed max_position_embeddings {}", T,
                                  impl_->config.max_position_embeddings));
  }
  at::Tensor hidden;
  {
    c10::InferenceMode guard;
    const at::Tensor ids = input_ids.to(at::kLong);
    if (ids.numel() > 0) {
      const int64_t low = ids.min().item<int64_t>();
      const int64_t high = ids.max().item<int64_t>();
      if (low < 0 || high >= impl_->config.vocab_size) {
        throw ConfigError(fmt::format("SentenceEncoder.token_embeddings: input_ids range from {} to {}, outside "
                                      "[0, {}) of the vocabulary",
                                      low, high, impl_->config.vocab_size));
      }
    }
    hidden = detail::bert_forward(impl_->config, impl_->weights, ids, attention_mask.to(at::kLong));
  }
  return hidden.clone();
}

at::Tensor SentenceEncoder::pool(const at::Tensor& token_embeddings, const at::Tensor& attention_mask) const {
  if (!token_embeddings.defined() || token_embeddings.dim() != 3 ||
      token_embeddings.size(2) != impl_->config.hidden_size || !at::isFloatingType(token_embeddings.scalar_type())) {
    throw ConfigError(fmt::format("SentenceEncoder.pool: token_embeddings must be a floating tensor [B, T, {}], "
                                  "found {}",
                                  impl_->config.hidden_size, shape_string(token_embeddings)));
  }
  if (!attention_mask.defined() || attention_mask.dim() != 2 || attention_mask.size(0) != token_embeddings.size(0) ||
      attention_mask.size(1) != token_embeddings.size(1)) {
    throw ConfigError(fmt::format("SentenceEncoder.pool: attention_mask must be [{}, {}], found {}",
                                  token_embeddings.size(0), token_embeddings.size(1), shape_string(attention_mask)));
  }
  at::Tensor pooled;
  {
    c10::InferenceMode guard;
    pooled = pool_tokens(impl_->layout.pooling_modes, impl_->layout.normalize, token_embeddings,
                         attention_mask.ne(0).to(at::kLong));
  }
  return pooled.clone();
}

double cosine(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined() || !b.defined() || a.dim() != 1 || !a.sizes().equals(b.sizes())) {
    throw ConfigError(fmt::format("cosine: expected two 1-D tensors of equal length, found {} and {}", shape_string(a),
                                  shape_string(b)));
  }
  c10::InferenceMode guard;
  const at::Tensor x = a.to(at::kDouble);
  const at::Tensor y = b.to(at::kDouble);
  const double norms = x.norm().item<double>() * y.norm().item<double>();
  return norms > 0.0 ? x.dot(y).item<double>() / norms : 0.0;
}

at::Tensor cosine_similarity_matrix(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined() || !b.defined() || a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(1)) {
    throw ConfigError(fmt::format("cosine_similarity_matrix: expected [N, D] and [M, D] tensors, found {} and {}",
                                  shape_string(a), shape_string(b)));
  }
  at::Tensor similarities;
  {
    c10::InferenceMode guard;
    const at::Tensor x = a / a.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
    const at::Tensor y = b / b.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
    similarities = x.matmul(y.t());
  }
  return similarities.clone();
}

}  // namespace medfair
