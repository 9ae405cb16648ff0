#pragma once
// Vignette templates: text parsed once into literal pieces and typed slots.
//
// Three slot syntaxes are understood (docs/prompts.md has the full grammar):
//  - native:  {race} {gender} {gender.adjective} {name} {age}
//             {pronoun.subject} {pronoun.object} {pronoun.possessive}
//             {pronoun.possessive_pronoun} {pronoun.reflexive}, any catalog
//             axis as {axis} or {axis.form}; an upper-case first letter
//             ({Pronoun.subject}) capitalizes the output; {{ and }} are
//             literal braces.
//  - qpain:   [race] [gender] [subject] [possessive] [object], and the
//             patient's name written as "Patient D" (any capital letter).
//  - healer:  @Race @Sex (also @Gender, @Ethnicity, @Name and @Age).
// TemplateSyntax::any accepts all three at once.

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "medfair/prompts/catalog.hpp"

namespace medfair::prompts {

enum class TemplateSyntax { native, qpain, healer, any };

/// Parses "native", "qpain", "healer" or "any"; throws ConfigError otherwise.
TemplateSyntax parse_syntax(std::string_view name);
std::string_view syntax_name(TemplateSyntax syntax);

enum class SlotKind {
  axis,     // an attribute axis, optionally with a named form
  name,     // the patient's first name
  pronoun,  // a pronoun field of the gender's pronoun set
};

/// One slot of a template.
struct Slot {
  SlotKind kind = SlotKind::axis;
  /// Axis name (axis slots) or pronoun field (pronoun slots); empty for names.
  std::string key;
  /// Named form of an axis value ("adjective"); empty for the plain text.
  std::string form;
  /// Whether the first letter of the output is upper-cased.
  bool capitalize = false;
  /// The slot as written ("[subject]", "Patient D", "{race}").
  std::string source_text;
  /// Byte offset of the slot in the template text.
  std::size_t offset = 0;
  /// The canonical native spelling ("{pronoun.subject}").
  std::string native() const;
};

/// A problem found while parsing, at a byte offset of the template text.
struct TemplateIssue {
  std::size_t offset = 0;
  std::string code;  // "unbalanced-bracket", "unknown-slot", "nonstandard-slot"
  std::string message;
  bool error = true;
};

/// A parsed template: alternating literal text and slots.
class Template {
 public:
  struct Piece {
    std::string text;          // literal text (empty for a slot piece)
    std::optional<Slot> slot;  // set for a slot piece
  };

  Template() = default;

  /// Parses `text`. Throws DataError for the first error (unbalanced bracket
  /// or malformed slot), naming `source` and the line and column in `text`.
  static Template parse(std::string_view text, TemplateSyntax syntax = TemplateSyntax::any,
                        const std::string& source = "template");
  /// Parses `text` and collects every issue instead of throwing; malformed
  /// slots are kept as literal text.
  static Template parse_lenient(std::string_view text, TemplateSyntax syntax, std::vector<TemplateIssue>& issues);

  /// A template of literal text with no slots.
  static Template literal(std::string text);

  const std::string& text() const { return text_; }
  const std::vector<Piece>& pieces() const { return pieces_; }
  std::vector<Slot> slots() const;
  bool empty() const { return text_.empty(); }
  bool has_slots() const;
  /// Whether some slot is of `kind` (and names `key`, when given).
  bool uses(SlotKind kind, std::string_view key = {}) const;
  /// Axes named by axis slots, plus the name axes and gender when name or
  /// pronoun slots need them.
  std::set<std::string> axes(const AttributeCatalog& catalog) const;

  /// Checks every slot against `catalog`: unknown axes, forms and pronoun
  /// fields become "unknown-slot" issues.
  std::vector<TemplateIssue> check(const AttributeCatalog& catalog) const;

 private:
  std::string text_;
  std::vector<Piece> pieces_;
};

/// Renders `tmpl` for `assignment`. Unassigned axes take their neutral text
/// (ConfigError if they have none), pronouns follow the assigned gender (the
/// neutral set when unassigned), and name slots write `name`, or the
/// catalog's neutral name when `name` is empty. A slot at the start of a
/// sentence is capitalized, an empty slot drops one adjacent space, and after
/// a plural-verb subject pronoun ("they") the auxiliaries is, was, has and
/// does become are, were, have and do.
std::string render(const Template& tmpl, const AttributeCatalog& catalog, const Assignment& assignment,
                   std::string_view name);

}  // namespace medfair::prompts
