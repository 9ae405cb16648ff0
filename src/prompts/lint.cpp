#include "medfair/prompts/lint.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <tuple>

#include "medfair/error.hpp"
#include "medfair/io/csv.hpp"
#include "medfair/io/jsonl.hpp"

namespace medfair::prompts {

namespace {

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (static_cast<unsigned char>(c) >= 0x80);
}

bool has_upper(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// A word the leak check looks for, with what it reveals and the slot to use.
struct LeakWord {
  std::string word;
  std::string meaning;     // "gender: pronoun of male"
  std::string axis;        // "gender", "race", ... or "name"
  std::string suggestion;  // the native slot to write instead
};

std::vector<LeakWord> leak_words(const AttributeCatalog& catalog) {
  std::vector<LeakWord> words;
  std::set<std::string> seen;
  auto add = [&](const std::string& word, std::string meaning, std::string axis, std::string suggestion) {
    if (word.size() < 2 || !seen.insert(word).second) return;
    words.push_back({word, std::move(meaning), std::move(axis), std::move(suggestion)});
  };
  const std::string& neutral_set = catalog.neutral_pronouns().id;
  for (const auto& axis : catalog.axes()) {
    if (!axis.leak_check) continue;
    for (const auto& value : axis.values) {
      std::string meaning = fmt::format("{} = {}", axis.name, value.id);
      add(value.text, meaning, axis.name, "{" + axis.name + "}");
      for (const auto& [form, text] : value.forms) add(text, meaning, axis.name, "{" + axis.name + "." + form + "}");
      for (const auto& alias : value.aliases) add(alias, meaning, axis.name, "{" + axis.name + "}");
      if (axis.name == "gender" && !value.pronouns.empty() && value.pronouns != neutral_set) {
        const PronounSet& set = catalog.pronoun_sets().at(value.pronouns);
        for (const auto& field : pronoun_fields()) {
          add(*set.field(field), fmt::format("{} pronoun of {}", field, value.id), "gender", "{pronoun." + field + "}");
        }
      }
    }
  }
  for (const auto& [cell, names] : catalog.name_cells()) {
    for (const auto& name : names) add(name, "a first name of the cell " + cell, "name", "{name}");
  }
  // Longest first, so "African American" wins over a shorter word at the same spot.
  std::stable_sort(words.begin(), words.end(), [](const LeakWord& a, const LeakWord& b) { return a.word.size() > b.word.size(); });
  return words;
}

// Whether `word` occurs at `at` in `text` as a whole word. Lower-case catalog
// words match in any case; words with a capital match as written, so the
// clinical "white blood cells" is not taken for the race "White".
bool word_at(std::string_view text, std::size_t at, std::string_view word) {
  if (at + word.size() > text.size()) return false;
  if (at > 0 && is_word_char(text[at - 1])) return false;
  if (at + word.size() < text.size() && is_word_char(text[at + word.size()])) return false;
  if (has_upper(word)) return text.compare(at, word.size(), word) == 0;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (lower(text[at + i]) != word[i]) return false;
  }
  return true;
}

std::string slot_hint(const std::string& native, TemplateSyntax syntax) {
  if (syntax == TemplateSyntax::qpain) {
    if (native == "{pronoun.subject}") return "[subject]";
    if (native == "{pronoun.possessive}") return "[possessive]";
    if (native == "{pronoun.object}") return "[object]";
    if (native == "{race}") return "[race]";
    if (native == "{gender}") return "[gender]";
    if (native == "{name}") return "Patient D";
  }
  if (syntax == TemplateSyntax::healer) {
    if (native == "{race}") return "@Race";
    if (native == "{gender}") return "@Sex";
  }
  return native;
}

class Linter {
 public:
  Linter(const AttributeCatalog& catalog, const LintOptions& options, std::string file)
      : catalog_(catalog), options_(options), file_(std::move(file)), words_(leak_words(catalog)) {}

  std::vector<LintIssue> issues;

  void add(std::pair<std::size_t, std::size_t> position, bool error, const std::string& code, std::string message) {
    Severity severity = (error || options_.strict) ? Severity::error : Severity::warning;
    issues.push_back({file_, position.first, position.second, severity, code, std::move(message)});
  }

  Template check(std::string_view text, TemplateSyntax syntax, const Locator& locate) {
    std::vector<TemplateIssue> found;
    Template tmpl = Template::parse_lenient(text, syntax, found);
    auto more = tmpl.check(catalog_);
    found.insert(found.end(), more.begin(), more.end());
    for (const auto& issue : found) add(locate(issue.offset), issue.error, issue.code, issue.message);
    check_leaks(text, tmpl, syntax, locate);
    return tmpl;
  }

  void check_pair(const Template& vignette, const Template& question, TemplateSyntax syntax, const Locator& locate_vignette,
                  const Locator& locate_question) {
    std::set<std::string> in_vignette;
    std::set<std::string> in_question;
    for (const auto& slot : vignette.slots()) in_vignette.insert(slot.native());
    for (const auto& slot : question.slots()) in_question.insert(slot.native());
    if (in_vignette.count("{name}") && !in_question.count("{name}") && !question.uses(SlotKind::pronoun)) {
      const Slot* first = nullptr;
      auto slots = vignette.slots();
      for (const auto& slot : slots) {
        if (slot.kind == SlotKind::name && !first) first = &slot;
      }
      add(locate_question(0), false, "slot-mismatch",
          fmt::format("the vignette names the patient with {} but the question does not; write {} in the question so it "
                      "asks about the same patient",
                      first->source_text, slot_hint("{name}", syntax)));
    }
    for (const auto& slot : question.slots()) {
      if (!in_vignette.count(slot.native())) {
        add(locate_question(slot.offset), false, "slot-mismatch",
            fmt::format("slot {} appears in the question but not in the vignette; the vignette should introduce it",
                        slot.source_text));
      }
    }
    (void)locate_vignette;
  }

 private:
  void check_leaks(std::string_view text, const Template& tmpl, TemplateSyntax syntax, const Locator& locate) {
    std::vector<std::pair<std::size_t, std::size_t>> slot_ranges;
    for (const auto& slot : tmpl.slots()) slot_ranges.emplace_back(slot.offset, slot.offset + slot.source_text.size());
    auto inside_slot = [&](std::size_t at) {
      for (const auto& [begin, end] : slot_ranges) {
        if (at >= begin && at < end) return true;
      }
      return false;
    };
    for (std::size_t at = 0; at < text.size(); ++at) {
      if (at > 0 && is_word_char(text[at - 1])) continue;
      if (!is_word_char(text[at]) || inside_slot(at)) continue;
      for (const auto& leak : words_) {
        if (!word_at(text, at, leak.word)) continue;
        add(locate(at), false, "demographic-leak",
            fmt::format("demographic word \"{}\" outside any slot ({}); replace it with {} or a neutral word",
                        text.substr(at, leak.word.size()), leak.meaning, slot_hint(leak.suggestion, syntax)));
        at += leak.word.size() - 1;
        break;
      }
    }
  }

  const AttributeCatalog& catalog_;
  const LintOptions& options_;
  std::string file_;
  std::vector<LeakWord> words_;
};

Locator text_locator(std::string_view text) {
  std::string copy(text);
  return [copy](std::size_t offset) {
    auto position = io::position_of(copy, offset);
    return std::make_pair(position.line, position.column);
  };
}

Locator cell_locator(const io::CsvTable& table, std::size_t row, std::size_t column) {
  return [&table, row, column](std::size_t offset) {
    auto position = table.position(row, column, offset);
    return std::make_pair(position.line, position.column);
  };
}

// UTF-8 bytes that the escape \uXXXX stands for. A high surrogate counts
// the whole 4-byte pair, so the low surrogate that follows adds nothing.
std::size_t utf8_length(unsigned code_unit) {
  if (code_unit < 0x80) return 1;
  if (code_unit < 0x800) return 2;
  if (code_unit >= 0xD800 && code_unit < 0xDC00) return 4;
  if (code_unit >= 0xDC00 && code_unit < 0xE000) return 0;
  return 3;
}

// Byte offset in a raw JSON line of byte `decoded` of the string value that
// starts (at its opening quote) at `quote`.
std::size_t raw_json_offset(std::string_view line, std::size_t quote, std::size_t decoded) {
  std::size_t raw = quote + 1;
  std::size_t produced = 0;
  while (raw < line.size() && produced < decoded && line[raw] != '"') {
    if (line[raw] == '\\' && raw + 1 < line.size()) {
      if (line[raw + 1] == 'u' && raw + 5 < line.size()) {
        unsigned value = static_cast<unsigned>(std::strtoul(std::string(line.substr(raw + 2, 4)).c_str(), nullptr, 16));
        produced += utf8_length(value);
        raw += 6;
      } else {
        produced += 1;
        raw += 2;
      }
    } else {
      produced += 1;
      raw += 1;
    }
  }
  return raw;
}

// Finds the opening quote of the string value of "key" in a raw JSON line.
std::optional<std::size_t> find_json_value(std::string_view line, std::string_view key) {
  std::string needle;
  needle.reserve(key.size() + 2);
  needle.push_back('"');
  needle.append(key);
  needle.push_back('"');
  std::size_t at = line.find(needle);
  while (at != std::string_view::npos) {
    std::size_t i = at + needle.size();
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i < line.size() && line[i] == ':') {
      ++i;
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i < line.size() && line[i] == '"') return i;
    }
    at = line.find(needle, at + 1);
  }
  return std::nullopt;
}

std::vector<LintIssue> lint_jsonl(const std::filesystem::path& path, const AttributeCatalog& catalog,
                                  const LintOptions& options) {
  std::string raw = io::read_text_file(path);
  std::string_view body = io::strip_utf8_bom(raw);
  auto records = io::parse_jsonl(body, path.string());
  std::vector<std::string_view> lines;
  for (std::size_t start = 0;;) {
    std::size_t end = body.find('\n', start);
    lines.push_back(body.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  TemplateSyntax syntax = options.syntax.value_or(TemplateSyntax::any);
  Linter linter(catalog, options, path.string());
  for (const auto& record : records) {
    if (!record.value.is_object() || !record.value.contains("template") || !record.value["template"].is_string()) {
      linter.add({record.line, 1}, true, "no-templates", "record has no string field \"template\"");
      continue;
    }
    std::string_view line = lines[record.line - 1];
    auto locator_for = [&](const char* key, const std::string& value) -> Locator {
      auto quote = find_json_value(line, key);
      std::size_t line_number = record.line;
      std::string line_copy(line);
      return [quote, line_number, line_copy, value](std::size_t offset) {
        if (!quote) return std::make_pair(line_number, std::size_t{1});
        std::size_t raw_offset = raw_json_offset(line_copy, *quote, offset);
        return std::make_pair(line_number, io::position_of(line_copy, raw_offset).column);
      };
    };
    std::string text = record.value["template"].get<std::string>();
    Locator locate = locator_for("template", text);
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
      linter.add(locate(0), true, "empty-template", "empty template; write the vignette text");
      continue;
    }
    Template vignette = linter.check(text, syntax, locate);
    if (record.value.contains("question") && record.value["question"].is_string()) {
      std::string question_text = record.value["question"].get<std::string>();
      Locator locate_question = locator_for("question", question_text);
      Template question = linter.check(question_text, syntax, locate_question);
      linter.check_pair(vignette, question, syntax, locate, locate_question);
    }
  }
  return std::move(linter.issues);
}

std::vector<LintIssue> lint_csv(const std::filesystem::path& path, const AttributeCatalog& catalog,
                                const LintOptions& options) {
  io::CsvTable table = io::read_csv(path);
  Linter linter(catalog, options, path.string());
  std::optional<std::size_t> text_column;
  std::optional<std::size_t> question_column;
  TemplateSyntax syntax = TemplateSyntax::any;
  if (auto column = table.find_column("Vignette")) {
    text_column = column;
    question_column = table.find_column("Question");
    syntax = TemplateSyntax::qpain;
  } else if (auto healer = table.find_column("Case one liner")) {
    text_column = healer;
    syntax = TemplateSyntax::healer;
  } else if (auto generic = table.find_column("template")) {
    text_column = generic;
    question_column = table.find_column("question");
  }
  if (options.syntax) syntax = *options.syntax;
  if (!text_column) {
    linter.add({1, 1}, true, "no-templates",
               "no template column: expected \"Vignette\" (Q-Pain), \"Case one liner\" (Healer) or \"template\"");
    return std::move(linter.issues);
  }
  for (std::size_t r = 0; r < table.row_count(); ++r) {
    Locator locate = cell_locator(table, r, *text_column);
    const std::string& text = table.cell(r, *text_column);
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
      linter.add(locate(0), true, "empty-template", "empty template; write the vignette text in this cell");
      continue;
    }
    Template vignette = linter.check(text, syntax, locate);
    if (question_column) {
      Locator locate_question = cell_locator(table, r, *question_column);
      Template question = linter.check(table.cell(r, *question_column), syntax, locate_question);
      linter.check_pair(vignette, question, syntax, locate, locate_question);
    }
  }
  return std::move(linter.issues);
}

}  // namespace

std::string LintIssue::to_string() const {
  return fmt::format("{}:{}:{}: {}: {} [{}]", file, line, column, severity == Severity::error ? "error" : "warning",
                     message, code);
}

std::vector<LintIssue> lint_template(std::string_view text, const AttributeCatalog& catalog, TemplateSyntax syntax,
                                     const std::string& file, const LintOptions& options, const Locator& locate,
                                     std::optional<std::string_view> question, const Locator& locate_question) {
  Linter linter(catalog, options, file);
  Locator where = locate ? locate : text_locator(text);
  Template vignette = linter.check(text, syntax, where);
  if (question) {
    Locator where_question = locate_question ? locate_question : text_locator(*question);
    Template asked = linter.check(*question, syntax, where_question);
    linter.check_pair(vignette, asked, syntax, where, where_question);
  }
  return std::move(linter.issues);
}

std::vector<LintIssue> lint_file(const std::filesystem::path& path, const AttributeCatalog& catalog,
                                 const LintOptions& options) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), lower);
  std::vector<LintIssue> issues;
  if (extension == ".csv") {
    issues = lint_csv(path, catalog, options);
  } else if (extension == ".jsonl" || extension == ".ndjson") {
    issues = lint_jsonl(path, catalog, options);
  } else {
    std::string raw = io::read_text_file(path);
    std::string_view body = io::strip_utf8_bom(raw);
    io::require_valid_utf8(body, path.string());
    issues = lint_template(body, catalog, options.syntax.value_or(TemplateSyntax::any), path.string(), options);
  }
  // Report in file order, as compilers do.
  std::stable_sort(issues.begin(), issues.end(), [](const LintIssue& a, const LintIssue& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return issues;
}

std::vector<std::string> demographic_words(const AttributeCatalog& catalog) {
  std::vector<std::string> words;
  for (const auto& leak : leak_words(catalog)) words.push_back(leak.word);
  return words;
}

}  // namespace medfair::prompts
