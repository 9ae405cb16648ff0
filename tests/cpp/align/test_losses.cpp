// SimPO and DPO losses against values computed by hand, sequence
// log-probabilities against a direct computation, and the tokenization rules
// on the real SmolLM2-135M-Instruct tokenizer. Parity with TRL is checked in
// tests/python/test_align_trl_parity.py.

#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "medfair/align/losses.hpp"
#include "medfair/align/preference_data.hpp"
#include "medfair/error.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/text/tokenizer.hpp"
#include "test_support.hpp"

using namespace medfair::align;

namespace {

double log_sigmoid(double x) { return -std::log1p(std::exp(-x)); }

const medfair::CausalLM& smollm2() {
  static const medfair::CausalLM model = medfair::CausalLM::load(medfair::test::smollm2_gguf());
  return model;
}

PreferencePair chat_pair(const std::string& question, const std::string& chosen, const std::string& rejected) {
  nlohmann::json record = {{"prompt", {{{"role", "user"}, {"content", question}}}},
                           {"chosen", {{{"role", "assistant"}, {"content", chosen}}}},
                           {"rejected", {{{"role", "assistant"}, {"content", rejected}}}}};
  return render_preference(record, smollm2(), "test record");
}

}  // namespace

TEST_CASE("simpo loss values", "[losses]") {
  at::Tensor chosen = at::tensor(std::vector<double>{-1.0, -2.0});
  at::Tensor rejected = at::tensor(std::vector<double>{-1.5, -1.0});
  PreferenceLoss loss = simpo_loss(chosen, rejected, 2.0, 0.5, 0.0);
  // z = beta * (chosen - rejected - gamma/beta) = 2 * (0.5 - 0.5), 2 * (-1 - 0.5)
  CHECK(loss.losses[0].item<double>() == Approx(-log_sigmoid(0.0)));
  CHECK(loss.losses[1].item<double>() == Approx(-log_sigmoid(-3.0)));
  CHECK(loss.loss.item<double>() == Approx((-log_sigmoid(0.0) - log_sigmoid(-3.0)) / 2));
  CHECK(loss.chosen_rewards[1].item<double>() == Approx(-4.0));
  CHECK(loss.rejected_rewards[0].item<double>() == Approx(-3.0));

  PreferenceLoss smoothed = simpo_loss(chosen, rejected, 2.0, 0.5, 0.25);
  CHECK(smoothed.losses[1].item<double>() == Approx(-0.75 * log_sigmoid(-3.0) - 0.25 * log_sigmoid(3.0)));
}

TEST_CASE("dpo loss values", "[losses]") {
  at::Tensor policy_chosen = at::tensor(std::vector<double>{-10.0});
  at::Tensor policy_rejected = at::tensor(std::vector<double>{-12.0});
  at::Tensor reference_chosen = at::tensor(std::vector<double>{-11.0});
  at::Tensor reference_rejected = at::tensor(std::vector<double>{-11.5});
  PreferenceLoss loss = dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, 0.1, 0.0);
  // beta * ((-10 + 11) - (-12 + 11.5)) = 0.1 * 1.5
  CHECK(loss.loss.item<double>() == Approx(-log_sigmoid(0.15)));
  CHECK(loss.chosen_rewards[0].item<double>() == Approx(0.1));
  CHECK(loss.rejected_rewards[0].item<double>() == Approx(-0.05));
}

TEST_CASE("loss argument errors", "[losses]") {
  at::Tensor values = at::tensor(std::vector<double>{-1.0, -2.0});
  CHECK_THROWS_WITH(simpo_loss(values, values, -1.0, 0.5), Catch::Contains("beta is -1"));
  CHECK_THROWS_WITH(simpo_loss(values, values, 1.0, 0.5, 0.6), Catch::Contains("label_smoothing is 0.6"));
  CHECK_THROWS_WITH(simpo_loss(values, at::tensor(std::vector<double>{-1.0}), 1.0, 0.5), Catch::Contains("must both be [batch]"));
  CHECK_THROWS_AS(dpo_loss(values, values, values, at::tensor(std::vector<double>{1.0}), 0.1), medfair::ConfigError);
}

TEST_CASE("sequence log probs mask and shift", "[losses]") {
  at::Tensor logits = at::randn({2, 4, 5}, at::TensorOptions().dtype(at::kFloat));
  at::Tensor labels =
      at::tensor(std::vector<int64_t>{kIgnoreIndex, kIgnoreIndex, 3, 1, kIgnoreIndex, 2, 4, kIgnoreIndex}).view({2, 4});
  SequenceLogProbs found = sequence_log_probs(logits, labels);
  at::Tensor log_probs = at::log_softmax(logits, -1);
  // Label t is predicted at position t - 1.
  double row0 = log_probs[0][1][3].item<double>() + log_probs[0][2][1].item<double>();
  double row1 = log_probs[1][0][2].item<double>() + log_probs[1][1][4].item<double>();
  CHECK(found.sum[0].item<double>() == Approx(row0));
  CHECK(found.sum[1].item<double>() == Approx(row1));
  CHECK(found.tokens[0].item<int64_t>() == 2);
  CHECK(found.mean[1].item<double>() == Approx(row1 / 2));
  CHECK(sft_loss(found, 1).item<double>() == Approx(-row0 / 2));
}

TEST_CASE("tokenize pair chat record", "[losses]") {
  const medfair::CausalLM& model = smollm2();
  PreferencePair pair = chat_pair("Would you refer this patient? Answer Yes or No.", "Yes. The mass needs a specialist.",
                                  "No. It can wait.");
  CHECK(pair.prompt.find("<|im_start|>assistant\n") != std::string::npos);
  CHECK(pair.chosen.rfind("Yes. The mass needs a specialist.", 0) == 0);
  CHECK(pair.chosen.find("<|im_end|>") != std::string::npos);

  TokenizedPair tokens = tokenize_pair(model, pair, TruncationOptions{});
  const int64_t eos = *model.special_tokens().eos;
  const int64_t bos = *model.special_tokens().bos;
  CHECK(tokens.chosen_ids.front() == bos);
  CHECK(tokens.chosen_ids.back() == eos);
  CHECK(tokens.rejected_ids.back() == eos);
  CHECK(tokens.chosen_prompt_length == tokens.rejected_prompt_length);
  CHECK(std::equal(tokens.chosen_ids.begin(), tokens.chosen_ids.begin() + tokens.chosen_prompt_length,
                   tokens.rejected_ids.begin()));
  CHECK_FALSE(tokens.response_truncated);

  const int64_t prompt_length = tokens.chosen_prompt_length;
  TokenizedPair cut = tokenize_pair(model, pair, TruncationOptions{prompt_length + 2, 0});
  CHECK(cut.response_truncated);
  CHECK(cut.chosen_ids.size() == static_cast<size_t>(prompt_length + 2));
  CHECK_FALSE(cut.empty_response);

  TokenizedPair empty = tokenize_pair(model, pair, TruncationOptions{prompt_length, 0});
  CHECK(empty.empty_response);

  TokenizedPair kept_end = tokenize_pair(model, pair, TruncationOptions{20, 10});
  CHECK(kept_end.prompt_truncated);
  CHECK(kept_end.chosen_prompt_length == 10);
  CHECK(kept_end.chosen_ids.size() == 20u);
  // The prompt keeps its last tokens: the assistant header.
  CHECK(std::equal(tokens.chosen_ids.begin() + (prompt_length - 10), tokens.chosen_ids.begin() + prompt_length,
                   kept_end.chosen_ids.begin()));
}

TEST_CASE("collate pairs layout", "[losses]") {
  TokenizedPair a{{5, 6, 7, 8}, {5, 6, 9}, 2, 2};
  TokenizedPair b{{5, 10}, {5, 11, 12, 13, 14}, 1, 1};
  PreferenceBatch batch = collate_pairs({&a, &b}, 0);
  CHECK(batch.input_ids.sizes() == at::IntArrayRef({4, 5}));
  CHECK(batch.pairs == 2);
  CHECK(batch.tokens == 4 + 2 + 3 + 5);
  // Rows: chosen a, chosen b, rejected a, rejected b.
  CHECK(batch.labels[0][1].item<int64_t>() == kIgnoreIndex);
  CHECK(batch.labels[0][2].item<int64_t>() == 7);
  CHECK(batch.labels[1][1].item<int64_t>() == 10);
  CHECK(batch.labels[3][4].item<int64_t>() == 14);
  CHECK(batch.attention_mask[2][3].item<int64_t>() == 0);
  CHECK_THROWS_AS(collate_pairs({}, 0), medfair::ConfigError);
}

TEST_CASE("render preference errors", "[losses]") {
  const medfair::CausalLM& model = smollm2();
  CHECK_THROWS_WITH(render_preference(nlohmann::json{{"prompt", "Q"}, {"chosen", "A"}}, model, "f.jsonl, line 3"),
                    Catch::Contains("f.jsonl, line 3: the record has no \"rejected\""));
  CHECK_THROWS_WITH(render_preference(nlohmann::json{{"prompt", 1}, {"chosen", "A"}, {"rejected", "B"}}, model, "r"),
                    Catch::Contains("\"prompt\" must be a string or a list of messages, found number"));
  CHECK_THROWS_WITH(
      render_preference(nlohmann::json{{"prompt", nlohmann::json::array()}, {"chosen", "A"}, {"rejected", "B"}}, model,
                        "r"),
      Catch::Contains("\"prompt\" is an empty message list"));
  PreferencePair plain = render_preference(nlohmann::json{{"prompt", "Q: "}, {"chosen", "A"}, {"rejected", "B"}}, model, "r");
  CHECK(plain.prompt == "Q: ");
  CHECK(plain.chosen == "A");
}
