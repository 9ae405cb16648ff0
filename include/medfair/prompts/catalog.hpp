#pragma once
// The attribute catalog: the protected-attribute axes, their values and the
// words that express them (surface forms, pronouns, first names). It is loaded
// from a JSON file that users edit; data/attributes.json is the default and is
// compiled into the library. The format is documented in docs/prompts.md.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace medfair::prompts {

/// The attribute values of one prompt, as (axis, value id) pairs in the order
/// of the axes. An axis that is absent is unassigned and renders neutrally.
using Assignment = std::vector<std::pair<std::string, std::string>>;

/// The value id assigned to `axis`, or nullptr.
const std::string* find_value(const Assignment& assignment, std::string_view axis);

/// "race=black,gender=female", or "neutral" for an empty assignment.
std::string assignment_label(const Assignment& assignment);

/// Personal pronouns of one gender value.
struct PronounSet {
  std::string id;
  std::string subject;             // she
  std::string object;              // her
  std::string possessive;          // her (determiner: "her back")
  std::string possessive_pronoun;  // hers
  std::string reflexive;           // herself
  /// Whether verbs after the subject take the plural form ("they are").
  bool plural_verbs = false;

  /// The pronoun for a field name (subject, object, possessive,
  /// possessive_pronoun, reflexive), or nullptr for an unknown field.
  const std::string* field(std::string_view name) const;
};

/// The pronoun fields a template may name, in documentation order.
const std::vector<std::string>& pronoun_fields();

/// One value of an axis.
struct AttributeValue {
  /// Stable identifier used in assignments, ids and exports ("black").
  std::string id;
  /// Surface form written by a plain slot ("Black").
  std::string text;
  /// Named alternative forms ("adjective" -> "female"); every value of an
  /// axis defines the same names.
  std::map<std::string, std::string> forms;
  /// Other words for the value, matched when mapping expanded data and when
  /// looking for demographic words left outside slots ("African-American").
  std::vector<std::string> aliases;
  /// Short codes matched only when mapping expanded data ("F").
  std::vector<std::string> codes;
  /// Pronoun set id (gender values only).
  std::string pronouns;
  /// Relative frequency in random modification (default 1).
  std::uint32_t weight = 1;
};

/// One protected-attribute axis.
struct Axis {
  std::string name;
  std::string description;
  /// Whether the axis is one of the default axes (race, ethnicity, gender).
  bool default_axis = false;
  /// Text written for the axis when it is unassigned; nullopt means the axis
  /// has no neutral form and must be assigned or fixed.
  std::optional<std::string> neutral;
  /// Whether its words count as demographic leaks in the template check.
  bool leak_check = true;
  std::vector<AttributeValue> values;
  /// Values used when a caller selects the axis without listing values.
  std::vector<std::string> default_values;

  const AttributeValue* find(std::string_view id) const;
  /// The value whose id, text, form, alias or code equals `surface`, ignoring
  /// ASCII case, or nullptr.
  const AttributeValue* match(std::string_view surface) const;
};

/// Axes, pronoun sets and name lists.
class AttributeCatalog {
 public:
  /// The catalog compiled from data/attributes.json.
  static const AttributeCatalog& builtin();
  /// Loads a catalog file. Throws IOError, FormatError (invalid JSON) or
  /// DataError (a missing or inconsistent field, naming its JSON path).
  static AttributeCatalog load(const std::filesystem::path& path);
  /// Builds a catalog from parsed JSON; `source` names it in messages.
  static AttributeCatalog from_json(const nlohmann::json& json, const std::string& source);

  const std::vector<Axis>& axes() const { return axes_; }
  const Axis* find_axis(std::string_view name) const;
  /// The axis named `name`. Throws ConfigError listing the known axes.
  const Axis& axis(std::string_view name) const;
  /// The value `id` of axis `name`. Throws ConfigError listing its values.
  const AttributeValue& value(std::string_view axis_name, std::string_view id) const;

  const std::map<std::string, PronounSet>& pronoun_sets() const { return pronoun_sets_; }
  /// The pronouns for an assignment: those of its gender value, or the
  /// neutral set when gender is unassigned.
  const PronounSet& pronouns_for(const Assignment& assignment) const;
  const PronounSet& neutral_pronouns() const;
  /// The text that replaces a name slot in neutral prompts ("the patient").
  const std::string& neutral_name() const { return neutral_name_; }

  /// The axes whose values select a name list (default race, gender).
  const std::vector<std::string>& name_axes() const { return name_axes_; }
  /// Name lists keyed by the value ids of the name axes joined with '/'.
  const std::map<std::string, std::vector<std::string>>& name_cells() const { return name_cells_; }
  /// The names for the cell of `assignment`, or nullptr when a name axis is
  /// unassigned. Throws ConfigError when the cell has no list.
  const std::vector<std::string>* names_for(const Assignment& assignment) const;
  /// Replaces the name lists.
  void set_names(std::vector<std::string> axes, std::map<std::string, std::vector<std::string>> cells);
  /// Replaces the name lists from a CSV file with one column per name axis
  /// (value ids or surface forms) and a "name" column.
  void load_names_csv(const std::filesystem::path& path);

  /// Adds an axis or replaces the one with the same name.
  void add_axis(Axis axis);

  /// The catalog as JSON in the file format.
  nlohmann::json to_json() const;

 private:
  // Catalogs come from builtin(), load() or from_json(), so an empty one is
  // never passed by accident.
  AttributeCatalog() = default;
  void validate(const std::string& source) const;

  std::vector<Axis> axes_;
  std::map<std::string, PronounSet> pronoun_sets_;
  std::string neutral_pronoun_set_ = "they";
  std::string neutral_name_ = "the patient";
  std::vector<std::string> name_axes_;
  std::map<std::string, std::vector<std::string>> name_cells_;
};

}  // namespace medfair::prompts
