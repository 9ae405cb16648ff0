// Binds the preference builder, its teachers, the generation cache and the
// train/test split by vignette. Generation and network calls release the GIL.

#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.hpp"
#include "medfair/align/generation_cache.hpp"
#include "medfair/align/preference_builder.hpp"
#include "medfair/align/teacher.hpp"
#include "medfair/error.hpp"
#include "medfair/io/jsonl.hpp"
#include "medfair/net/openai.hpp"
#include "medfair/prompts/split.hpp"

namespace medfair::python {

namespace {

using namespace medfair::align;

std::string pairing_name(Pairing pairing) { return pairing == Pairing::ranked ? "ranked" : "reference"; }
std::string sees_name(TeacherSees sees) { return sees == TeacherSees::neutral ? "neutral" : "modified"; }
std::string format_name(OutputFormat format) { return format == OutputFormat::plain ? "plain" : "conversational"; }

void bind_teachers(py::module_& m) {
  py::class_<GenerationCache, std::shared_ptr<GenerationCache>>(
      m, "GenerationCache", "A SQLite file of generations keyed by model, rendered prompt, settings and seed.")
      .def(py::init<const std::filesystem::path&>(), py::arg("path"))
      .def_property_readonly("path", &GenerationCache::path)
      .def("__len__", &GenerationCache::size)
      .def_property_readonly("hits", &GenerationCache::hits, "Lookups answered from the cache since it was opened.");

  py::class_<Teacher, std::shared_ptr<Teacher>>(m, "Teacher", "Writes the reference answers of a preference run.")
      .def_property_readonly("kind", &Teacher::kind)
      .def_property_readonly("model_id", &Teacher::model_id)
      .def(
          "answer",
          [](const Teacher& teacher, const std::vector<std::string>& vignette_ids,
             const std::vector<Conversation>& conversations, uint64_t seed) {
            if (vignette_ids.size() != conversations.size()) {
              throw ConfigError("Teacher.answer: vignette_ids and conversations differ in length");
            }
            std::vector<TeacherRequest> requests;
            for (size_t i = 0; i < conversations.size(); ++i) {
              requests.push_back({vignette_ids[i], conversations[i], seed});
            }
            py::gil_scoped_release release;
            return teacher.answer(requests);
          },
          py::arg("vignette_ids"), py::arg("conversations"), py::arg("seed") = 0,
          "Return one reference answer per conversation.");

  py::class_<LocalTeacher, Teacher, std::shared_ptr<LocalTeacher>>(m, "LocalTeacher",
                                                                   "A CausalLM that writes the references.")
      .def(py::init([](const CausalLM& model, const SamplingOptions& sampling,
                       std::shared_ptr<GenerationCache> cache, bool is_self) {
             py::gil_scoped_release release;  // hashing the weights takes a moment
             return std::make_shared<LocalTeacher>(model, sampling, std::move(cache), std::string(), is_self);
           }),
           py::arg("model"), py::arg("sampling"), py::arg("cache") = nullptr, py::arg("is_self") = false,
           py::keep_alive<1, 2>());

  py::class_<EndpointTeacher, Teacher, std::shared_ptr<EndpointTeacher>>(
      m, "EndpointTeacher", "A model behind an OpenAI-compatible chat completions endpoint.")
      .def(py::init<net::EndpointOptions, SamplingOptions, std::shared_ptr<GenerationCache>>(), py::arg("endpoint"),
           py::arg("sampling"), py::arg("cache") = nullptr);

  py::class_<FileTeacher, Teacher, std::shared_ptr<FileTeacher>>(
      m, "FileTeacher", "References read from a JSONL file of {vignette_id, reference[, prompt]} objects.")
      .def(py::init<const std::filesystem::path&>(), py::arg("path"))
      .def("__len__", &FileTeacher::size);
}

void bind_builder(py::module_& m) {
  py::class_<PreferenceOptions>(m, "PreferenceOptions", "Options of the preference builder.")
      .def(py::init<>())
      .def_readwrite("candidates", &PreferenceOptions::candidates)
      .def_property(
          "pairing", [](const PreferenceOptions& o) { return pairing_name(o.pairing); },
          [](PreferenceOptions& o, const std::string& name) { o.pairing = parse_pairing(name); })
      .def_readwrite("min_margin", &PreferenceOptions::min_margin)
      .def_readwrite("drop_identical", &PreferenceOptions::drop_identical)
      .def_readwrite("drop_off_format", &PreferenceOptions::drop_off_format)
      .def_readwrite("sampling", &PreferenceOptions::sampling)
      .def_property(
          "teacher_sees", [](const PreferenceOptions& o) { return sees_name(o.teacher_sees); },
          [](PreferenceOptions& o, const std::string& name) { o.teacher_sees = parse_teacher_sees(name); })
      .def_readwrite("seed", &PreferenceOptions::seed)
      .def_readwrite("draws_per_vignette", &PreferenceOptions::draws_per_vignette)
      .def_property(
          "format", [](const PreferenceOptions& o) { return format_name(o.format); },
          [](PreferenceOptions& o, const std::string& name) { o.format = parse_output_format(name); })
      .def_readwrite("vignettes", &PreferenceOptions::vignettes)
      .def_property(
          "axes", [](const PreferenceOptions& o) { return o.prompts.axes; },
          [](PreferenceOptions& o, const std::vector<std::string>& axes) { o.prompts.axes = axes; })
      .def_property(
          "prompting", [](const PreferenceOptions& o) { return std::string(prompts::format_name(o.prompts.format)); },
          [](PreferenceOptions& o, const std::string& name) { o.prompts.format = prompts::parse_format(name); })
      .def_readwrite("prompts_per_step", &PreferenceOptions::prompts_per_step);

  m.def(
      "_build_preferences",
      [](const CausalLM& target, const Teacher& teacher, const SentenceEncoder& encoder, const prompts::Task& task,
         const std::filesystem::path& out, const PreferenceOptions& options, std::shared_ptr<GenerationCache> cache,
         std::optional<py::function> progress) {
        PreferenceProgress callback;
        if (progress) {
          py::function function = *progress;
          callback = [function](size_t done, size_t total) {
            py::gil_scoped_acquire gil;
            function(done, total);
          };
        }
        PreferenceResult result;
        {
          py::gil_scoped_release release;
          PreferenceBuilder builder(target, teacher, encoder, options, std::move(cache));
          result = builder.run(task, out, callback);
        }
        py::dict counts;
        counts["prompts"] = result.prompts;
        counts["resumed"] = result.resumed;
        counts["dropped_identical"] = result.dropped_identical;
        counts["dropped_margin"] = result.dropped_margin;
        counts["dropped_format"] = result.dropped_format;
        std::string records;
        for (const auto& record : result.records) records += io::to_jsonl_line(record) + "\n";
        return py::make_tuple(counts, records);
      },
      py::arg("target"), py::arg("teacher"), py::arg("encoder"), py::arg("task"), py::arg("out"), py::arg("options"),
      py::arg("cache") = nullptr, py::arg("progress") = py::none());
}

}  // namespace

void bind_prefs(py::module_& m) {
  py::class_<prompts::VignetteSplit>(m, "VignetteSplit", "Vignette ids on the train and test side of a split.")
      .def_readonly("train", &prompts::VignetteSplit::train)
      .def_readonly("test", &prompts::VignetteSplit::test)
      .def("__iter__",
           [](const prompts::VignetteSplit& split) {
             return py::iter(py::make_tuple(split.train, split.test));
           })
      .def("__repr__", [](const prompts::VignetteSplit& split) {
        return py::str("VignetteSplit(train={} ids, test={} ids)").format(split.train.size(), split.test.size());
      });
  m.def("split_vignettes", &prompts::split_vignettes, py::arg("ids"), py::arg("test_fraction") = 0.5,
        py::arg("seed") = 0,
        "Split vignette ids into train and test by a seeded hash of each id; returns VignetteSplit (train, test).");
  bind_teachers(m);
  bind_builder(m);
}

}  // namespace medfair::python
