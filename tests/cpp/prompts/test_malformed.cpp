// Malformed inputs: each file in tests/data/bad must fail with its exact
// error type and a message naming the file, the position and the fix.

#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "medfair/error.hpp"
#include "medfair/prompts/catalog.hpp"
#include "medfair/prompts/loaders.hpp"
#include "test_support.hpp"

using namespace medfair::prompts;

namespace {

std::filesystem::path bad(const std::string& name) {
  return std::filesystem::path(MEDFAIR_SOURCE_DIR) / "tests" / "data" / "bad" / name;
}

enum class Kind { qpain, healer, nurse, generic, catalog };

void load(Kind kind, const std::filesystem::path& path) {
  switch (kind) {
    case Kind::qpain: load_qpain(path); break;
    case Kind::healer: load_healer(path); break;
    case Kind::nurse: load_nurse(path); break;
    case Kind::generic: load_generic(path); break;
    case Kind::catalog: AttributeCatalog::load(path); break;
  }
}

enum class Type { io, format, data, config };

struct BadCase {
  std::string file;
  Kind kind;
  Type type;
  std::vector<std::string> fragments;  // each must appear in the message
};

const std::vector<BadCase>& bad_cases() {
  static const std::vector<BadCase> cases = {
      {"qpain_missing_answer", Kind::qpain, Type::data,
       {"data_acute_cancer.csv:1:1: missing column \"Answer\"", "add the column to the header row"}},
      {"qpain_empty_template", Kind::qpain, Type::data,
       {"data_acute_cancer.csv:3:2: row 2, column \"Vignette\": empty template"}},
      {"qpain_bad_answer", Kind::qpain, Type::data,
       {"data_acute_cancer.csv:2:", "row 1, column \"Answer\": the answer \"Maybe\" is not Yes or No"}},
      {"qpain_bad_dose", Kind::qpain, Type::data,
       {"row 1, column \"Dosage\"", "the dose \"Medium (7 mg)\" starts with neither Low nor High"}},
      {"qpain_no_doses", Kind::qpain, Type::data,
       {"row 1, column \"Question\"", "does not name the two doses"}},
      {"qpain_unbalanced", Kind::qpain, Type::data,
       {"data_acute_cancer.csv:2:29: row 1, column \"Vignette\": '[' without a matching ']'"}},
      {"healer_missing_column", Kind::healer, Type::data,
       {"cases.csv:1:1: missing column \"Case one liner\"", "\"title\", \"Summary\", \"DDx\""}},
      {"invalid_utf8.csv", Kind::generic, Type::format,
       {"invalid_utf8.csv:2:19: invalid UTF-8 (byte 0xF1", "save the file as UTF-8"}},
      {"unterminated_quote.csv", Kind::generic, Type::format,
       {"unterminated_quote.csv:3:1: unterminated quoted field", "add the closing quote"}},
      {"bad_quote.csv", Kind::generic, Type::format,
       {"bad_quote.csv:2:4: malformed CSV quoting", "RFC 4180"}},
      {"ragged_row.csv", Kind::generic, Type::format,
       {"ragged_row.csv:3:1: row 2 has 4 fields but the header has 3"}},
      {"empty.csv", Kind::generic, Type::format, {"empty.csv: the file is empty"}},
      {"nurse_bad_options.csv", Kind::nurse, Type::data,
       {"nurse_bad_options.csv:8:16: row 1, column \"options\": the option list does not parse at character 19",
        "expected ',' or ']'"}},
      {"nurse_unknown_race.csv", Kind::nurse, Type::data,
       {"row 1, column \"race\": \"martian\" is not a value, alias or code of axis race"}},
      {"nurse_duplicate_variant.csv", Kind::nurse, Type::data,
       {"row 2, column \"race\": a second row for Case #1", "race=white,gender=male"}},
      {"nurse_prompt_mismatch.csv", Kind::nurse, Type::data,
       {"column \"prompt\": the prompt does not contain the row's text column"}},
      {"generic_unknown_slot.jsonl", Kind::generic, Type::data,
       {"generic_unknown_slot.jsonl:1: field \"template\", line 1 column 38 of the template",
        "unknown slot {colour}: \"colour\" is not an axis"}},
      {"generic_answer_not_option.csv", Kind::generic, Type::data,
       {"row 1, column \"answer\": the answer \"Perhaps\" is not one of the options"}},
      {"generic_bad_json.jsonl", Kind::generic, Type::format, {"generic_bad_json.jsonl:2:", "invalid JSON"}},
      {"generic_missing_options.jsonl", Kind::generic, Type::data,
       {"generic_missing_options.jsonl:1: missing field \"options\""}},
      {"generic_empty_template.jsonl", Kind::generic, Type::data,
       {"generic_empty_template.jsonl:1: field \"template\"", "empty template"}},
      {"generic_unbalanced_brace.jsonl", Kind::generic, Type::data,
       {"line 1 column 3 of the template: '{' without a matching '}'"}},
      {"generic_wrong_type.txt", Kind::generic, Type::config, {"unknown task file type \".txt\"; use .csv or .jsonl"}},
      {"catalog_bad_pronoun.json", Kind::catalog, Type::data,
       {"catalog_bad_pronoun.json: value \"female\" of axis \"gender\" names the unknown pronoun set \"she\""}},
      {"catalog_invalid_json.json", Kind::catalog, Type::format, {"catalog_invalid_json.json:2:", "invalid JSON"}},
  };
  return cases;
}

}  // namespace

TEST_CASE("malformed inputs raise exact errors", "[prompts][malformed]") {
  REQUIRE(bad_cases().size() >= 15);
  for (const auto& bad_case : bad_cases()) {
    INFO(bad_case.file);
    std::string message;
    Type type = Type::io;
    bool threw = false;
    try {
      load(bad_case.kind, bad(bad_case.file));
    } catch (const medfair::DataError& e) {
      threw = true, type = Type::data, message = e.what();
    } catch (const medfair::FormatError& e) {
      threw = true, type = Type::format, message = e.what();
    } catch (const medfair::ConfigError& e) {
      threw = true, type = Type::config, message = e.what();
    } catch (const medfair::IOError& e) {
      threw = true, type = Type::io, message = e.what();
    }
    INFO(message);
    REQUIRE(threw);
    CHECK(type == bad_case.type);
    for (const auto& fragment : bad_case.fragments) CHECK(message.find(fragment) != std::string::npos);
  }
}

TEST_CASE("missing folder raises IOError", "[prompts][malformed]") {
  CHECK_THROWS_AS(load_qpain(bad("no_such_folder")), medfair::IOError);
  CHECK_THROWS_WITH(load_healer(bad("no_such_folder")), Catch::Contains("Healer folder not found"));
  CHECK_THROWS_WITH(load_nurse(bad("no_such.csv")), Catch::Contains("cannot open the file"));
}
