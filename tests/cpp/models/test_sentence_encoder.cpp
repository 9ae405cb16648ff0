// SentenceEncoder on the real all-MiniLM-L6-v2 folder, on tiny BERT folders
// the tests write themselves, and the errors for bad folders and inputs.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "medfair/error.hpp"
#include "medfair/io/safetensors.hpp"
#include "medfair/models/sentence_encoder.hpp"
#include "medfair/text/tokenizer.hpp"
#include "test_support.hpp"

using Catch::Matchers::Contains;
using medfair::PoolingMode;
using medfair::SentenceEncoder;
using nlohmann::json;

namespace {

const SentenceEncoder& minilm() {
  static const SentenceEncoder encoder = SentenceEncoder::load(medfair::test::minilm_dir());
  return encoder;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// A BERT folder small enough to write by hand: hidden size 8, one layer of two
// heads, a 12-token vocabulary and 16 positions.
struct TinyBert {
  static constexpr int64_t kHidden = 8;
  static constexpr int64_t kIntermediate = 16;
  static constexpr int64_t kVocab = 12;
  static constexpr int64_t kPositions = 16;

  std::filesystem::path dir;
  std::map<std::string, at::Tensor> tensors;

  explicit TinyBert(const std::string& name) : dir(medfair::test::scratch_dir(name)) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    json config = {{"model_type", "bert"},          {"vocab_size", kVocab},
                   {"hidden_size", kHidden},        {"num_hidden_layers", 1},
                   {"num_attention_heads", 2},      {"intermediate_size", kIntermediate},
                   {"max_position_embeddings", kPositions}, {"type_vocab_size", 2},
                   {"hidden_act", "gelu"},          {"layer_norm_eps", 1e-12}};
    write_text(dir / "config.json", config.dump(2));
    write_text(dir / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\npatient\nhas\npain\nin\nchest\n.\n");

    at::manual_seed(7);
    const int64_t H = kHidden;
    const int64_t I = kIntermediate;
    tensors["embeddings.word_embeddings.weight"] = at::randn({kVocab, H});
    tensors["embeddings.position_embeddings.weight"] = at::randn({kPositions, H});
    tensors["embeddings.token_type_embeddings.weight"] = at::randn({2, H});
    tensors["embeddings.LayerNorm.weight"] = at::ones({H});
    tensors["embeddings.LayerNorm.bias"] = at::zeros({H});
    const std::string layer = "encoder.layer.0.";
    for (const char* projection : {"query", "key", "value"}) {
      tensors[layer + "attention.self." + projection + ".weight"] = at::randn({H, H}) * 0.3;
      tensors[layer + "attention.self." + projection + ".bias"] = at::randn({H}) * 0.1;
    }
    tensors[layer + "attention.output.dense.weight"] = at::randn({H, H}) * 0.3;
    tensors[layer + "attention.output.dense.bias"] = at::randn({H}) * 0.1;
    tensors[layer + "attention.output.LayerNorm.weight"] = at::ones({H});
    tensors[layer + "attention.output.LayerNorm.bias"] = at::zeros({H});
    tensors[layer + "intermediate.dense.weight"] = at::randn({I, H}) * 0.3;
    tensors[layer + "intermediate.dense.bias"] = at::randn({I}) * 0.1;
    tensors[layer + "output.dense.weight"] = at::randn({H, I}) * 0.3;
    tensors[layer + "output.dense.bias"] = at::randn({H}) * 0.1;
    tensors[layer + "output.LayerNorm.weight"] = at::ones({H});
    tensors[layer + "output.LayerNorm.bias"] = at::zeros({H});
  }

  // Writes model.safetensors with every tensor name prefixed by `prefix`.
  void write_weights(const std::string& prefix = "") const {
    std::vector<medfair::io::SafetensorsTensorData> data;
    for (const auto& [name, tensor] : tensors) {
      const auto* bytes = static_cast<const std::byte*>(tensor.data_ptr());
      data.push_back({prefix + name, medfair::io::SafetensorsDType::F32, tensor.sizes().vec(),
                      std::span<const std::byte>(bytes, tensor.nbytes())});
    }
    medfair::io::write_safetensors(dir / "model.safetensors", data);
  }

  void write_modules(const json& pooling, bool normalize) const {
    json modules = json::array({{{"idx", 0}, {"name", "0"}, {"path", ""},
                                 {"type", "sentence_transformers.models.Transformer"}},
                                {{"idx", 1}, {"name", "1"}, {"path", "1_Pooling"},
                                 {"type", "sentence_transformers.models.Pooling"}}});
    if (normalize) {
      modules.push_back(
          {{"idx", 2}, {"name", "2"}, {"path", "2_Normalize"}, {"type", "sentence_transformers.models.Normalize"}});
    }
    write_text(dir / "modules.json", modules.dump(2));
    write_text(dir / "1_Pooling" / "config.json", pooling.dump(2));
  }
};

}  // namespace

TEST_CASE("minilm config and layout") {
  const SentenceEncoder& encoder = minilm();
  CHECK(encoder.dimension() == 384);
  CHECK(encoder.max_length() == 256);
  CHECK(encoder.batch_size() == 32);
  CHECK(encoder.normalizes());
  REQUIRE(encoder.pooling_modes().size() == 1);
  CHECK(encoder.pooling_modes()[0] == PoolingMode::mean);
  const medfair::BertConfig& config = encoder.config();
  CHECK(config.hidden_size == 384);
  CHECK(config.num_hidden_layers == 6);
  CHECK(config.num_attention_heads == 12);
  CHECK(config.intermediate_size == 1536);
  CHECK(config.vocab_size == 30522);
  CHECK(config.hidden_act == "gelu");
  CHECK(encoder.tokenizer().vocab_size() == 30522);
}

TEST_CASE("minilm embeddings unit norm") {
  const std::vector<std::string> sentences = {
      "The patient reports crushing chest pain.", "", "Pain 7/10, worse at night; no fever.",
      "A 54-year-old man presents after a fall from a ladder with a painful, swollen wrist."};
  at::Tensor embeddings = minilm().encode(sentences);
  REQUIRE(embeddings.sizes().vec() == std::vector<int64_t>{4, 384});
  CHECK(embeddings.scalar_type() == at::kFloat);
  CHECK_FALSE(embeddings.is_inference());
  at::Tensor norms = embeddings.norm(2, {1});
  for (int64_t i = 0; i < 4; ++i) CHECK(norms[i].item<double>() == Approx(1.0).margin(1e-5));
}

TEST_CASE("minilm identical sentences cosine one") {
  const std::string sentence = "She has had a headache for three days.";
  at::Tensor embeddings = minilm().encode({sentence, "An unrelated sentence about the weather.", sentence});
  CHECK(medfair::cosine(embeddings[0], embeddings[2]) == Approx(1.0).margin(1e-6));
  CHECK(medfair::cosine(embeddings[0], embeddings[1]) < 0.5);

  at::Tensor matrix = medfair::cosine_similarity_matrix(embeddings, embeddings);
  REQUIRE(matrix.sizes().vec() == std::vector<int64_t>{3, 3});
  for (int64_t i = 0; i < 3; ++i) CHECK(matrix[i][i].item<double>() == Approx(1.0).margin(1e-5));
  CHECK(matrix[0][1].item<double>() == Approx(medfair::cosine(embeddings[0], embeddings[1])).margin(1e-5));
}

TEST_CASE("minilm paraphrase closer than unrelated") {
  at::Tensor embeddings = minilm().encode({"The patient has severe chest pain.",
                                           "The patient reports intense pain in the chest.",
                                           "Interest rates rose by a quarter point."});
  const double paraphrase = medfair::cosine(embeddings[0], embeddings[1]);
  const double unrelated = medfair::cosine(embeddings[0], embeddings[2]);
  CHECK(paraphrase > 0.7);
  CHECK(unrelated < 0.2);
}

TEST_CASE("minilm batched equals one by one") {
  const std::vector<std::string> sentences = {"Short.", "A somewhat longer sentence about knee pain after running.",
                                              "Medium length sentence here.", "x"};
  at::Tensor batched = minilm().encode(sentences);
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    at::Tensor single = minilm().encode({sentences[i]});
    CHECK((single[0] - batched[static_cast<int64_t>(i)]).abs().max().item<double>() < 1e-5);
  }
}

TEST_CASE("minilm truncates long sentences") {
  std::string sentence;
  for (int i = 0; i < 400; ++i) sentence += "pain ";
  std::vector<int32_t> ids = minilm().tokenize(sentence);
  REQUIRE(ids.size() == 256);
  CHECK(ids.front() == *minilm().tokenizer().cls_id());
  CHECK(ids.back() == *minilm().tokenizer().sep_id());

  // Everything past the limit is cut, so a longer tail changes nothing.
  at::Tensor embeddings = minilm().encode({sentence, sentence + "fracture fracture fracture"});
  CHECK((embeddings[0] - embeddings[1]).abs().max().item<double>() < 1e-6);
}

TEST_CASE("minilm max_length option") {
  medfair::SentenceEncoderOptions options;
  options.max_length = 8;
  options.batch_size = 2;
  SentenceEncoder encoder = SentenceEncoder::load(medfair::test::minilm_dir(), options);
  CHECK(encoder.max_length() == 8);
  CHECK(encoder.tokenize("one two three four five six seven eight nine ten").size() == 8);
  at::Tensor embeddings = encoder.encode({"a b c", "d e f g h i j k l", "m", "n o"});
  CHECK(embeddings.size(0) == 4);
}

TEST_CASE("minilm empty input") {
  at::Tensor embeddings = minilm().encode({});
  CHECK(embeddings.sizes().vec() == std::vector<int64_t>{0, 384});
}

TEST_CASE("tiny bert with prefix and pooling modes") {
  TinyBert bert("encoder_tiny_modes");
  bert.write_weights("bert.");
  bert.write_modules({{"word_embedding_dimension", 8}, {"pooling_mode", {"cls", "max", "mean", "lasttoken"}}}, false);
  SentenceEncoder encoder = SentenceEncoder::load(bert.dir);
  CHECK(encoder.dimension() == 32);
  CHECK_FALSE(encoder.normalizes());
  CHECK(encoder.max_length() == 16);

  std::vector<int32_t> ids = encoder.tokenize("The patient has pain.");
  CHECK(ids == std::vector<int32_t>{2, 5, 6, 7, 8, 11, 3});

  // Right-padded batch: row 1 has 4 real tokens out of 7.
  at::Tensor input_ids = at::tensor({2, 5, 6, 7, 8, 11, 3, 2, 8, 10, 3, 0, 0, 0}, at::kLong).view({2, 7});
  at::Tensor mask = at::tensor({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, at::kLong).view({2, 7});
  at::Tensor hidden = encoder.token_embeddings(input_ids, mask);
  REQUIRE(hidden.sizes().vec() == std::vector<int64_t>{2, 7, 8});
  at::Tensor pooled = encoder.pool(hidden, mask);
  REQUIRE(pooled.sizes().vec() == std::vector<int64_t>{2, 32});

  at::Tensor real = hidden[1].narrow(0, 0, 4);
  CHECK(at::allclose(pooled[1].narrow(0, 0, 8), hidden[1][0]));
  CHECK(at::allclose(pooled[1].narrow(0, 8, 8), std::get<0>(real.max(0))));
  CHECK(at::allclose(pooled[1].narrow(0, 16, 8), real.mean(0), 1e-5, 1e-6));
  CHECK(at::allclose(pooled[1].narrow(0, 24, 8), hidden[1][3]));

  // Padding does not leak into the real tokens' states.
  at::Tensor alone = encoder.token_embeddings(input_ids[1].narrow(0, 0, 4).unsqueeze(0), at::ones({1, 4}, at::kLong));
  CHECK(at::allclose(alone[0], real, 1e-5, 1e-5));

  // encode() tokenizes, batches and pools the same way.
  at::Tensor embeddings = encoder.encode({"pain chest", "The patient has pain."});
  CHECK(at::allclose(embeddings[0], pooled[1], 1e-5, 1e-5));
  CHECK(at::allclose(embeddings[1], pooled[0], 1e-5, 1e-5));
}

TEST_CASE("tiny bert legacy pooling keys") {
  TinyBert bert("encoder_tiny_legacy");
  bert.write_weights();
  bert.write_modules({{"word_embedding_dimension", 8},
                      {"pooling_mode_cls_token", false},
                      {"pooling_mode_mean_tokens", false},
                      {"pooling_mode_max_tokens", false},
                      {"pooling_mode_mean_sqrt_len_tokens", true}},
                     true);
  SentenceEncoder encoder = SentenceEncoder::load(bert.dir);
  REQUIRE(encoder.pooling_modes().size() == 1);
  CHECK(encoder.pooling_modes()[0] == PoolingMode::mean_sqrt_len_tokens);
  CHECK(encoder.normalizes());
  at::Tensor embeddings = encoder.encode({"the patient", "chest pain in the patient"});
  CHECK(embeddings.norm(2, {1}).sub(1).abs().max().item<double>() < 1e-5);
}

TEST_CASE("tiny bert without modules json") {
  TinyBert bert("encoder_tiny_plain");
  bert.write_weights();
  SentenceEncoder encoder = SentenceEncoder::load(bert.dir);
  REQUIRE(encoder.pooling_modes().size() == 1);
  CHECK(encoder.pooling_modes()[0] == PoolingMode::mean);
  CHECK_FALSE(encoder.normalizes());
  CHECK(encoder.dimension() == 8);
}

TEST_CASE("encoder error missing config") {
  const auto dir = medfair::test::scratch_dir("encoder_no_config");
  std::filesystem::remove(dir / "config.json");
  CHECK_THROWS_MATCHES(SentenceEncoder::load(dir), medfair::IOError,
                       Catch::Matchers::Message("cannot open " + (dir / "config.json").string() +
                                                ": check that the model folder contains config.json"));
  CHECK_THROWS_AS(SentenceEncoder::load(dir / "absent"), medfair::IOError);
}

TEST_CASE("encoder error unsupported pooling") {
  TinyBert bert("encoder_bad_pooling");
  bert.write_weights();
  bert.write_modules({{"word_embedding_dimension", 8}, {"pooling_mode", "median"}}, true);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir),
                    Contains("1_Pooling/config.json: pooling_mode \"median\" is not supported; use one of cls, max, "
                             "mean, mean_sqrt_len_tokens, weightedmean, lasttoken"));

  bert.write_modules({{"word_embedding_dimension", 8}, {"pooling_mode_median_tokens", true}}, true);
  CHECK_THROWS_AS(SentenceEncoder::load(bert.dir), medfair::ModelError);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir),
                    Contains("pooling mode \"pooling_mode_median_tokens\" is not supported"));

  bert.write_modules({{"word_embedding_dimension", 16}, {"pooling_mode", "mean"}}, true);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir),
                    Contains("word_embedding_dimension is 16 but the encoder's hidden_size is 8"));
}

TEST_CASE("encoder error unsupported module") {
  TinyBert bert("encoder_bad_module");
  bert.write_weights();
  bert.write_modules({{"pooling_mode", "mean"}}, false);
  json modules = json::parse(std::ifstream(bert.dir / "modules.json"));
  modules.push_back({{"idx", 2}, {"name", "2"}, {"path", "2_Dense"}, {"type", "sentence_transformers.models.Dense"}});
  write_text(bert.dir / "modules.json", modules.dump());
  CHECK_THROWS_AS(SentenceEncoder::load(bert.dir), medfair::ModelError);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir),
                    Contains("modules.json: module 2 of type \"sentence_transformers.models.Dense\" is not supported"));
}

TEST_CASE("encoder error unsupported architecture") {
  TinyBert bert("encoder_bad_arch");
  bert.write_weights();
  json config = json::parse(std::ifstream(bert.dir / "config.json"));
  config["model_type"] = "roberta";
  write_text(bert.dir / "config.json", config.dump());
  CHECK_THROWS_AS(SentenceEncoder::load(bert.dir), medfair::ModelError);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir), Contains("config.json: model_type \"roberta\" is not supported"));

  config["model_type"] = "bert";
  config["hidden_act"] = "swish";
  write_text(bert.dir / "config.json", config.dump());
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir), Contains("hidden_act \"swish\" is not supported"));

  config["hidden_act"] = "gelu";
  config["num_attention_heads"] = 3;
  write_text(bert.dir / "config.json", config.dump());
  CHECK_THROWS_AS(SentenceEncoder::load(bert.dir), medfair::ConfigError);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir),
                    Contains("hidden_size 8 is not a multiple of num_attention_heads 3"));
}

TEST_CASE("encoder error missing tensor") {
  TinyBert bert("encoder_missing_tensor");
  bert.tensors.erase("encoder.layer.0.output.LayerNorm.bias");
  bert.write_weights();
  CHECK_THROWS_AS(SentenceEncoder::load(bert.dir), medfair::ModelError);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir),
                    Contains("missing tensor \"encoder.layer.0.output.LayerNorm.bias\""));
}

TEST_CASE("encoder error shape mismatch") {
  TinyBert bert("encoder_shape_mismatch");
  bert.tensors["encoder.layer.0.intermediate.dense.weight"] = at::zeros({8, 16});
  bert.write_weights("bert.");
  CHECK_THROWS_AS(SentenceEncoder::load(bert.dir), medfair::ModelError);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir),
                    Contains("tensor \"bert.encoder.layer.0.intermediate.dense.weight\" has shape [8, 16], expected "
                             "[16, 8] from config.json"));
}

TEST_CASE("encoder error missing tokenizer") {
  TinyBert bert("encoder_no_tokenizer");
  bert.write_weights();
  std::filesystem::remove(bert.dir / "vocab.txt");
  CHECK_THROWS_AS(SentenceEncoder::load(bert.dir), medfair::IOError);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir), Contains("found neither tokenizer.json nor vocab.txt"));
}

TEST_CASE("encoder error bad options") {
  TinyBert bert("encoder_bad_options");
  bert.write_weights();
  medfair::SentenceEncoderOptions options;
  options.batch_size = 0;
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir, options),
                    Contains("SentenceEncoderOptions.batch_size must be positive, found 0"));
  options.batch_size = 4;
  options.max_length = 17;
  CHECK_THROWS_AS(SentenceEncoder::load(bert.dir, options), medfair::ConfigError);
  CHECK_THROWS_WITH(SentenceEncoder::load(bert.dir, options),
                    Contains("SentenceEncoderOptions.max_length 17 exceeds max_position_embeddings 16"));
}

TEST_CASE("encoder error bad tensors") {
  TinyBert bert("encoder_bad_inputs");
  bert.write_weights();
  SentenceEncoder encoder = SentenceEncoder::load(bert.dir);
  at::Tensor ids = at::ones({2, 3}, at::kLong);
  CHECK_THROWS_WITH(encoder.token_embeddings(ids, at::ones({2, 4}, at::kLong)),
                    Contains("attention_mask must have the shape of input_ids [2, 3], found [2, 4]"));
  CHECK_THROWS_WITH(encoder.token_embeddings(at::ones({3}, at::kLong), at::ones({3}, at::kLong)),
                    Contains("input_ids must be an integer tensor [B, T] with T >= 1, found [3]"));
  CHECK_THROWS_WITH(encoder.token_embeddings(at::full({1, 2}, 12, at::kLong), at::ones({1, 2}, at::kLong)),
                    Contains("input_ids range from 12 to 12, outside [0, 12)"));
  CHECK_THROWS_WITH(encoder.token_embeddings(at::ones({1, 17}, at::kLong), at::ones({1, 17}, at::kLong)),
                    Contains("17 tokens exceed max_position_embeddings 16"));
  CHECK_THROWS_WITH(encoder.pool(at::zeros({2, 3, 4}), at::ones({2, 3})),
                    Contains("token_embeddings must be a floating tensor [B, T, 8], found [2, 3, 4]"));
  CHECK_THROWS_WITH(medfair::cosine(at::zeros({3}), at::zeros({4})),
                    Contains("expected two 1-D tensors of equal length, found [3] and [4]"));
  CHECK_THROWS_WITH(medfair::cosine_similarity_matrix(at::zeros({2, 3}), at::zeros({2, 4})),
                    Contains("expected [N, D] and [M, D] tensors, found [2, 3] and [2, 4]"));
}
