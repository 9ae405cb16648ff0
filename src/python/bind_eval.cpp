// Binds FairnessEvaluator. Records and summaries cross as JSON text and are
// parsed by the Python wrapper in medfair/audit.py.

#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <torch/csrc/utils/pybind.h>

#include "bindings.hpp"
#include "medfair/eval/evaluator.hpp"
#include "medfair/eval/remote_scorer.hpp"

namespace medfair::python {

namespace {

// Wraps a Python callable so C++ can call it from a thread without the GIL.
eval::ProgressCallback python_progress(const std::optional<py::function>& callback) {
  if (!callback) return {};
  py::function function = *callback;
  return [function](size_t done, size_t total) {
    py::gil_scoped_acquire gil;
    function(done, total);
  };
}

std::string records_to_json(const std::vector<nlohmann::json>& records) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& record : records) array.push_back(record);
  return array.dump();
}

eval::AuditOptions audit_options(const prompts::PromptModifier& modifier, std::vector<std::string> vignettes,
                                 size_t bootstrap_replicates, double confidence, uint64_t bootstrap_seed,
                                 std::vector<std::string> reference_group) {
  eval::AuditOptions options;
  options.prompts = modifier.options();
  options.catalog = std::make_shared<prompts::AttributeCatalog>(modifier.catalog());
  options.vignettes = std::move(vignettes);
  options.bootstrap_replicates = bootstrap_replicates;
  options.confidence = confidence;
  options.bootstrap_seed = bootstrap_seed;
  options.reference_group = std::move(reference_group);
  return options;
}

void bind_scorers(py::module_& m) {
  py::class_<eval::SetScorer, std::shared_ptr<eval::SetScorer>>(
      m, "SetScorer", "Scores the answer options of counterfactual sets (base of the remote scorers).")
      .def("describe", [](const eval::SetScorer& scorer) { return scorer.describe().dump(); });

  py::class_<eval::CompletionsOptionScorer, eval::SetScorer, std::shared_ptr<eval::CompletionsOptionScorer>>(
      m, "CompletionsOptionScorer",
      "Scores options from a completions endpoint's echoed prompt log-probabilities (vLLM).")
      .def(py::init([](net::EndpointOptions endpoint, net::ScoringOptions scoring, std::string chat_template,
                       std::string bos_token) {
             return std::make_shared<eval::CompletionsOptionScorer>(eval::CompletionsScorerOptions{
                 std::move(endpoint), scoring, std::move(chat_template), std::move(bos_token)});
           }),
           py::arg("endpoint"), py::arg("scoring") = net::ScoringOptions{}, py::arg("chat_template") = "chatml",
           py::arg("bos_token") = "");

  py::class_<eval::SampledOptionScorer, eval::SetScorer, std::shared_ptr<eval::SampledOptionScorer>>(
      m, "SampledOptionScorer", "Estimates option probabilities from answers sampled from a chat endpoint.")
      .def(py::init([](net::EndpointOptions endpoint, int samples, net::GenerationParams params) {
             return std::make_shared<eval::SampledOptionScorer>(
                 eval::SampledScorerOptions{std::move(endpoint), samples, std::move(params)});
           }),
           py::arg("endpoint"), py::arg("samples") = 10,
           py::arg("params") = eval::SampledScorerOptions{}.params);

  m.def(
      "parse_option",
      [](std::string_view answer, const std::vector<std::string>& option_ids, std::string_view answer_prefix) {
        std::vector<prompts::AnswerOption> options;
        for (const auto& id : option_ids) options.push_back(prompts::make_option(id));
        return eval::parse_option(answer, options, answer_prefix);
      },
      py::arg("answer"), py::arg("options"), py::arg("answer_prefix") = "",
      "Index of the option (given by id) that a free-text answer names, or None.");
}

}  // namespace

void bind_eval(py::module_& m) {
  bind_scorers(m);
  py::class_<eval::FairnessEvaluator>(m, "FairnessEvaluator",
                                       "Scores every counterfactual prompt of a task and summarises the gaps.")
      .def(py::init([](std::shared_ptr<CausalLM> model, const prompts::PromptModifier& modifier, int64_t batch_size,
                       bool reuse_prefix, std::vector<std::string> vignettes, size_t bootstrap_replicates,
                       double confidence, uint64_t bootstrap_seed, std::vector<std::string> reference_group) {
             eval::AuditOptions options;
             options.prompts = modifier.options();
             options.catalog = std::make_shared<prompts::AttributeCatalog>(modifier.catalog());
             options.scorer.batch_size = batch_size;
             options.scorer.reuse_prefix = reuse_prefix;
             options.vignettes = std::move(vignettes);
             options.bootstrap_replicates = bootstrap_replicates;
             options.confidence = confidence;
             options.bootstrap_seed = bootstrap_seed;
             options.reference_group = std::move(reference_group);
             return std::make_unique<eval::FairnessEvaluator>(*model, std::move(options));
           }),
           py::arg("model"), py::arg("modifier"), py::arg("batch_size") = 16, py::arg("reuse_prefix") = true,
           py::arg("vignettes") = std::vector<std::string>(), py::arg("bootstrap_replicates") = 2000,
           py::arg("confidence") = 0.95, py::arg("bootstrap_seed") = 0,
           py::arg("reference_group") = std::vector<std::string>(),
           // The evaluator keeps a reference to the model.
           py::keep_alive<1, 2>())
      .def(py::init([](std::shared_ptr<eval::SetScorer> scorer, const prompts::PromptModifier& modifier,
                       std::vector<std::string> vignettes, size_t bootstrap_replicates, double confidence,
                       uint64_t bootstrap_seed, std::vector<std::string> reference_group) {
             return std::make_unique<eval::FairnessEvaluator>(
                 std::move(scorer), audit_options(modifier, std::move(vignettes), bootstrap_replicates, confidence,
                                                  bootstrap_seed, std::move(reference_group)));
           }),
           py::arg("scorer"), py::arg("modifier"), py::arg("vignettes") = std::vector<std::string>(),
           py::arg("bootstrap_replicates") = 2000, py::arg("confidence") = 0.95, py::arg("bootstrap_seed") = 0,
           py::arg("reference_group") = std::vector<std::string>())
      .def(
          "_run",
          [](const eval::FairnessEvaluator& evaluator, const prompts::Task& task, const std::filesystem::path& out_dir,
             std::optional<py::function> progress) {
            eval::ProgressCallback callback = python_progress(progress);
            eval::AuditResult result;
            {
              py::gil_scoped_release release;
              result = evaluator.run(task, out_dir, callback);
            }
            return py::make_tuple(result.summary.dump(), result.resumed_records);
          },
          py::arg("task"), py::arg("out_dir"), py::arg("progress") = py::none())
      .def(
          "_score",
          [](const eval::FairnessEvaluator& evaluator, const std::vector<prompts::PromptRecord>& prompts,
             std::optional<py::function> progress) {
            eval::ProgressCallback callback = python_progress(progress);
            std::vector<nlohmann::json> records;
            {
              py::gil_scoped_release release;
              records = evaluator.score(prompts, callback);
            }
            return records_to_json(records);
          },
          py::arg("prompts"), py::arg("progress") = py::none());

  m.def("_read_results",
        [](const std::filesystem::path& path) { return records_to_json(eval::read_results(path)); },
        py::arg("path"));
  m.def("sha256_file", &eval::sha256_file, py::arg("path"),
        "Hex SHA-256 of a file, or of a model folder's .safetensors and .json files in name order.");
}

}  // namespace medfair::python
