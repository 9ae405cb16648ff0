// Template parsing and rendering in the three slot syntaxes.

#include <fstream>

#include <catch2/catch.hpp>

#include "medfair/error.hpp"
#include "medfair/prompts/lint.hpp"
#include "medfair/prompts/template.hpp"
#include "medfair/prompts/catalog.hpp"
#include "test_support.hpp"

using namespace medfair::prompts;

namespace {
const AttributeCatalog& catalog() { return AttributeCatalog::builtin(); }
}  // namespace

TEST_CASE("native slots parse", "[prompts][template]") {
  auto tmpl = Template::parse("{Name} is a {age}-year-old {race} {gender.adjective}; {pronoun.possessive} {{x}}",
                              TemplateSyntax::native);
  auto slots = tmpl.slots();
  REQUIRE(slots.size() == 5);
  CHECK(slots[0].kind == SlotKind::name);
  CHECK(slots[0].capitalize);
  CHECK(slots[1].key == "age");
  CHECK(slots[3].form == "adjective");
  CHECK(slots[4].kind == SlotKind::pronoun);
  CHECK(slots[4].native() == "{pronoun.possessive}");
  CHECK(tmpl.check(catalog()).empty());
  std::string out = render(tmpl, catalog(), {{"race", "asian"}, {"gender", "female"}, {"age", "40"}}, "mei");
  CHECK(out == "Mei is a 40-year-old Asian female; her {x}");
}

TEST_CASE("qpain slots parse", "[prompts][template]") {
  auto tmpl = Template::parse("Patient D is a 30-year-old [race] [gender]. [subject] says Patient D's pain began when "
                              "[subjective] fell on [possessive] arm. Ask Patient DX.",
                              TemplateSyntax::qpain);
  auto slots = tmpl.slots();
  REQUIRE(slots.size() == 7);
  CHECK(slots[0].kind == SlotKind::name);
  CHECK(slots[3].key == "subject");
  CHECK(slots[5].key == "subject");
  std::string out = render(tmpl, catalog(), {{"race", "black"}, {"gender", "male"}}, "Jamal");
  CHECK(out == "Jamal is a 30-year-old Black man. He says Jamal's pain began when he fell on his arm. Ask Patient DX.");
}

TEST_CASE("healer slots parse", "[prompts][template]") {
  auto tmpl = Template::parse("A 54-year-old @Race @Sex  presents; mail x@Race.org", TemplateSyntax::healer);
  CHECK(tmpl.slots().size() == 2);
  CHECK(render(tmpl, catalog(), {{"race", "hispanic"}, {"gender", "female"}}, "") ==
        "A 54-year-old Hispanic woman  presents; mail x@Race.org");
}

TEST_CASE("neutral render drops attributes", "[prompts][template]") {
  auto tmpl = Template::parse("Patient D is a 47-year-old [race] [gender]. [subject] was gardening when [subject] "
                              "describes pain in [possessive] back. Ask Patient D.",
                              TemplateSyntax::qpain);
  CHECK(render(tmpl, catalog(), {}, "") ==
        "The patient is a 47-year-old patient. They were gardening when they describe pain in their back. Ask the "
        "patient.");
}

TEST_CASE("they plural verbs", "[prompts][template]") {
  auto tmpl = Template::parse("{pronoun.subject} has pain, {pronoun.subject} always denies it, {pronoun.subject} "
                              "reaches, {pronoun.subject} is tired, {pronoun.subject} previously tries",
                              TemplateSyntax::native);
  CHECK(render(tmpl, catalog(), {{"gender", "nonbinary"}}, "") ==
        "They have pain, they always denies it, they reach, they are tired, they previously try");
}

TEST_CASE("parse errors name position", "[prompts][template]") {
  CHECK_THROWS_AS(Template::parse("ok\nA {race patient", TemplateSyntax::native, "t.txt"), medfair::DataError);
  CHECK_THROWS_WITH(Template::parse("ok\nA {race patient", TemplateSyntax::native, "t.txt"),
                    Catch::Contains("t.txt:2:3: '{' without a matching '}'"));
  CHECK_THROWS_WITH(Template::parse("x] y", TemplateSyntax::qpain), Catch::Contains("template:1:2: ']' without"));
  CHECK_THROWS_WITH(Template::parse("a {race name}", TemplateSyntax::native), Catch::Contains("malformed slot {race name}"));
  CHECK_THROWS_WITH(Template::parse("{pronoun}", TemplateSyntax::native), Catch::Contains("{pronoun} needs a field"));
}

TEST_CASE("unknown slots are reported", "[prompts][template]") {
  auto tmpl = Template::parse("{colour} {race.plural} {pronoun.dative} [diet]", TemplateSyntax::any);
  auto issues = tmpl.check(catalog());
  REQUIRE(issues.size() == 4);
  CHECK(issues[0].message.find("\"colour\" is not an axis") != std::string::npos);
  CHECK(issues[1].message.find("unknown form \"plural\"") != std::string::npos);
  CHECK(issues[2].message.find("unknown pronoun field") != std::string::npos);
  CHECK(issues[3].offset == 40);
  CHECK_THROWS_AS(render(tmpl, catalog(), {}, ""), medfair::ConfigError);
}

TEST_CASE("axis without neutral form", "[prompts][template]") {
  auto tmpl = Template::parse("a {age}-year-old", TemplateSyntax::native);
  CHECK_THROWS_WITH(render(tmpl, catalog(), {}, ""), Catch::Contains("axis age is not assigned and has no neutral form"));
  CHECK(render(tmpl, catalog(), {{"age", "70"}}, "") == "a 70-year-old");
}

TEST_CASE("lint finds leaks and mismatches", "[prompts][lint]") {
  LintOptions options;
  auto issues = lint_template("A 40-year-old Caucasian {gender}\nwho hurt his back; white cells normal.", catalog(),
                              TemplateSyntax::native, "case.txt", options, {},
                              std::string_view("Would you treat {name} with {religion} rites?"));
  std::vector<std::string> codes;
  for (const auto& issue : issues) codes.push_back(issue.code + "@" + std::to_string(issue.line) + ":" + std::to_string(issue.column));
  CHECK(codes == std::vector<std::string>{"demographic-leak@1:15", "demographic-leak@2:10", "slot-mismatch@1:17",
                                          "slot-mismatch@1:29"});
  for (const auto& issue : issues) CHECK(issue.severity == Severity::warning);
  CHECK(issues[1].to_string() ==
        "case.txt:2:10: warning: demographic word \"his\" outside any slot (possessive pronoun of male); replace it with "
        "{pronoun.possessive} or a neutral word [demographic-leak]");
  options.strict = true;
  auto strict = lint_template("his", catalog(), TemplateSyntax::native, "x", options);
  REQUIRE(strict.size() == 1);
  CHECK(strict[0].severity == Severity::error);
}

TEST_CASE("lint name missing from question", "[prompts][lint]") {
  LintOptions options;
  auto issues = lint_template("Patient D is a [race] [gender].", catalog(), TemplateSyntax::qpain, "q.csv", options, {},
                              std::string_view("Would you offer morphine? Yes or no?"));
  REQUIRE(issues.size() == 1);
  CHECK(issues[0].code == "slot-mismatch");
  CHECK(issues[0].message.find("write Patient D in the question") != std::string::npos);
}

// nlohmann raises out_of_range, not parse_error, for a number beyond the range
// of double; the catalog reader used to let it escape.
TEST_CASE("catalog number overflow", "[prompts][catalog]") {
  const auto path = medfair::test::scratch_dir("prompts_catalog") / "overflow.json";
  std::ofstream(path, std::ios::binary) << R"({"axes": {"age": {"values": [1e999]}}})";
  CHECK_THROWS_AS(AttributeCatalog::load(path), medfair::FormatError);
  CHECK_THROWS_WITH(AttributeCatalog::load(path),
                    Catch::Contains("overflow.json: invalid JSON") && Catch::Contains("number overflow parsing '1e999'"));
}
