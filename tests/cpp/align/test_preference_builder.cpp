// PreferenceBuilder with SmolLM2 as target, MiniLM as encoder and file or
// self teachers, on medfair's own pain-management vignettes. The file
// teachers' references are written by these tests.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "medfair/align/preference_builder.hpp"
#include "medfair/align/teacher.hpp"
#include "medfair/error.hpp"
#include "medfair/io/jsonl.hpp"
#include "medfair/prompts/loaders.hpp"
#include "test_support.hpp"

using namespace medfair::align;
using medfair::CausalLM;
using medfair::SentenceEncoder;

namespace {

const CausalLM& smollm2() {
  static const CausalLM model = CausalLM::load(medfair::test::smollm2_gguf());
  return model;
}

const SentenceEncoder& minilm() {
  static const SentenceEncoder encoder = SentenceEncoder::load(medfair::test::minilm_dir());
  return encoder;
}

medfair::prompts::Task pain_task() {
  return medfair::prompts::load_generic(std::filesystem::path(MEDFAIR_SOURCE_DIR) / "python" / "medfair" / "data" /
                                        "vignettes" / "pain_management.jsonl");
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::stringstream buffer;
  buffer << stream.rdbuf();
  return buffer.str();
}

std::filesystem::path write_references(const std::filesystem::path& dir, const std::vector<std::string>& ids) {
  const auto path = dir / "references.jsonl";
  std::ofstream stream(path);
  for (const std::string& id : ids) {
    stream << R"({"vignette_id": ")" << id
           << R"(", "reference": "Yes. Give intravenous analgesia now at a standard dose and reassess the pain in 30 minutes."})"
           << "\n";
  }
  return path;
}

PreferenceOptions small_options(const std::vector<std::string>& vignettes) {
  PreferenceOptions options;
  options.vignettes = vignettes;
  options.sampling.max_new_tokens = 16;
  options.candidates = 3;
  options.prompts_per_step = 2;
  options.draws_per_vignette = 2;
  return options;
}

std::vector<std::string> first_ids(const medfair::prompts::Task& task, size_t n) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < n && i < task.vignettes.size(); ++i) ids.push_back(task.vignettes[i].id);
  return ids;
}

}  // namespace

TEST_CASE("builder ranks by similarity and resumes") {
  const auto dir = medfair::test::scratch_dir("builder_rank");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const medfair::prompts::Task task = pain_task();
  const auto ids = first_ids(task, 2);
  FileTeacher teacher(write_references(dir, ids));
  auto cache = std::make_shared<GenerationCache>(dir / "cache.sqlite");
  PreferenceBuilder builder(smollm2(), teacher, minilm(), small_options(ids), cache);

  const auto out = dir / "prefs.jsonl";
  std::vector<std::pair<size_t, size_t>> progress;
  PreferenceResult first = builder.run(task, out, [&](size_t done, size_t total) { progress.emplace_back(done, total); });
  CHECK(first.prompts == 4);
  CHECK(first.resumed == 0);
  CHECK(first.records.size() + first.dropped_identical + first.dropped_margin + first.dropped_format == 4);
  REQUIRE_FALSE(first.records.empty());
  REQUIRE(progress.size() == 2);
  CHECK(progress.back() == std::make_pair<size_t, size_t>(4, 4));
  CHECK(cache->size() == 12);  // 4 prompts x 3 candidates

  // The stored similarities are the encoder's, and the pair is best versus worst.
  for (const auto& record : first.records) {
    const std::vector<std::string> candidates = record["candidates"];
    const std::vector<double> similarities = record["similarities"];
    REQUIRE(candidates.size() == 3);
    std::vector<std::string> sentences = {record["reference"].get<std::string>()};
    sentences.insert(sentences.end(), candidates.begin(), candidates.end());
    at::Tensor embeddings = minilm().encode(sentences);
    for (size_t j = 0; j < 3; ++j) {
      CHECK(similarities[j] == Approx(medfair::cosine(embeddings[0], embeddings[j + 1])).margin(1e-6));
    }
    const double best = *std::max_element(similarities.begin(), similarities.end());
    const double worst = *std::min_element(similarities.begin(), similarities.end());
    CHECK(record["chosen_similarity"].get<double>() == Approx(best));
    CHECK(record["rejected_similarity"].get<double>() == Approx(worst));
    CHECK(record["chosen"] == candidates[record["chosen_index"].get<size_t>()]);
    CHECK(record["rejected"] == candidates[record["rejected_index"].get<size_t>()]);
    CHECK(record["prompt"].get<std::string>().find("<|im_start|>assistant\n") != std::string::npos);
    CHECK(record["teacher"] == "file");
    CHECK(record["target_sha256"].get<std::string>().size() == 64);
    CHECK(record["attributes"].contains("race"));
  }
  const std::string written = read_text(out);

  // A second run keeps every record and generates nothing.
  const size_t hits_before = cache->hits();
  PreferenceResult second = builder.run(task, out);
  CHECK(second.resumed == first.records.size());
  CHECK(read_text(out) == written);
  CHECK(cache->hits() - hits_before == 3 * (4 - first.records.size()));

  // A torn last line is dropped and its record rebuilt from the cache.
  {
    std::string text = written;
    size_t last = text.rfind('\n', text.size() - 2);
    std::string torn = last == std::string::npos ? text.substr(0, text.size() / 2) : text.substr(0, last + 40);
    std::ofstream(out, std::ios::binary | std::ios::trunc) << torn;
  }
  PreferenceResult repaired = builder.run(task, out);
  CHECK(read_text(out) == written);
  CHECK(repaired.records.size() == first.records.size());

  // A record of a prompt that is not planned is removed and not counted.
  {
    nlohmann::ordered_json stray = first.records.front();
    stray["prompt_id"] = "not-planned";
    std::ofstream(out, std::ios::binary | std::ios::app) << stray.dump() << "\n";
  }
  PreferenceResult cleaned = builder.run(task, out);
  CHECK(cleaned.resumed == first.records.size());
  CHECK(read_text(out) == written);

  // Other settings on the same file are rejected.
  PreferenceOptions other = small_options(ids);
  other.seed = 99;
  PreferenceBuilder different(smollm2(), teacher, minilm(), other, cache);
  CHECK_THROWS_WITH(different.run(task, out), Catch::Contains("built with other settings"));
}

TEST_CASE("builder reference pairing conversational") {
  const auto dir = medfair::test::scratch_dir("builder_reference");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const medfair::prompts::Task task = pain_task();
  const auto ids = first_ids(task, 1);
  FileTeacher teacher(write_references(dir, ids));
  PreferenceOptions options = small_options(ids);
  options.pairing = Pairing::reference;
  options.format = OutputFormat::conversational;
  options.draws_per_vignette = 1;
  PreferenceBuilder builder(smollm2(), teacher, minilm(), options);
  PreferenceResult result = builder.run(task, dir / "prefs.jsonl");
  REQUIRE(result.records.size() == 1);
  const auto& record = result.records[0];
  REQUIRE(record["prompt"].is_array());
  CHECK(record["prompt"].back()["role"] == "user");
  CHECK(record["chosen"][0]["role"] == "assistant");
  CHECK(record["chosen"][0]["content"] == record["reference"]);
  CHECK(record["chosen_index"] == -1);
  CHECK(record["chosen_similarity"].get<double>() == Approx(1.0));
}

TEST_CASE("builder self teacher answers neutrally") {
  const auto dir = medfair::test::scratch_dir("builder_self");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const medfair::prompts::Task task = pain_task();
  const auto ids = first_ids(task, 1);
  medfair::SamplingOptions greedy;
  greedy.max_new_tokens = 16;
  LocalTeacher teacher(smollm2(), greedy, nullptr, {}, /*is_self=*/true);
  CHECK(teacher.kind() == "self");
  PreferenceOptions options = small_options(ids);
  options.drop_identical = false;
  PreferenceBuilder builder(smollm2(), teacher, minilm(), options);
  CHECK(teacher.model_id() == builder.target_id());
  PreferenceResult result = builder.run(task, dir / "prefs.jsonl");
  REQUIRE(result.records.size() == 2);
  // Both draws share the one neutral reference: the greedy answer to the
  // vignette without protected attributes.
  CHECK(result.records[0]["reference"] == result.records[1]["reference"]);
  medfair::prompts::PromptModifier modifier;
  auto neutral = modifier.neutral(task);
  const auto& conversation = neutral.at(0).stages.at(0).conversation;
  auto expected = medfair::generate(smollm2(), {smollm2().encode_prompt(smollm2().apply_chat_template(conversation))},
                                    greedy);
  CHECK(result.records[0]["reference"] == expected[0].text);
  CHECK(result.records[0]["teacher_sha256"] == builder.target_id());
}

TEST_CASE("builder rejects invalid options") {
  const medfair::prompts::Task task = pain_task();
  const auto dir = medfair::test::scratch_dir("builder_options");
  FileTeacher teacher(write_references(dir, first_ids(task, 1)));
  PreferenceOptions options;
  options.candidates = 1;
  CHECK_THROWS_WITH(PreferenceBuilder(smollm2(), teacher, minilm(), options),
                    Catch::Contains("candidates must be at least 2"));
  options = {};
  options.vignettes = {"no-such-vignette"};
  PreferenceBuilder builder(smollm2(), teacher, minilm(), options);
  CHECK_THROWS_WITH(builder.plan(task), Catch::Contains("no-such-vignette"));
  CHECK_THROWS_WITH(parse_pairing("best"), Catch::Contains("use ranked or reference"));
  CHECK_THROWS_WITH(parse_teacher_sees("both"), Catch::Contains("use neutral or modified"));
  CHECK_THROWS_WITH(parse_output_format("chat"), Catch::Contains("use plain or conversational"));
}

TEST_CASE("file teacher lookup and errors") {
  const auto dir = medfair::test::scratch_dir("file_teacher");
  const auto path = dir / "refs.jsonl";
  std::ofstream(path) << R"({"vignette_id": "a", "reference": "general answer"})" "\n"
                      << R"({"vignette_id": "a", "prompt": "specific question", "reference": "specific answer"})" "\n";
  FileTeacher teacher(path);
  CHECK(teacher.size() == 2);
  CHECK(teacher.model_id().size() == 64);
  std::vector<std::string> answers = teacher.answer({{"a", {{"user", "specific question"}}, 0},
                                                     {"a", {{"user", "another question"}}, 0}});
  CHECK(answers == std::vector<std::string>{"specific answer", "general answer"});
  CHECK_THROWS_WITH(teacher.answer({{"b", {{"user", "x"}}, 0}}),
                    Catch::Contains("has no reference for vignette \"b\""));

  std::ofstream(dir / "missing.jsonl") << R"({"vignette_id": "a"})" "\n";
  CHECK_THROWS_WITH(FileTeacher(dir / "missing.jsonl"), Catch::Contains("missing.jsonl:1: the field \"reference\" is missing"));
  std::ofstream(dir / "typed.jsonl") << R"({"vignette_id": "a", "reference": 3})" "\n";
  CHECK_THROWS_WITH(FileTeacher(dir / "typed.jsonl"), Catch::Contains("must be a string, found number"));
  std::ofstream(dir / "twice.jsonl") << R"({"vignette_id": "a", "reference": "x"})" "\n"
                                     << R"({"vignette_id": "a", "reference": "y"})" "\n";
  CHECK_THROWS_WITH(FileTeacher(dir / "twice.jsonl"), Catch::Contains("twice.jsonl:2: a second reference"));
  std::ofstream(dir / "broken.jsonl") << "{\"vignette_id\": \n";
  CHECK_THROWS_AS(FileTeacher(dir / "broken.jsonl"), medfair::FormatError);
  CHECK_THROWS_WITH(FileTeacher(dir / "absent.jsonl"), Catch::Contains("does not exist"));
}

TEST_CASE("answers_in_format cases") {
  medfair::prompts::StagePrompt stage;
  stage.answer_prefix = "Answer:";
  stage.options = {medfair::prompts::make_option("Yes"), medfair::prompts::make_option("No")};
  CHECK(answers_in_format("Yes, I would give morphine.", stage));
  CHECK(answers_in_format("  no.", stage));
  CHECK(answers_in_format("**Yes** because the pain is severe", stage));
  CHECK(answers_in_format("The pain is severe.\nAnswer: Yes", stage));
  CHECK(answers_in_format("The pain is severe. answer: no", stage));
  CHECK_FALSE(answers_in_format("Yesterday the patient was fine.", stage));
  CHECK_FALSE(answers_in_format("Nobody knows.", stage));
  CHECK_FALSE(answers_in_format("I would consider the options carefully.", stage));
  CHECK_FALSE(answers_in_format("Answer: maybe", stage));
}
