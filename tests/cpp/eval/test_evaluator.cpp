// FairnessEvaluator and OptionScorer on SmolLM2 with real Q-Pain vignettes.

#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include "medfair/error.hpp"
#include "medfair/eval/evaluator.hpp"
#include "medfair/eval/option_scorer.hpp"
#include "medfair/prompts/loaders.hpp"
#include "medfair/prompts/modifier.hpp"
#include "medfair/text/tokenizer.hpp"
#include "test_support.hpp"

using namespace medfair;

namespace {

const CausalLM& smollm2() {
  static const CausalLM model = CausalLM::load(test::smollm2_gguf());
  return model;
}

const prompts::Task& qpain() {
  static const prompts::Task task = prompts::load_qpain(test::shared_data_dir() / "qpain");
  return task;
}

std::vector<prompts::PromptRecord> first_set() {
  std::vector<prompts::PromptRecord> all = prompts::PromptModifier().counterfactuals(qpain());
  std::vector<prompts::PromptRecord> set;
  for (auto& record : all) {
    if (record.set_id == all.front().set_id) set.push_back(record);
  }
  return set;
}

std::vector<const prompts::StagePrompt*> stage_of(const std::vector<prompts::PromptRecord>& set, size_t stage) {
  std::vector<const prompts::StagePrompt*> stages;
  for (const auto& record : set) stages.push_back(&record.stages.at(stage));
  return stages;
}

}  // namespace

TEST_CASE("scorer probabilities are normalised") {
  auto set = first_set();
  REQUIRE(set.size() == 8);
  eval::OptionScorer scorer(smollm2());
  auto scores = scorer.score_set(stage_of(set, 0));
  REQUIRE(scores.size() == 8);
  for (const auto& s : scores) {
    REQUIRE(s.options == std::vector<std::string>{"Yes", "No"});
    CHECK(s.probabilities[0] + s.probabilities[1] == Approx(1.0).epsilon(1e-12));
    CHECK(s.coverage > 0.0);
    CHECK(s.coverage <= 1.0 + 1e-9);
    CHECK(std::exp(s.log_probs[0]) / s.coverage == Approx(s.probabilities[0]).epsilon(1e-9));
  }
}

TEST_CASE("prefix reuse matches scoring each prompt alone") {
  auto set = first_set();
  for (size_t stage = 0; stage < set.front().stages.size(); ++stage) {
    eval::OptionScorer shared(smollm2(), {.batch_size = 4, .reuse_prefix = true});
    eval::OptionScorer alone(smollm2(), {.batch_size = 1, .reuse_prefix = false});
    auto a = shared.score_set(stage_of(set, stage));
    auto b = alone.score_set(stage_of(set, stage));
    for (size_t i = 0; i < a.size(); ++i) {
      for (size_t o = 0; o < a[i].log_probs.size(); ++o) {
        CHECK(std::abs(a[i].log_probs[o] - b[i].log_probs[o]) < 1e-4);
      }
    }
  }
}

TEST_CASE("dose stage continues from the decision stage's caches") {
  auto set = first_set();
  REQUIRE(set.front().stages.size() == 2);
  eval::OptionScorer scorer(smollm2(), {.batch_size = 3, .reuse_prefix = true});
  eval::StageCarry carry;
  scorer.score_set(stage_of(set, 0), &carry);
  REQUIRE(carry.tokens.size() == set.size());
  REQUIRE(carry.chunks.size() == 3);  // 8 variants in batches of 3
  const size_t decision_length = carry.tokens.front().size();
  auto continued = scorer.score_set(stage_of(set, 1), &carry);
  // The carry now contains the dose prompts, which extend the decision prompts.
  REQUIRE(carry.tokens.front().size() > decision_length);
  eval::OptionScorer alone(smollm2(), {.batch_size = 1, .reuse_prefix = false});
  auto fresh = alone.score_set(stage_of(set, 1));
  REQUIRE(continued.size() == fresh.size());
  for (size_t i = 0; i < fresh.size(); ++i) {
    for (size_t o = 0; o < fresh[i].log_probs.size(); ++o) {
      CHECK(std::abs(continued[i].log_probs[o] - fresh[i].log_probs[o]) < 1e-4);
    }
  }
}

TEST_CASE("scorer matches a direct forward pass") {
  // log P(" Yes") from one plain forward over prompt + " Yes".
  auto set = first_set();
  const prompts::StagePrompt& stage = set.front().stages.front();
  eval::OptionScorer scorer(smollm2());
  std::vector<int64_t> prompt = smollm2().encode_prompt(scorer.prompt_text(stage));
  std::vector<int32_t> yes = smollm2().tokenizer().encode(" Yes", false, false);
  REQUIRE(yes.size() == 1);
  at::Tensor logits = smollm2().logits(at::tensor(prompt, at::kLong).unsqueeze(0));
  double direct = at::log_softmax(logits[0][-1].to(at::kDouble), -1)[yes[0]].item<double>();

  // The option "Yes" sums its forms "Yes", " Yes", "yes", " yes"; rescore
  // with " Yes" alone to compare one path.
  prompts::StagePrompt only_space = stage;
  only_space.options = {prompts::AnswerOption{"Yes", "Yes", {" Yes"}}, prompts::AnswerOption{"No", "No", {" No"}}};
  auto scores = scorer.score_set({&only_space});
  CHECK(std::abs(scores[0].log_probs[0] - direct) < 1e-5);
}

TEST_CASE("audit resumes after a torn write") {
  eval::AuditOptions options;
  options.vignettes = {qpain().vignettes[0].id, qpain().vignettes[11].id};
  options.bootstrap_replicates = 200;
  eval::FairnessEvaluator evaluator(smollm2(), options);

  auto full_dir = test::scratch_dir("audit_full");
  std::filesystem::remove_all(full_dir);
  eval::AuditResult full = evaluator.run(qpain(), full_dir);
  REQUIRE(full.records.size() == 2 * 8 * 2);  // 2 vignettes x 8 groups x 2 stages

  // Keep the first set and half a line of the second, as a crash would.
  auto resumed_dir = test::scratch_dir("audit_resumed");
  std::filesystem::remove_all(resumed_dir);
  std::filesystem::create_directories(resumed_dir);
  std::filesystem::copy_file(full_dir / "settings.json", resumed_dir / "settings.json");
  {
    std::ofstream out(resumed_dir / "results.jsonl");
    for (size_t i = 0; i < 16; ++i) out << full.records[i].dump() << "\n";
    out << full.records[16].dump().substr(0, 40);
  }
  eval::AuditResult resumed = evaluator.run(qpain(), resumed_dir);
  CHECK(resumed.resumed_records == 16);
  REQUIRE(resumed.records.size() == full.records.size());
  for (size_t i = 0; i < full.records.size(); ++i) CHECK(resumed.records[i] == full.records[i]);
  CHECK(resumed.summary["questions"] == full.summary["questions"]);
}

TEST_CASE("audit rejects a folder from other settings") {
  eval::AuditOptions options;
  options.vignettes = {qpain().vignettes[0].id};
  options.bootstrap_replicates = 50;
  auto dir = test::scratch_dir("audit_settings");
  std::filesystem::remove_all(dir);
  eval::FairnessEvaluator(smollm2(), options).run(qpain(), dir);
  options.prompts.seed = 7;
  CHECK_THROWS_WITH(eval::FairnessEvaluator(smollm2(), options).run(qpain(), dir),
                    Catch::Contains("contains results of an audit with other settings"));
}

TEST_CASE("audit rejects unknown vignette ids") {
  eval::AuditOptions options;
  options.vignettes = {"no-such-vignette"};
  CHECK_THROWS_AS(eval::FairnessEvaluator(smollm2(), options).run(qpain(), test::scratch_dir("audit_unknown")),
                  ConfigError);
}

namespace {

// A scorer that is never called: summarize() only reads records.
class UnusedScorer : public eval::SetScorer {
 public:
  std::vector<eval::StageScores> score_set(const std::vector<const prompts::StagePrompt*>&,
                                           eval::StageCarry*) const override {
    throw std::logic_error("not used");
  }
  nlohmann::json describe() const override { return {{"model", "none"}}; }
};

nlohmann::json summary_record(const std::string& vignette, const std::string& race,
                              const std::vector<std::string>& options, std::vector<double> probabilities) {
  return {{"question", "decision"}, {"vignette_id", vignette},   {"attributes", {{"race", race}}},
          {"options", options},     {"probabilities", probabilities}, {"predicted", options.front()},
          {"reference", nullptr}};
}

}  // namespace

TEST_CASE("summary splits a stage by option set") {
  std::vector<nlohmann::json> records;
  const std::vector<std::string> likert = {"1", "2", "3"};
  const std::vector<std::string> letters = {"a", "b"};
  for (const char* vignette : {"v1", "v2", "v3"}) {
    for (const char* race : {"asian", "black", "white"}) {
      records.push_back(summary_record(vignette, race, likert, {0.5, 0.3, 0.2}));
    }
  }
  for (const char* race : {"asian", "black", "white"}) {
    records.push_back(summary_record("v4", race, letters, {0.6, 0.4}));
  }
  eval::AuditOptions options;
  options.bootstrap_replicates = 20;
  eval::FairnessEvaluator evaluator(std::make_shared<UnusedScorer>(), options);
  nlohmann::json questions = evaluator.summarize(records, {"race"});
  REQUIRE(questions.size() == 2);
  REQUIRE(questions.contains("decision"));
  REQUIRE(questions.contains("decision [a/b]"));
  CHECK(questions["decision"]["options"] == likert);
  CHECK(questions["decision [a/b]"]["options"] == letters);
}
