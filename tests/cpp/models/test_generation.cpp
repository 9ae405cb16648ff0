// medfair::generate on the real SmolLM2-135M-Instruct GGUF file: greedy
// parity with CausalLM::generate_greedy, seeded sampling that does not depend
// on the batch, stop strings, and the logits processors on small hand-made
// distributions.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "medfair/error.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/models/generation.hpp"
#include "test_support.hpp"

using medfair::CausalLM;
using medfair::FinishReason;
using medfair::Generation;
using medfair::SamplingOptions;

namespace {

const CausalLM& smollm2() {
  static const CausalLM model = CausalLM::load(medfair::test::smollm2_gguf());
  return model;
}

std::vector<int64_t> chat_ids(const std::string& text) {
  const CausalLM& model = smollm2();
  return model.encode_prompt(model.apply_chat_template({{"user", text}}, true));
}

// Questions of different lengths, written for these tests.
const std::vector<std::string> kQuestions = {
    "What is the normal resting heart rate of an adult?",
    "A 60-year-old man has had crushing chest pain for one hour. Name one test to order first.",
    "List two signs of dehydration.",
    "Should a patient with a sprained ankle rest it? Answer yes or no and give one reason.",
};

std::vector<std::vector<int64_t>> question_ids() {
  std::vector<std::vector<int64_t>> ids;
  for (const std::string& question : kQuestions) ids.push_back(chat_ids(question));
  return ids;
}

SamplingOptions sampled(uint64_t seed, int64_t max_new_tokens = 24) {
  SamplingOptions options;
  options.temperature = 0.8;
  options.top_p = 0.9;
  options.max_new_tokens = max_new_tokens;
  options.seed = seed;
  return options;
}

}  // namespace

TEST_CASE("greedy generate equals generate_greedy") {
  SamplingOptions options;
  options.max_new_tokens = 24;
  const auto prompts = question_ids();
  std::vector<Generation> batched = medfair::generate(smollm2(), prompts, options);
  REQUIRE(batched.size() == prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i);
    std::vector<int64_t> expected = smollm2().generate_greedy(prompts[i], options.max_new_tokens);
    CHECK(batched[i].token_ids == expected);
  }
}

TEST_CASE("greedy generate across prefill groups") {
  // Prompts of 1 to 4 joined questions are long enough for the prompt pass
  // to split the batch into several groups, each with its own padding.
  SamplingOptions options;
  options.max_new_tokens = 10;
  std::vector<std::vector<int64_t>> prompts;
  std::string text;
  for (const std::string& question : kQuestions) {
    text += question + " ";
    prompts.push_back(chat_ids(text));
  }
  prompts.push_back(chat_ids(kQuestions[2]));
  std::vector<Generation> batched = medfair::generate(smollm2(), prompts, options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i << " of " << prompts[i].size() << " tokens");
    CHECK(batched[i].token_ids == smollm2().generate_greedy(prompts[i], options.max_new_tokens));
  }
}

TEST_CASE("greedy generate batch equals single") {
  SamplingOptions options;
  options.max_new_tokens = 16;
  const auto prompts = question_ids();
  std::vector<Generation> batched = medfair::generate(smollm2(), prompts, options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i);
    std::vector<Generation> single = medfair::generate(smollm2(), {prompts[i]}, options);
    CHECK(single[0].token_ids == batched[i].token_ids);
    CHECK(single[0].text == batched[i].text);
  }
}

TEST_CASE("sampling same seed same text") {
  const auto prompts = question_ids();
  std::vector<Generation> first = medfair::generate(smollm2(), prompts, sampled(7));
  std::vector<Generation> second = medfair::generate(smollm2(), prompts, sampled(7));
  std::vector<Generation> other = medfair::generate(smollm2(), prompts, sampled(8));
  size_t differing = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    CHECK(first[i].token_ids == second[i].token_ids);
    CHECK(first[i].text == second[i].text);
    if (first[i].token_ids != other[i].token_ids) ++differing;
  }
  CHECK(differing > 0);
}

TEST_CASE("sampling batch equals single with seeds") {
  const auto prompts = question_ids();
  std::vector<uint64_t> seeds = {11, 12, 13, 14};
  SamplingOptions options = sampled(0);
  std::vector<Generation> batched = medfair::generate(smollm2(), prompts, options, seeds);
  options.batch_size = 3;  // a different split into batches
  std::vector<Generation> split = medfair::generate(smollm2(), prompts, options, seeds);
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i);
    std::vector<Generation> single = medfair::generate(smollm2(), {prompts[i]}, options, {seeds[i]});
    CHECK(single[0].token_ids == batched[i].token_ids);
    CHECK(split[i].token_ids == batched[i].token_ids);
  }
}

TEST_CASE("sampling repeated prompt differs per row") {
  const std::vector<int64_t> prompt = chat_ids(kQuestions[2]);
  std::vector<Generation> rows = medfair::generate(smollm2(), {prompt, prompt, prompt}, sampled(3, 32));
  CHECK((rows[0].token_ids != rows[1].token_ids || rows[1].token_ids != rows[2].token_ids));
}

TEST_CASE("top_k one equals greedy") {
  const auto prompts = question_ids();
  SamplingOptions greedy;
  greedy.max_new_tokens = 16;
  SamplingOptions top1 = sampled(5, 16);
  top1.temperature = 1.5;
  top1.top_p = 1.0;
  top1.top_k = 1;
  std::vector<Generation> a = medfair::generate(smollm2(), prompts, greedy);
  std::vector<Generation> b = medfair::generate(smollm2(), prompts, top1);
  for (size_t i = 0; i < prompts.size(); ++i) CHECK(a[i].token_ids == b[i].token_ids);
}

TEST_CASE("stop string cuts the text") {
  SamplingOptions options;
  options.max_new_tokens = 40;
  const std::vector<int64_t> prompt = chat_ids(kQuestions[1]);
  Generation free = medfair::generate(smollm2(), {prompt}, options)[0];
  REQUIRE(free.text.size() > 12);
  // Stop at a piece of the greedy answer, so the stop is known to occur.
  const std::string stop = free.text.substr(8, 4);
  const size_t at = free.text.find(stop);
  options.stop = {stop, "a string the model never writes"};
  Generation cut = medfair::generate(smollm2(), {prompt}, options)[0];
  CHECK(cut.finish_reason == FinishReason::stop);
  CHECK(cut.text == free.text.substr(0, at));
  CHECK(cut.token_ids.size() < free.token_ids.size());
  CHECK(std::equal(cut.token_ids.begin(), cut.token_ids.end(), free.token_ids.begin()));
}

TEST_CASE("finish reasons eos and length") {
  SamplingOptions options;
  options.max_new_tokens = 3;
  Generation short_run = medfair::generate(smollm2(), {chat_ids(kQuestions[0])}, options)[0];
  CHECK(short_run.finish_reason == FinishReason::length);
  CHECK(short_run.token_ids.size() == 3);

  options.max_new_tokens = 200;
  Generation full = medfair::generate(smollm2(), {chat_ids("Reply with the single word: hello")}, options)[0];
  CHECK(full.finish_reason == FinishReason::eos);
  const std::vector<int64_t> eos = medfair::end_of_sequence_ids(smollm2());
  CHECK(std::find(eos.begin(), eos.end(), full.token_ids.back()) != eos.end());
  CHECK(full.text.find("<|im_end|>") == std::string::npos);
}

TEST_CASE("generate rejects invalid options") {
  const std::vector<int64_t> prompt = chat_ids(kQuestions[0]);
  SamplingOptions options;
  options.top_p = 0.0;
  CHECK_THROWS_WITH(medfair::generate(smollm2(), {prompt}, options),
                    Catch::Contains("SamplingOptions.top_p must be in (0, 1]"));
  options = {};
  options.temperature = -1;
  CHECK_THROWS_WITH(medfair::generate(smollm2(), {prompt}, options), Catch::Contains("temperature"));
  options = {};
  options.max_new_tokens = 0;
  CHECK_THROWS_WITH(medfair::generate(smollm2(), {prompt}, options), Catch::Contains("max_new_tokens"));
  options = {};
  options.stop = {""};
  CHECK_THROWS_WITH(medfair::generate(smollm2(), {prompt}, options), Catch::Contains("empty string"));
  options = {};
  CHECK_THROWS_WITH(medfair::generate(smollm2(), {{}}, options), Catch::Contains("prompt 0 has no tokens"));
  CHECK_THROWS_WITH(medfair::generate(smollm2(), {{1, 999999}}, options), Catch::Contains("outside the vocabulary"));
  CHECK_THROWS_WITH(medfair::generate(smollm2(), {prompt}, options, {1, 2}), Catch::Contains("2 seeds given for 1"));
  options.max_new_tokens = 1 << 20;
  CHECK_THROWS_WITH(medfair::generate(smollm2(), {prompt}, options), Catch::Contains("exceeds the model's context"));
}

TEST_CASE("choose_token temperature and top_p frequencies") {
  c10::InferenceMode guard;
  // Probabilities 0.5, 0.3, 0.15, 0.05 as logits.
  const std::vector<double> p = {0.5, 0.3, 0.15, 0.05};
  at::Tensor logits = at::log(at::tensor(p, at::kDouble)).to(at::kFloat);
  std::mt19937_64 generator(1234);
  const int draws = 20000;

  // Temperature 1, no filter: frequencies near p (5 standard errors).
  SamplingOptions plain;
  plain.temperature = 1.0;
  std::map<int64_t, int> counts;
  for (int i = 0; i < draws; ++i) ++counts[medfair::detail::choose_token(logits, {}, plain, generator)];
  for (int64_t id = 0; id < 4; ++id) {
    const double expected = p[id];
    const double tolerance = 5 * std::sqrt(expected * (1 - expected) / draws);
    CHECK(std::abs(counts[id] / double(draws) - expected) < tolerance);
  }

  // top_p = 0.75 keeps {0.5, 0.3}: renormalised to 0.625 and 0.375.
  SamplingOptions nucleus = plain;
  nucleus.top_p = 0.75;
  counts.clear();
  for (int i = 0; i < draws; ++i) ++counts[medfair::detail::choose_token(logits, {}, nucleus, generator)];
  CHECK(counts[2] == 0);
  CHECK(counts[3] == 0);
  CHECK(std::abs(counts[0] / double(draws) - 0.625) < 5 * std::sqrt(0.625 * 0.375 / draws));

  // Temperature 0.5 squares the probabilities before renormalising.
  SamplingOptions sharp = plain;
  sharp.temperature = 0.5;
  counts.clear();
  for (int i = 0; i < draws; ++i) ++counts[medfair::detail::choose_token(logits, {}, sharp, generator)];
  const double squares = 0.25 + 0.09 + 0.0225 + 0.0025;
  const double expected0 = 0.25 / squares;
  CHECK(std::abs(counts[0] / double(draws) - expected0) < 5 * std::sqrt(expected0 * (1 - expected0) / draws));
}

TEST_CASE("choose_token repetition penalty") {
  c10::InferenceMode guard;
  at::Tensor logits = at::tensor(std::vector<float>{2.0f, 1.9f, -1.0f, -1.05f});
  std::mt19937_64 generator(1);
  SamplingOptions options;
  options.repetition_penalty = 1.2;
  // Token 0 seen: 2.0 / 1.2 < 1.9, so token 1 wins.
  CHECK(medfair::detail::choose_token(logits, {0}, options, generator) == 1);
  CHECK(medfair::detail::choose_token(logits, {}, options, generator) == 0);
  // The penalty must not change the caller's logits.
  CHECK(logits[0].item<float>() == 2.0f);
  // A seen negative logit is multiplied: -1.0 * 1.2 < -1.05.
  at::Tensor negative = at::tensor(std::vector<float>{-1.0f, -1.05f});
  CHECK(medfair::detail::choose_token(negative, {0}, options, generator) == 1);
}

TEST_CASE("choose_token top_p on a flat distribution") {
  c10::InferenceMode guard;
  // 1000 equally likely tokens: the 256 most likely hold 0.256 < top_p, so the
  // nucleus comes from the full sort, whose stable order keeps ids 0..499.
  at::Tensor logits = at::zeros({1000}, at::kFloat);
  SamplingOptions options;
  options.temperature = 1.0;
  options.top_p = 0.5;
  std::mt19937_64 generator(7);
  int64_t highest = 0;
  int64_t above_256 = 0;
  for (int i = 0; i < 4000; ++i) {
    int64_t token = medfair::detail::choose_token(logits, {}, options, generator);
    highest = std::max(highest, token);
    if (token >= 256) ++above_256;
  }
  CHECK(highest < 500);
  CHECK(highest > 450);
  CHECK(above_256 > 1500);  // about 244/500 of the draws
}
