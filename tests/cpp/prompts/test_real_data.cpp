// Acceptance tests on the real Q-Pain, nurse triage and Healer files.

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "medfair/prompts/lint.hpp"
#include "medfair/prompts/loaders.hpp"
#include "medfair/prompts/modifier.hpp"
#include "test_support.hpp"

using namespace medfair::prompts;

namespace {

std::filesystem::path data_dir() { return medfair::test::shared_data_dir(); }

bool contains_word(const std::string& text, const std::string& word, bool ignore_case) {
  std::string pattern = "(^|[^A-Za-z])" + word + "([^A-Za-z]|$)";
  auto flags = ignore_case ? std::regex::icase : std::regex::ECMAScript;
  return std::regex_search(text, std::regex(pattern, flags));
}

// Concatenates every message of every stage of a record.
std::string all_text(const PromptRecord& record) {
  std::string text;
  for (const auto& stage : record.stages) {
    for (const auto& message : stage.conversation) text += message.content + "\n";
  }
  return text;
}

}  // namespace

TEST_CASE("qpain loads 55 vignettes", "[prompts][real]") {
  Task task = load_qpain(data_dir() / "qpain");
  REQUIRE(task.vignettes.size() == 55);
  std::map<std::string, int> per_context;
  std::map<std::string, int> answers;
  for (const auto& vignette : task.vignettes) {
    ++per_context[vignette.group];
    ++answers[vignette.reference.at("decision")];
    REQUIRE(vignette.stages.size() == 2);
    CHECK(vignette.stages[1].condition_option == "Yes");
    if (vignette.reference.at("decision") == "Yes") CHECK(vignette.reference.count("dose") == 1);
  }
  CHECK(per_context.size() == 5);
  for (const auto& [context, count] : per_context) CHECK(count == 11);
  CHECK(answers["Yes"] == 50);
  CHECK(answers["No"] == 5);
  CHECK(task.vignette("acute_cancer-01").stages[1].options[0].text == "Low (0.5 mg)");
  CHECK(task.vignette("post_op-01").stages[1].options[1].text == "High (4 weeks)");
}

TEST_CASE("qpain grid gives 440 prompts", "[prompts][real]") {
  Task task = load_qpain(data_dir() / "qpain");
  PromptModifier modifier;
  auto records = modifier.counterfactuals(task);
  REQUIRE(records.size() == 440);
  const auto& catalog = modifier.catalog();

  std::set<std::string> ids;
  for (const auto& record : records) {
    INFO(record.prompt_id);
    CHECK(ids.insert(record.prompt_id).second);
    const std::string* race = find_value(record.attributes, "race");
    const std::string* gender = find_value(record.attributes, "gender");
    REQUIRE(race);
    REQUIRE(gender);
    // The name comes from the right race x gender cell.
    const auto& names = catalog.name_cells().at(*race + "/" + *gender);
    CHECK(std::find(names.begin(), names.end(), record.name) != names.end());
    std::string text = all_text(record);
    CHECK(text.find(record.name) != std::string::npos);
    // No slot is left over.
    CHECK_FALSE(std::regex_search(text, std::regex(R"(\[(race|gender|subject|subjective|possessive)\])")));
    CHECK_FALSE(std::regex_search(text, std::regex(R"(Patient [A-Z]\b)")));
    // Pronouns match the gender.
    const auto& own = catalog.pronouns_for(record.attributes);
    const auto& other = catalog.pronoun_sets().at(*gender == "female" ? "he" : "she");
    for (const auto& field : pronoun_fields()) {
      if (*other.field(field) == *own.field(field)) continue;
      CHECK_FALSE(contains_word(text, *other.field(field), true));
    }
    // The five No-answer vignettes name neither race nor gender.
    const Vignette& vignette = task.vignette(record.vignette_id);
    if (vignette.text.uses(SlotKind::axis, "gender")) CHECK(contains_word(text, catalog.value("gender", *gender).text, false));
    if (vignette.text.uses(SlotKind::axis, "race")) CHECK(contains_word(text, catalog.value("race", *race).text, false));
  }
}

TEST_CASE("qpain neutral has no catalog word", "[prompts][real]") {
  Task task = load_qpain(data_dir() / "qpain");
  PromptModifier modifier;
  auto records = modifier.neutral(task);
  REQUIRE(records.size() == 55);
  auto words = demographic_words(modifier.catalog());
  REQUIRE(words.size() > 50);
  for (const auto& record : records) {
    INFO(record.prompt_id);
    std::string text = all_text(record);
    for (const auto& word : words) {
      bool ignore_case = std::none_of(word.begin(), word.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
      CHECK_FALSE(contains_word(text, word, ignore_case));
    }
    CHECK(record.attributes.empty());
    CHECK(text.find("patient") != std::string::npos);
  }
  // The first vignette starts "The patient is a 62-year-old patient".
  CHECK(records[0].prompt_text().rfind("The patient is a 62-year-old patient with", 0) == 0);
}

TEST_CASE("nurse regroups into 8 cases", "[prompts][real]") {
  Task task = load_nurse(data_dir() / "nurse_bias" / "unconscious_bias_nurses_final.csv");
  std::set<std::string> cases;
  for (const auto& vignette : task.vignettes) {
    INFO(vignette.id);
    cases.insert(vignette.group);
    CHECK(vignette.variants.size() == 8);
    std::set<std::string> labels;
    for (const auto& variant : vignette.variants) labels.insert(assignment_label(variant.attributes));
    CHECK(labels.size() == 8);
  }
  CHECK(cases.size() == 8);
  CHECK(task.vignettes.size() == 24);
  // Likert statements have five numbered options.
  const auto& likert = task.vignette("case1-s1").stages.front().options;
  REQUIRE(likert.size() == 5);
  CHECK(likert[0].id == "1");
  CHECK(likert[4].text == "5. Strongly Agree");
  PromptModifier modifier;
  auto records = modifier.counterfactuals(task);
  CHECK(records.size() == 192);
}

TEST_CASE("healer loads and lint flags pronoun", "[prompts][real]") {
  Task task = load_healer(data_dir() / "healer");
  CHECK(task.vignettes.size() == 2 * 14);
  PromptModifier modifier;
  auto records = modifier.counterfactuals(task);
  CHECK(records.size() == 28 * 8);
  for (const auto& record : records) CHECK(record.prompt_text().find('@') == std::string::npos);

  auto issues = lint_file(data_dir() / "healer" / "ED_cases.csv", AttributeCatalog::builtin());
  bool flagged = false;
  for (const auto& issue : issues) {
    if (issue.code == "demographic-leak" && issue.message.find("\"his\"") != std::string::npos) {
      flagged = true;
      CHECK(issue.line == 2);
      CHECK(issue.severity == Severity::warning);
    }
  }
  CHECK(flagged);
  LintOptions strict;
  strict.strict = true;
  for (const auto& issue : lint_file(data_dir() / "healer" / "ED_cases.csv", AttributeCatalog::builtin(), strict)) {
    CHECK(issue.severity == Severity::error);
  }
}
