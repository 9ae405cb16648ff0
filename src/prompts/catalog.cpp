#include "medfair/prompts/catalog.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "medfair/error.hpp"
#include "medfair/io/csv.hpp"
#include "medfair/io/jsonl.hpp"

namespace medfair::prompts {

namespace detail {
extern const char* const kDefaultAttributesJson;
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Reads an optional string field, rejecting other JSON types with the path.
std::string string_field(const nlohmann::json& object, const char* key, const std::string& where,
                         const std::string& fallback = {}) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_string()) {
    throw DataError(fmt::format("{}.{}: expected a string, found {}", where, key, it->type_name()));
  }
  return it->get<std::string>();
}

std::string required_string(const nlohmann::json& object, const char* key, const std::string& where) {
  if (!object.contains(key)) throw DataError(fmt::format("{}: missing field \"{}\"", where, key));
  auto value = string_field(object, key, where);
  if (value.empty() && std::string_view(key) != "text") {
    throw DataError(fmt::format("{}.{}: must not be empty", where, key));
  }
  return value;
}

std::vector<std::string> string_list(const nlohmann::json& object, const char* key, const std::string& where) {
  std::vector<std::string> result;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return result;
  if (!it->is_array()) throw DataError(fmt::format("{}.{}: expected a list of strings, found {}", where, key, it->type_name()));
  for (std::size_t i = 0; i < it->size(); ++i) {
    const auto& item = (*it)[i];
    if (!item.is_string()) {
      throw DataError(fmt::format("{}.{}[{}]: expected a string, found {}", where, key, i, item.type_name()));
    }
    result.push_back(item.get<std::string>());
  }
  return result;
}

const nlohmann::json& require_object(const nlohmann::json& parent, const char* key, const std::string& where) {
  auto it = parent.find(key);
  if (it == parent.end()) throw DataError(fmt::format("{}: missing field \"{}\"", where, key));
  if (!it->is_object()) throw DataError(fmt::format("{}.{}: expected an object, found {}", where, key, it->type_name()));
  return *it;
}

AttributeValue parse_value(const nlohmann::json& json, const std::string& where) {
  if (!json.is_object()) throw DataError(fmt::format("{}: expected an object, found {}", where, json.type_name()));
  AttributeValue value;
  value.id = required_string(json, "id", where);
  value.text = required_string(json, "text", where);
  if (auto it = json.find("forms"); it != json.end()) {
    if (!it->is_object()) throw DataError(fmt::format("{}.forms: expected an object of strings", where));
    for (auto form = it->begin(); form != it->end(); ++form) {
      if (!form->is_string()) throw DataError(fmt::format("{}.forms.{}: expected a string", where, form.key()));
      value.forms[form.key()] = form->get<std::string>();
    }
  }
  value.aliases = string_list(json, "aliases", where);
  value.codes = string_list(json, "codes", where);
  value.pronouns = string_field(json, "pronouns", where);
  if (auto it = json.find("weight"); it != json.end()) {
    if (!it->is_number_unsigned() || it->get<std::uint64_t>() == 0 || it->get<std::uint64_t>() > 1000000) {
      throw DataError(fmt::format("{}.weight: expected a whole number from 1 to 1000000, found {}", where, it->dump()));
    }
    value.weight = it->get<std::uint32_t>();
  }
  return value;
}

Axis parse_axis(const nlohmann::json& json, const std::string& where) {
  if (!json.is_object()) throw DataError(fmt::format("{}: expected an object, found {}", where, json.type_name()));
  Axis axis;
  axis.name = required_string(json, "name", where);
  axis.description = string_field(json, "description", where);
  if (auto it = json.find("default"); it != json.end()) axis.default_axis = it->is_boolean() && it->get<bool>();
  if (auto it = json.find("leak_check"); it != json.end()) axis.leak_check = !it->is_boolean() || it->get<bool>();
  if (auto it = json.find("neutral"); it != json.end() && !it->is_null()) {
    if (!it->is_string()) throw DataError(fmt::format("{}.neutral: expected a string or null", where));
    axis.neutral = it->get<std::string>();
  }
  auto values = json.find("values");
  if (values == json.end() || !values->is_array() || values->empty()) {
    throw DataError(fmt::format("{}.values: expected a non-empty list of values", where));
  }
  for (std::size_t i = 0; i < values->size(); ++i) {
    axis.values.push_back(parse_value((*values)[i], fmt::format("{}.values[{}]", where, i)));
  }
  axis.default_values = string_list(json, "default_values", where);
  if (axis.default_values.empty()) {
    for (const auto& value : axis.values) axis.default_values.push_back(value.id);
  }
  return axis;
}

}  // namespace

const std::string* find_value(const Assignment& assignment, std::string_view axis) {
  for (const auto& [name, value] : assignment) {
    if (name == axis) return &value;
  }
  return nullptr;
}

std::string assignment_label(const Assignment& assignment) {
  if (assignment.empty()) return "neutral";
  std::string label;
  for (const auto& [axis, value] : assignment) {
    if (!label.empty()) label += ',';
    label += axis + '=' + value;
  }
  return label;
}

const std::vector<std::string>& pronoun_fields() {
  static const std::vector<std::string> fields = {"subject", "object", "possessive", "possessive_pronoun", "reflexive"};
  return fields;
}

const std::string* PronounSet::field(std::string_view name) const {
  if (name == "subject") return &subject;
  if (name == "object") return &object;
  if (name == "possessive") return &possessive;
  if (name == "possessive_pronoun") return &possessive_pronoun;
  if (name == "reflexive") return &reflexive;
  return nullptr;
}

const AttributeValue* Axis::find(std::string_view id) const {
  for (const auto& value : values) {
    if (value.id == id) return &value;
  }
  return nullptr;
}

const AttributeValue* Axis::match(std::string_view surface) const {
  for (const auto& value : values) {
    if (iequals(value.id, surface) || iequals(value.text, surface)) return &value;
    for (const auto& [name, form] : value.forms) {
      if (iequals(form, surface)) return &value;
    }
    for (const auto& alias : value.aliases) {
      if (iequals(alias, surface)) return &value;
    }
    for (const auto& code : value.codes) {
      if (iequals(code, surface)) return &value;
    }
  }
  return nullptr;
}

const AttributeCatalog& AttributeCatalog::builtin() {
  static const AttributeCatalog catalog =
      from_json(nlohmann::json::parse(detail::kDefaultAttributesJson), "built-in data/attributes.json");
  return catalog;
}

AttributeCatalog AttributeCatalog::load(const std::filesystem::path& path) {
  std::string text = io::read_text_file(path);
  std::string_view body = io::strip_utf8_bom(text);
  io::require_valid_utf8(body, path.string());
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& error) {
    auto position = io::position_of(body, error.byte > 0 ? error.byte - 1 : 0);
    throw FormatError(fmt::format("{}:{}:{}: invalid JSON ({})", path.string(), position.line, position.column,
                                  error.what()));
  } catch (const nlohmann::json::out_of_range& error) {
    // A number beyond the range of double (1e999) raises out_of_range, not parse_error.
    throw FormatError(fmt::format("{}: invalid JSON ({})", path.string(), error.what()));
  }
  return from_json(json, path.string());
}

AttributeCatalog AttributeCatalog::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw DataError(fmt::format("{}: expected a JSON object at the top level", source));
  AttributeCatalog catalog;
  const std::string root = source + ": ";

  const auto& sets = require_object(json, "pronoun_sets", root + "catalog");
  for (auto it = sets.begin(); it != sets.end(); ++it) {
    std::string where = fmt::format("{}pronoun_sets.{}", root, it.key());
    if (!it->is_object()) throw DataError(where + ": expected an object");
    PronounSet set;
    set.id = it.key();
    set.subject = required_string(*it, "subject", where);
    set.object = required_string(*it, "object", where);
    set.possessive = required_string(*it, "possessive", where);
    set.possessive_pronoun = required_string(*it, "possessive_pronoun", where);
    set.reflexive = required_string(*it, "reflexive", where);
    if (auto plural = it->find("plural_verbs"); plural != it->end()) set.plural_verbs = plural->is_boolean() && plural->get<bool>();
    catalog.pronoun_sets_[set.id] = std::move(set);
  }

  if (auto neutral = json.find("neutral"); neutral != json.end()) {
    if (!neutral->is_object()) throw DataError(root + "neutral: expected an object with \"name\" and \"pronouns\"");
    catalog.neutral_name_ = string_field(*neutral, "name", root + "neutral", catalog.neutral_name_);
    catalog.neutral_pronoun_set_ = string_field(*neutral, "pronouns", root + "neutral", catalog.neutral_pronoun_set_);
  }

  auto axes = json.find("axes");
  if (axes == json.end() || !axes->is_array() || axes->empty()) {
    throw DataError(root + "axes: expected a non-empty list of axes");
  }
  for (std::size_t i = 0; i < axes->size(); ++i) {
    catalog.axes_.push_back(parse_axis((*axes)[i], fmt::format("{}axes[{}]", root, i)));
  }

  if (auto names = json.find("names"); names != json.end()) {
    if (!names->is_object()) throw DataError(root + "names: expected an object with \"axes\" and \"cells\"");
    catalog.name_axes_ = string_list(*names, "axes", root + "names");
    const auto& cells = require_object(*names, "cells", root + "names");
    for (auto it = cells.begin(); it != cells.end(); ++it) {
      catalog.name_cells_[it.key()] = string_list(cells, it.key().c_str(), root + "names.cells");
    }
  }
  catalog.validate(source);
  return catalog;
}

void AttributeCatalog::validate(const std::string& source) const {
  std::set<std::string> axis_names;
  for (const auto& axis : axes_) {
    if (!axis_names.insert(axis.name).second) {
      throw DataError(fmt::format("{}: axis \"{}\" is defined twice; merge the two entries", source, axis.name));
    }
    if (axis.name == "name" || axis.name == "pronoun") {
      throw DataError(fmt::format("{}: \"{}\" is reserved for name and pronoun slots; rename the axis", source, axis.name));
    }
    std::set<std::string> ids;
    const auto& first_forms = axis.values.front().forms;
    for (const auto& value : axis.values) {
      if (!ids.insert(value.id).second) {
        throw DataError(fmt::format("{}: axis \"{}\" has the value id \"{}\" twice", source, axis.name, value.id));
      }
      for (const auto& [form, text] : first_forms) {
        if (!value.forms.count(form)) {
          throw DataError(fmt::format("{}: value \"{}\" of axis \"{}\" lacks the form \"{}\" that \"{}\" defines; every "
                                      "value of an axis needs the same forms",
                                      source, value.id, axis.name, form, axis.values.front().id));
        }
      }
      if (value.forms.size() != first_forms.size()) {
        throw DataError(fmt::format("{}: value \"{}\" of axis \"{}\" defines forms that \"{}\" lacks; every value of an "
                                    "axis needs the same forms",
                                    source, value.id, axis.name, axis.values.front().id));
      }
      if (!value.pronouns.empty() && !pronoun_sets_.count(value.pronouns)) {
        throw DataError(fmt::format("{}: value \"{}\" of axis \"{}\" names the unknown pronoun set \"{}\"", source,
                                    value.id, axis.name, value.pronouns));
      }
    }
    for (const auto& id : axis.default_values) {
      if (!ids.count(id)) {
        throw DataError(fmt::format("{}: default value \"{}\" of axis \"{}\" is not one of its values", source, id, axis.name));
      }
    }
  }
  if (!pronoun_sets_.count(neutral_pronoun_set_)) {
    throw DataError(fmt::format("{}: the neutral pronoun set \"{}\" is not defined under pronoun_sets", source,
                                neutral_pronoun_set_));
  }
  for (const auto& axis : name_axes_) {
    if (!axis_names.count(axis)) {
      throw DataError(fmt::format("{}: names.axes names the unknown axis \"{}\"", source, axis));
    }
  }
  for (const auto& [cell, names] : name_cells_) {
    if (names.empty()) throw DataError(fmt::format("{}: the name list for cell \"{}\" is empty", source, cell));
  }
}

const Axis* AttributeCatalog::find_axis(std::string_view name) const {
  for (const auto& axis : axes_) {
    if (axis.name == name) return &axis;
  }
  return nullptr;
}

const Axis& AttributeCatalog::axis(std::string_view name) const {
  if (const Axis* found = find_axis(name)) return *found;
  std::string known;
  for (const auto& axis : axes_) known += (known.empty() ? "" : ", ") + axis.name;
  throw ConfigError(fmt::format("unknown attribute axis \"{}\"; the catalog defines {}", name, known));
}

const AttributeValue& AttributeCatalog::value(std::string_view axis_name, std::string_view id) const {
  const Axis& found = axis(axis_name);
  if (const AttributeValue* value = found.find(id)) return *value;
  std::string known;
  for (const auto& value : found.values) known += (known.empty() ? "" : ", ") + value.id;
  throw ConfigError(fmt::format("unknown value \"{}\" for axis \"{}\"; its values are {}", id, axis_name, known));
}

const PronounSet& AttributeCatalog::neutral_pronouns() const { return pronoun_sets_.at(neutral_pronoun_set_); }

const PronounSet& AttributeCatalog::pronouns_for(const Assignment& assignment) const {
  const std::string* gender = find_value(assignment, "gender");
  if (!gender) return neutral_pronouns();
  const AttributeValue& value = this->value("gender", *gender);
  if (value.pronouns.empty()) {
    throw ConfigError(fmt::format("gender value \"{}\" has no pronoun set; add \"pronouns\" to it in the catalog", value.id));
  }
  return pronoun_sets_.at(value.pronouns);
}

const std::vector<std::string>* AttributeCatalog::names_for(const Assignment& assignment) const {
  if (name_axes_.empty()) return nullptr;
  std::string key;
  for (const auto& axis : name_axes_) {
    const std::string* value = find_value(assignment, axis);
    if (!value) return nullptr;
    if (!key.empty()) key += '/';
    key += *value;
  }
  auto it = name_cells_.find(key);
  if (it == name_cells_.end()) {
    throw ConfigError(fmt::format("the catalog has no first names for the cell \"{}\"; add a list under names.cells "
                                  "or pass a names file",
                                  key));
  }
  return &it->second;
}

void AttributeCatalog::set_names(std::vector<std::string> axes, std::map<std::string, std::vector<std::string>> cells) {
  for (const auto& name : axes) axis(name);
  for (const auto& [cell, names] : cells) {
    if (names.empty()) throw ConfigError(fmt::format("the name list for cell \"{}\" is empty", cell));
  }
  name_axes_ = std::move(axes);
  name_cells_ = std::move(cells);
}

void AttributeCatalog::load_names_csv(const std::filesystem::path& path) {
  io::CsvTable table = io::read_csv(path);
  std::size_t name_column = table.require_column("name");
  std::vector<std::string> axes;
  std::vector<std::size_t> columns;
  for (std::size_t c = 0; c < table.header().size(); ++c) {
    if (c == name_column || table.header()[c].empty()) continue;
    const Axis* found = find_axis(table.header()[c]);
    if (!found) {
      throw DataError(fmt::format("{}:1:1: column \"{}\" is not an axis of the catalog; name columns after axes (for "
                                  "example race, gender) plus one \"name\" column",
                                  path.string(), table.header()[c]));
    }
    axes.push_back(found->name);
    columns.push_back(c);
  }
  if (axes.empty()) throw DataError(fmt::format("{}:1:1: no axis columns; add for example race and gender columns", path.string()));
  std::map<std::string, std::vector<std::string>> cells;
  for (std::size_t r = 0; r < table.row_count(); ++r) {
    std::string key;
    for (std::size_t i = 0; i < axes.size(); ++i) {
      const AttributeValue* value = axis(axes[i]).match(table.cell(r, columns[i]));
      if (!value) {
        throw DataError(fmt::format("{}: \"{}\" is not a value of axis \"{}\"", table.where(r, columns[i]),
                                    table.cell(r, columns[i]), axes[i]));
      }
      key += (i ? "/" : "") + value->id;
    }
    const std::string& name = table.cell(r, name_column);
    if (name.empty()) throw DataError(fmt::format("{}: empty name", table.where(r, name_column)));
    cells[key].push_back(name);
  }
  set_names(std::move(axes), std::move(cells));
}

void AttributeCatalog::add_axis(Axis axis) {
  if (axis.values.empty()) throw ConfigError(fmt::format("axis \"{}\" has no values", axis.name));
  if (axis.default_values.empty()) {
    for (const auto& value : axis.values) axis.default_values.push_back(value.id);
  }
  auto it = std::find_if(axes_.begin(), axes_.end(), [&](const Axis& a) { return a.name == axis.name; });
  if (it != axes_.end()) {
    *it = std::move(axis);
  } else {
    axes_.push_back(std::move(axis));
  }
  validate("catalog after add_axis");
}

nlohmann::json AttributeCatalog::to_json() const {
  nlohmann::json json;
  json["format"] = "medfair-attributes";
  json["version"] = 1;
  json["neutral"] = {{"name", neutral_name_}, {"pronouns", neutral_pronoun_set_}};
  for (const auto& [id, set] : pronoun_sets_) {
    auto& entry = json["pronoun_sets"][id];
    for (const auto& field : pronoun_fields()) entry[field] = *set.field(field);
    entry["plural_verbs"] = set.plural_verbs;
  }
  json["axes"] = nlohmann::json::array();
  for (const auto& axis : axes_) {
    nlohmann::json entry = {{"name", axis.name}, {"description", axis.description}, {"default", axis.default_axis},
                            {"leak_check", axis.leak_check}, {"default_values", axis.default_values}};
    entry["neutral"] = axis.neutral ? nlohmann::json(*axis.neutral) : nlohmann::json();
    for (const auto& value : axis.values) {
      nlohmann::json v = {{"id", value.id}, {"text", value.text}, {"weight", value.weight}};
      if (!value.forms.empty()) v["forms"] = value.forms;
      if (!value.aliases.empty()) v["aliases"] = value.aliases;
      if (!value.codes.empty()) v["codes"] = value.codes;
      if (!value.pronouns.empty()) v["pronouns"] = value.pronouns;
      entry["values"].push_back(v);
    }
    json["axes"].push_back(entry);
  }
  json["names"] = {{"axes", name_axes_}, {"cells", name_cells_}};
  return json;
}

}  // namespace medfair::prompts
