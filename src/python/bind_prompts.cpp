// Binds the prompt layer: attribute catalog, templates, tasks and loaders,
// PromptModifier with its prompt sets, and the template check.

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.hpp"
#include "medfair/error.hpp"
#include "medfair/io/csv.hpp"
#include "medfair/prompts/catalog.hpp"
#include "medfair/prompts/lint.hpp"
#include "medfair/prompts/loaders.hpp"
#include "medfair/prompts/modifier.hpp"
#include "medfair/prompts/task.hpp"
#include "medfair/prompts/template.hpp"

namespace medfair::python {

namespace {

using namespace medfair::prompts;

// JSON crosses into Python through the json module, which keeps key order.
py::object to_python(const nlohmann::ordered_json& json) {
  return py::module_::import("json").attr("loads")(json.dump());
}

py::object to_python(const nlohmann::json& json) { return py::module_::import("json").attr("loads")(json.dump()); }

py::dict assignment_dict(const Assignment& assignment) {
  py::dict out;
  for (const auto& [axis, value] : assignment) out[py::str(axis)] = value;
  return out;
}

Assignment assignment_from(const py::dict& attributes) {
  Assignment assignment;
  for (const auto& [axis, value] : attributes) assignment.emplace_back(py::cast<std::string>(axis), py::cast<std::string>(value));
  return assignment;
}

py::list conversation_list(const Conversation& conversation) {
  py::list out;
  for (const auto& message : conversation) {
    py::dict entry;
    entry["role"] = message.role;
    entry["content"] = message.content;
    out.append(entry);
  }
  return out;
}

// A list of prompt records with export helpers.
struct PromptSet {
  std::vector<PromptRecord> records;
};

const AttributeCatalog& catalog_or_builtin(const AttributeCatalog* catalog) {
  return catalog ? *catalog : AttributeCatalog::builtin();
}

}  // namespace

void bind_prompts(py::module_& m) {
  py::class_<AttributeCatalog>(m, "AttributeCatalog",
                               "Protected-attribute axes, surface forms, pronoun sets and first names.")
      .def_static("builtin", &AttributeCatalog::builtin, py::return_value_policy::copy,
                  "The default catalog compiled from data/attributes.json.")
      .def_static("load", &AttributeCatalog::load, py::arg("path"), "Load a catalog JSON file.")
      .def_property_readonly("axis_names",
                             [](const AttributeCatalog& c) {
                               std::vector<std::string> names;
                               for (const auto& axis : c.axes()) names.push_back(axis.name);
                               return names;
                             })
      .def("values", [](const AttributeCatalog& c, const std::string& axis) {
        std::vector<std::string> ids;
        for (const auto& value : c.axis(axis).values) ids.push_back(value.id);
        return ids;
      }, py::arg("axis"), "Value ids of an axis.")
      .def("default_values", [](const AttributeCatalog& c, const std::string& axis) { return c.axis(axis).default_values; },
           py::arg("axis"))
      .def("text", [](const AttributeCatalog& c, const std::string& axis, const std::string& id) { return c.value(axis, id).text; },
           py::arg("axis"), py::arg("value"), "The surface form a plain slot writes for a value.")
      .def("names", [](const AttributeCatalog& c, const py::dict& attributes) {
        const auto* names = c.names_for(assignment_from(attributes));
        return names ? *names : std::vector<std::string>();
      }, py::arg("attributes"), "First names of the cell of an assignment.")
      .def("pronouns", [](const AttributeCatalog& c, const py::dict& attributes) {
        const PronounSet& set = c.pronouns_for(assignment_from(attributes));
        py::dict out;
        for (const auto& field : pronoun_fields()) out[py::str(field)] = *set.field(field);
        return out;
      }, py::arg("attributes"))
      .def("set_names", &AttributeCatalog::set_names, py::arg("axes"), py::arg("cells"),
           "Replace the name lists: cells map 'race/gender' keys to names.")
      .def("load_names_csv", &AttributeCatalog::load_names_csv, py::arg("path"))
      .def("demographic_words", [](const AttributeCatalog& c) { return demographic_words(c); })
      .def("to_dict", [](const AttributeCatalog& c) { return to_python(c.to_json()); });

  py::class_<Template>(m, "Template", "A vignette template parsed into text and slots.")
      .def(py::init([](const std::string& text, const std::string& syntax) {
             return Template::parse(text, parse_syntax(syntax));
           }),
           py::arg("text"), py::arg("syntax") = "any")
      .def_property_readonly("text", &Template::text)
      .def_property_readonly("slots", [](const Template& t) {
        std::vector<std::string> slots;
        for (const auto& slot : t.slots()) slots.push_back(slot.native());
        return slots;
      }, "Slots in their native spelling, in order.");

  py::class_<Vignette>(m, "Vignette")
      .def_readonly("id", &Vignette::id)
      .def_readonly("group", &Vignette::group)
      .def_readonly("origin", &Vignette::origin)
      .def_property_readonly("text", [](const Vignette& v) { return v.text.text(); })
      .def_property_readonly("question", [](const Vignette& v) { return v.question.text(); })
      .def_readonly("reference", &Vignette::reference)
      .def_property_readonly("stages", [](const Vignette& v) {
        std::vector<std::string> ids;
        for (const auto& stage : v.stages) ids.push_back(stage.id);
        return ids;
      })
      .def_property_readonly("options", [](const Vignette& v) {
        std::vector<std::string> ids;
        for (const auto& option : v.stages.front().options) ids.push_back(option.id);
        return ids;
      }, "Option ids of the first stage.")
      .def_property_readonly("variant_count", [](const Vignette& v) { return v.variants.size(); })
      .def_property_readonly("variants", [](const Vignette& v) {
        py::list out;
        for (const auto& variant : v.variants) out.append(assignment_dict(variant.attributes));
        return out;
      });

  py::class_<Task>(m, "Task", "A clinical task: vignettes, questions, options and reference answers.")
      .def_readonly("name", &Task::name)
      .def_readonly("description", &Task::description)
      .def_readonly("system_prompt", &Task::system_prompt)
      .def_readonly("axes", &Task::axes)
      .def_readonly("vignettes", &Task::vignettes)
      .def("vignette", &Task::vignette, py::arg("id"), py::return_value_policy::reference_internal)
      .def("__len__", [](const Task& t) { return t.vignettes.size(); });

  m.def("load_task", [](const std::string& name, const std::filesystem::path& path, const AttributeCatalog* catalog) {
    return load_task(name, path, catalog_or_builtin(catalog));
  }, py::arg("name"), py::arg("path"), py::arg("catalog") = nullptr,
        "Load 'qpain', 'nurse', 'healer' (a data folder or the file) or 'generic' (a CSV or JSONL file).");
  m.def("load_qpain", &load_qpain, py::arg("folder"));
  m.def("load_nurse", [](const std::filesystem::path& path, const AttributeCatalog* catalog) {
    return load_nurse(path, catalog_or_builtin(catalog));
  }, py::arg("path"), py::arg("catalog") = nullptr);
  m.def("load_healer", &load_healer, py::arg("folder"));
  m.def("load_generic", [](const std::filesystem::path& path, const AttributeCatalog* catalog, const std::string& name) {
    return load_generic(path, catalog_or_builtin(catalog), name);
  }, py::arg("path"), py::arg("catalog") = nullptr, py::arg("name") = "");
  m.def("parse_option_list", &parse_option_list, py::arg("text"), py::arg("where") = "option list");

  py::class_<PromptRecord>(m, "PromptRecord", "One rendered prompt of one vignette under one attribute assignment.")
      .def_readonly("prompt_id", &PromptRecord::prompt_id)
      .def_readonly("task", &PromptRecord::task)
      .def_readonly("vignette_id", &PromptRecord::vignette_id)
      .def_readonly("set_id", &PromptRecord::set_id)
      .def_readonly("group", &PromptRecord::group)
      .def_readonly("name", &PromptRecord::name)
      .def_property_readonly("format", [](const PromptRecord& r) { return std::string(format_name(r.format)); })
      .def_property_readonly("attributes", [](const PromptRecord& r) { return assignment_dict(r.attributes); })
      .def_property_readonly("prompt", &PromptRecord::prompt_text)
      .def_property_readonly("conversation", [](const PromptRecord& r) {
        return r.stages.empty() ? py::list() : conversation_list(r.stages.front().conversation);
      }, "Messages of the first stage as dicts with role and content.")
      .def("to_dict", [](const PromptRecord& r) { return to_python(r.to_json()); });

  py::class_<PromptSet>(m, "PromptSet", "Rendered prompts; export with to_records, to_dataframe or write_jsonl.")
      .def("__len__", [](const PromptSet& s) { return s.records.size(); })
      .def("__getitem__", [](const PromptSet& s, std::ptrdiff_t i) {
        auto n = static_cast<std::ptrdiff_t>(s.records.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) throw py::index_error("prompt index out of range");
        return s.records[static_cast<std::size_t>(i)];
      })
      .def("__iter__", [](const PromptSet& s) { return py::make_iterator(s.records.begin(), s.records.end()); },
           py::keep_alive<0, 1>())
      .def("to_records", [](const PromptSet& s) {
        py::list out;
        for (const auto& record : s.records) out.append(to_python(record.to_json()));
        return out;
      }, "One dict per prompt, as in the JSONL export.")
      .def("write_jsonl", [](const PromptSet& s, const std::filesystem::path& path) { write_prompts_jsonl(path, s.records); },
           py::arg("path"));

  py::class_<PromptModifier>(m, "PromptModifier",
                             "Renders counterfactual, randomly modified or neutral prompts for a task.")
      .def(py::init([](const AttributeCatalog* catalog, std::vector<std::string> axes,
                       std::map<std::string, std::vector<std::string>> values, std::map<std::string, std::string> fixed,
                       const std::string& grid, std::uint64_t seed, const std::string& format, std::size_t shots,
                       std::size_t draws_per_vignette, bool use_names, bool system_message) {
             ModifierOptions options;
             options.axes = std::move(axes);
             options.values = std::move(values);
             options.fixed = std::move(fixed);
             if (grid == "intersectional") {
               options.grid = GridMode::intersectional;
             } else if (grid == "marginal") {
               options.grid = GridMode::marginal;
             } else {
               throw ConfigError("grid must be \"intersectional\" or \"marginal\", not \"" + grid + "\"");
             }
             options.seed = seed;
             options.format = parse_format(format);
             options.shots = shots;
             options.draws_per_vignette = draws_per_vignette;
             options.use_names = use_names;
             options.system_message = system_message;
             return PromptModifier(catalog_or_builtin(catalog), std::move(options));
           }),
           py::arg("catalog") = nullptr, py::arg("axes") = std::vector<std::string>(),
           py::arg("values") = std::map<std::string, std::vector<std::string>>(),
           py::arg("fixed") = std::map<std::string, std::string>(), py::arg("grid") = "intersectional",
           py::arg("seed") = 0, py::arg("format") = "zero_shot", py::arg("shots") = 2,
           py::arg("draws_per_vignette") = 1, py::arg("use_names") = true, py::arg("system_message") = true)
      .def_property_readonly("catalog", &PromptModifier::catalog, py::return_value_policy::reference_internal)
      .def("grid", [](const PromptModifier& p, const std::vector<std::string>& axes) {
        py::list out;
        for (const auto& cell : p.grid(axes)) out.append(assignment_dict(cell));
        return out;
      }, py::arg("axes") = std::vector<std::string>{"race", "gender"})
      .def("render", [](const PromptModifier& p, const std::string& text, const py::dict& attributes,
                        const std::string& name, const std::string& syntax) {
        return p.render(Template::parse(text, parse_syntax(syntax)), assignment_from(attributes), name);
      }, py::arg("template"), py::arg("attributes"), py::arg("name") = "", py::arg("syntax") = "any")
      .def("render_neutral", [](const PromptModifier& p, const std::string& text, const std::string& syntax) {
        return p.render_neutral(Template::parse(text, parse_syntax(syntax)));
      }, py::arg("template"), py::arg("syntax") = "any")
      .def("counterfactuals", [](const PromptModifier& p, const Task& t) { return PromptSet{p.counterfactuals(t)}; },
           py::arg("task"), py::call_guard<py::gil_scoped_release>())
      .def("randomized", [](const PromptModifier& p, const Task& t) { return PromptSet{p.randomized(t)}; },
           py::arg("task"), py::call_guard<py::gil_scoped_release>())
      .def("neutral", [](const PromptModifier& p, const Task& t) { return PromptSet{p.neutral(t)}; }, py::arg("task"),
           py::call_guard<py::gil_scoped_release>());

  py::class_<LintIssue>(m, "LintIssue")
      .def_readonly("file", &LintIssue::file)
      .def_readonly("line", &LintIssue::line)
      .def_readonly("column", &LintIssue::column)
      .def_property_readonly("severity",
                             [](const LintIssue& i) { return i.severity == Severity::error ? "error" : "warning"; })
      .def_readonly("code", &LintIssue::code)
      .def_readonly("message", &LintIssue::message)
      .def("__str__", &LintIssue::to_string)
      .def("__repr__", &LintIssue::to_string);

  m.def("_read_csv", [](const std::filesystem::path& path) {
    io::CsvTable table = io::read_csv(path);
    return std::make_pair(table.header(), table.rows());
  }, py::arg("path"), "Header and rows as the C++ CSV reader parses them (for tests).");

  m.def("lint_file", [](const std::filesystem::path& path, bool strict, const std::string& syntax,
                        const AttributeCatalog* catalog) {
    LintOptions options;
    options.strict = strict;
    if (!syntax.empty()) options.syntax = parse_syntax(syntax);
    return lint_file(path, catalog_or_builtin(catalog), options);
  }, py::arg("path"), py::arg("strict") = false, py::arg("syntax") = "", py::arg("catalog") = nullptr,
        "Check the templates of a file; returns LintIssue objects.");
}

}  // namespace medfair::python
