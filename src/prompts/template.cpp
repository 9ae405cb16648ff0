#include "medfair/prompts/template.hpp"

#include <fmt/format.h>

#include "medfair/error.hpp"
#include "medfair/io/csv.hpp"

namespace medfair::prompts {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
char to_lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }
char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool is_identifier(std::string_view s) {
  if (s.empty() || !(is_alpha(s[0]) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(is_alnum(c) || c == '_')) return false;
  }
  return true;
}

class Parser {
 public:
  Parser(std::string_view text, TemplateSyntax syntax, std::vector<TemplateIssue>& issues)
      : text_(text), syntax_(syntax), issues_(issues) {}

  std::vector<Template::Piece> run() {
    bool native = syntax_ == TemplateSyntax::native || syntax_ == TemplateSyntax::any;
    bool qpain = syntax_ == TemplateSyntax::qpain || syntax_ == TemplateSyntax::any;
    bool healer = syntax_ == TemplateSyntax::healer || syntax_ == TemplateSyntax::any;
    std::size_t i = 0;
    while (i < text_.size()) {
      char c = text_[i];
      if (native && c == '{') {
        i = native_open(i);
      } else if (native && c == '}') {
        if (i + 1 < text_.size() && text_[i + 1] == '}') {
          literal_ += '}';
          i += 2;
        } else {
          issue(i, "unbalanced-bracket", "'}' without a matching '{'; write '}}' for a literal brace");
          literal_ += c;
          ++i;
        }
      } else if (qpain && c == '[') {
        i = bracket_open(i);
      } else if (qpain && c == ']') {
        issue(i, "unbalanced-bracket", "']' without a matching '['");
        literal_ += c;
        ++i;
      } else if (qpain && c == 'P' && patient_name_at(i)) {
        Slot slot;
        slot.kind = SlotKind::name;
        slot.source_text = std::string(text_.substr(i, 9));
        slot.offset = i;
        push_slot(std::move(slot));
        i += 9;
      } else if (healer && c == '@' && (i == 0 || !is_alnum(text_[i - 1])) && i + 1 < text_.size() && is_alpha(text_[i + 1])) {
        i = healer_slot(i);
      } else {
        literal_ += c;
        ++i;
      }
    }
    flush();
    return std::move(pieces_);
  }

 private:
  void issue(std::size_t offset, const char* code, std::string message, bool error = true) {
    issues_.push_back({offset, code, std::move(message), error});
  }

  void flush() {
    if (!literal_.empty()) {
      pieces_.push_back({std::move(literal_), std::nullopt});
      literal_.clear();
    }
  }

  void push_slot(Slot slot) {
    flush();
    pieces_.push_back({std::string(), std::move(slot)});
  }

  // "Patient X" where X is one capital letter that ends the word.
  bool patient_name_at(std::size_t i) const {
    if (text_.substr(i, 8) != "Patient ") return false;
    if (i > 0 && is_alnum(text_[i - 1])) return false;
    if (i + 8 >= text_.size() || !is_upper(text_[i + 8])) return false;
    return i + 9 == text_.size() || !is_alnum(text_[i + 9]);
  }

  std::size_t native_open(std::size_t i) {
    if (i + 1 < text_.size() && text_[i + 1] == '{') {
      literal_ += '{';
      return i + 2;
    }
    std::size_t close = i + 1;
    while (close < text_.size() && text_[close] != '}' && text_[close] != '\n' && text_[close] != '{') ++close;
    if (close >= text_.size() || text_[close] != '}') {
      issue(i, "unbalanced-bracket", "'{' without a matching '}' on the same line; write '{{' for a literal brace");
      literal_ += '{';
      return i + 1;
    }

    std::string_view body = text_.substr(i + 1, close - i - 1);
    std::string_view head = body.substr(0, body.find('.'));
    std::string_view tail = body.find('.') == std::string_view::npos ? std::string_view() : body.substr(body.find('.') + 1);
    bool has_dot = body.find('.') != std::string_view::npos;
    std::string source(text_.substr(i, close - i + 1));
    if (!is_identifier(head) || (has_dot && !is_identifier(tail))) {
      issue(i, "unknown-slot",
            fmt::format("malformed slot {}; write {{axis}}, {{axis.form}}, {{name}} or {{pronoun.field}}", source));
      literal_ += source;
      return close + 1;
    }

    Slot slot;
    slot.capitalize = is_upper(head[0]);
    std::string key(head);
    key[0] = to_lower(key[0]);
    slot.source_text = source;
    slot.offset = i;

    if (key == "name") {
      slot.kind = SlotKind::name;
      if (has_dot) issue(i, "unknown-slot", fmt::format("{} has a form, but name slots take none; write {{name}}", source));
    } else if (key == "pronoun") {
      slot.kind = SlotKind::pronoun;
      slot.key = std::string(tail);
      if (!has_dot) {
        issue(i, "unknown-slot", "{pronoun} needs a field: {pronoun.subject}, {pronoun.object}, {pronoun.possessive}, "
                                 "{pronoun.possessive_pronoun} or {pronoun.reflexive}");
      }
    } else {
      slot.kind = SlotKind::axis;
      slot.key = key;
      slot.form = std::string(tail);
    }
    push_slot(std::move(slot));
    return close + 1;
  }

  std::size_t bracket_open(std::size_t i) {
    std::size_t close = i + 1;
    while (close < text_.size() && text_[close] != ']' && text_[close] != '\n' && text_[close] != '[') ++close;
    if (close >= text_.size() || text_[close] != ']') {
      issue(i, "unbalanced-bracket", "'[' without a matching ']' on the same line");
      literal_ += '[';
      return i + 1;
    }

    std::string_view body = text_.substr(i + 1, close - i - 1);
    std::string source(text_.substr(i, close - i + 1));
    if (!is_identifier(body)) {
      issue(i, "unknown-slot", fmt::format("malformed slot {}; Q-Pain slots are single words such as [race]", source));
      literal_ += source;
      return close + 1;
    }

    Slot slot;
    slot.source_text = source;
    slot.offset = i;
    slot.capitalize = is_upper(body[0]);
    std::string word(body);
    for (auto& ch : word) ch = to_lower(ch);

    if (word == "subject" || word == "subjective") {
      slot.kind = SlotKind::pronoun;
      slot.key = "subject";
      if (word == "subjective") {
        issue(i, "nonstandard-slot", "[subjective] is read as [subject]; write [subject]", false);
      }
    } else if (word == "possessive" || word == "object" || word == "reflexive") {
      slot.kind = SlotKind::pronoun;
      slot.key = word;
    } else if (word == "name") {
      slot.kind = SlotKind::name;
    } else {
      slot.kind = SlotKind::axis;
      slot.key = word == "sex" ? "gender" : word;
    }
    push_slot(std::move(slot));
    return close + 1;
  }

  std::size_t healer_slot(std::size_t i) {
    std::size_t end = i + 1;
    while (end < text_.size() && (is_alnum(text_[end]) || text_[end] == '_')) ++end;
    std::string word(text_.substr(i + 1, end - i - 1));
    Slot slot;
    slot.source_text = std::string(text_.substr(i, end - i));
    slot.offset = i;
    std::string lower = word;
    for (auto& ch : lower) ch = to_lower(ch);
    if (lower == "name") {
      slot.kind = SlotKind::name;
    } else {
      slot.kind = SlotKind::axis;
      slot.key = (lower == "sex") ? "gender" : lower;
    }
    push_slot(std::move(slot));
    return end;
  }

  std::string_view text_;
  TemplateSyntax syntax_;
  std::vector<TemplateIssue>& issues_;
  std::vector<Template::Piece> pieces_;
  std::string literal_;
};

// True when the next rendered text starts a sentence: at the start of the
// output or after '.', '!', '?' or a newline, ignoring spaces.
bool at_sentence_start(const std::string& out) {
  std::size_t end = out.find_last_not_of(' ');
  if (end == std::string::npos) return true;
  char last = out[end];
  return last == '.' || last == '!' || last == '?' || last == '\n';
}

bool ends_with(std::string_view word, std::string_view suffix) {
  return word.size() >= suffix.size() && word.substr(word.size() - suffix.size()) == suffix;
}

// The plural form of a third-person singular verb ("states" -> "state",
// "denies" -> "deny", "reaches" -> "reach"), or "" when `word` does not look
// like one.
std::string plural_verb(std::string_view word) {
  static const std::pair<std::string_view, std::string_view> kIrregular[] = {
      {"is", "are"}, {"was", "were"}, {"has", "have"}, {"does", "do"}, {"goes", "go"}};
  for (const auto& [singular, plural] : kIrregular) {
    if (word == singular) return std::string(plural);
  }
  // Words ending in -s that are not verbs after a subject pronoun.
  static const std::string_view kNotVerbs[] = {"always", "sometimes", "perhaps", "afterwards", "thus",
                                               "nevertheless", "regardless", "unless", "less", "across",
                                               "towards", "besides", "nonetheless"};
  for (auto not_verb : kNotVerbs) {
    if (word == not_verb) return {};
  }
  if (word.size() < 4 || !ends_with(word, "s") || ends_with(word, "ss") || ends_with(word, "us") || ends_with(word, "is")) {
    return {};
  }
  if (ends_with(word, "ies")) return std::string(word.substr(0, word.size() - 3)) + "y";
  for (auto suffix : {"ches", "shes", "sses", "xes", "zes"}) {
    if (ends_with(word, suffix)) return std::string(word.substr(0, word.size() - 2));
  }
  return std::string(word.substr(0, word.size() - 1));
}

// After a plural-verb subject ("they"), puts the verb that follows, possibly
// after one adverb ending in -ly, into the plural.
// NOTE: a heuristic: it only looks at the next one or two words, and a noun
// ending in -s right after "they" would be changed as well.
void pluralize_leading_verb(std::string& literal) {
  std::size_t at = 0;
  for (int word_index = 0; word_index < 2; ++word_index) {
    if (at >= literal.size() || literal[at] != ' ') return;
    std::size_t begin = at + 1;
    std::size_t end = begin;
    while (end < literal.size() && is_alpha(literal[end])) ++end;
    std::string_view word(literal.data() + begin, end - begin);
    if (word.empty()) return;
    std::string plural = plural_verb(word);
    if (!plural.empty()) {
      literal.replace(begin, word.size(), plural);
      return;
    }
    if (!ends_with(word, "ly")) return;
    at = end;
  }
}

}  // namespace

TemplateSyntax parse_syntax(std::string_view name) {
  if (name == "native") return TemplateSyntax::native;
  if (name == "qpain") return TemplateSyntax::qpain;
  if (name == "healer") return TemplateSyntax::healer;
  if (name == "any") return TemplateSyntax::any;
  throw ConfigError(fmt::format("unknown template syntax \"{}\"; use native, qpain, healer or any", name));
}

std::string_view syntax_name(TemplateSyntax syntax) {
  switch (syntax) {
    case TemplateSyntax::native: return "native";
    case TemplateSyntax::qpain: return "qpain";
    case TemplateSyntax::healer: return "healer";
    case TemplateSyntax::any: return "any";
  }
  return "any";
}

std::string Slot::native() const {
  switch (kind) {
    case SlotKind::name: return "{name}";
    case SlotKind::pronoun: return "{pronoun." + key + "}";
    case SlotKind::axis: return form.empty() ? "{" + key + "}" : "{" + key + "." + form + "}";
  }
  return source_text;
}

Template Template::parse(std::string_view text, TemplateSyntax syntax, const std::string& source) {
  std::vector<TemplateIssue> issues;
  Template result = parse_lenient(text, syntax, issues);
  for (const auto& issue : issues) {
    if (!issue.error) continue;
    auto position = io::position_of(text, issue.offset);
    throw DataError(fmt::format("{}:{}:{}: {}", source, position.line, position.column, issue.message));
  }
  return result;
}

Template Template::parse_lenient(std::string_view text, TemplateSyntax syntax, std::vector<TemplateIssue>& issues) {
  Template result;
  result.text_ = std::string(text);
  result.pieces_ = Parser(text, syntax, issues).run();
  return result;
}

Template Template::literal(std::string text) {
  Template result;
  result.text_ = std::move(text);
  if (!result.text_.empty()) result.pieces_.push_back({result.text_, std::nullopt});
  return result;
}

std::vector<Slot> Template::slots() const {
  std::vector<Slot> result;
  for (const auto& piece : pieces_) {
    if (piece.slot) result.push_back(*piece.slot);
  }
  return result;
}

bool Template::has_slots() const {
  for (const auto& piece : pieces_) {
    if (piece.slot) return true;
  }
  return false;
}

bool Template::uses(SlotKind kind, std::string_view key) const {
  for (const auto& piece : pieces_) {
    if (piece.slot && piece.slot->kind == kind && (key.empty() || piece.slot->key == key)) return true;
  }
  return false;
}

std::set<std::string> Template::axes(const AttributeCatalog& catalog) const {
  std::set<std::string> result;
  for (const auto& piece : pieces_) {
    if (!piece.slot) continue;
    switch (piece.slot->kind) {
      case SlotKind::axis: result.insert(piece.slot->key); break;
      case SlotKind::pronoun: result.insert("gender"); break;
      case SlotKind::name: result.insert(catalog.name_axes().begin(), catalog.name_axes().end()); break;
    }
  }
  return result;
}

std::vector<TemplateIssue> Template::check(const AttributeCatalog& catalog) const {
  std::vector<TemplateIssue> issues;
  for (const auto& piece : pieces_) {
    if (!piece.slot) continue;
    const Slot& slot = *piece.slot;
    if (slot.kind == SlotKind::pronoun) {
      if (!slot.key.empty() && !catalog.neutral_pronouns().field(slot.key)) {
        issues.push_back({slot.offset, "unknown-slot",
                          fmt::format("unknown pronoun field in {}; use subject, object, possessive, possessive_pronoun "
                                      "or reflexive",
                                      slot.source_text)});
      }
    } else if (slot.kind == SlotKind::axis) {
      const Axis* axis = catalog.find_axis(slot.key);
      if (!axis) {
        std::string known;
        for (const auto& a : catalog.axes()) known += (known.empty() ? "" : ", ") + a.name;
        issues.push_back({slot.offset, "unknown-slot",
                          fmt::format("unknown slot {}: \"{}\" is not an axis of the catalog (known axes: {}; also "
                                      "name and pronoun.FIELD)",
                                      slot.source_text, slot.key, known)});
      } else if (!slot.form.empty() && !axis->values.front().forms.count(slot.form)) {
        std::string known;
        for (const auto& [form, text] : axis->values.front().forms) known += (known.empty() ? "" : ", ") + form;
        issues.push_back({slot.offset, "unknown-slot",
                          fmt::format("unknown form \"{}\" in {}; axis {} has {}", slot.form, slot.source_text,
                                      axis->name, known.empty() ? "no named forms" : "the forms " + known)});
      }
    }
  }
  return issues;
}

std::string render(const Template& tmpl, const AttributeCatalog& catalog, const Assignment& assignment,
                   std::string_view name) {
  std::string out;
  out.reserve(tmpl.text().size() + 64);
  bool skip_space = false;
  bool plural_subject = false;
  for (const auto& piece : tmpl.pieces()) {
    if (!piece.slot) {
      std::string literal = piece.text;
      if (plural_subject) pluralize_leading_verb(literal);
      plural_subject = false;
      if (skip_space && !literal.empty() && literal[0] == ' ') literal.erase(0, 1);
      skip_space = false;
      out += literal;
      continue;
    }
    const Slot& slot = *piece.slot;
    std::string value;
    plural_subject = false;
    switch (slot.kind) {
      case SlotKind::name:
        value = name.empty() ? catalog.neutral_name() : std::string(name);
        break;
      case SlotKind::pronoun: {
        const PronounSet& set = catalog.pronouns_for(assignment);
        const std::string* word = set.field(slot.key);
        if (!word) throw ConfigError(fmt::format("unknown pronoun field in {}", slot.source_text));
        value = *word;
        plural_subject = set.plural_verbs && slot.key == "subject";
        break;
      }
      case SlotKind::axis: {
        const Axis& axis = catalog.axis(slot.key);
        if (const std::string* id = find_value(assignment, slot.key)) {
          const AttributeValue& chosen = catalog.value(slot.key, *id);
          if (slot.form.empty()) {
            value = chosen.text;
          } else {
            auto it = chosen.forms.find(slot.form);
            if (it == chosen.forms.end()) {
              throw ConfigError(fmt::format("value \"{}\" of axis {} has no form \"{}\" used by {}", chosen.id, axis.name,
                                            slot.form, slot.source_text));
            }
            value = it->second;
          }
        } else if (axis.neutral) {
          value = *axis.neutral;
        } else {
          throw ConfigError(fmt::format("the template uses {} but axis {} is not assigned and has no neutral form; "
                                        "vary the axis or fix its value",
                                        slot.source_text, axis.name));
        }
        break;
      }
    }
    if (value.empty()) {
      if (!out.empty() && out.back() == ' ') {
        out.pop_back();
      } else {
        skip_space = true;
      }
      continue;
    }
    if (slot.capitalize || at_sentence_start(out)) value[0] = to_upper(value[0]);
    out += value;
  }
  return out;
}

}  // namespace medfair::prompts
