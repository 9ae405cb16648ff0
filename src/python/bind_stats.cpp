// Binds the stats layer as the submodule medfair._core.stats. Results come
// back as plain dicts, so tests and reports can compare them with scipy and
// statsmodels without wrapper classes.

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "medfair/error.hpp"
#include "medfair/stats/bootstrap.hpp"
#include "medfair/stats/fairness.hpp"
#include "medfair/stats/hypothesis.hpp"
#include "medfair/stats/mixed_model.hpp"

namespace medfair::python {

namespace {

using namespace medfair::stats;

py::object json_to_python(const nlohmann::json& value) {
  // Leaked on purpose: destroying a Python object after the interpreter has
  // finalized would crash at process exit.
  static auto* loads = new py::object(py::module_::import("json").attr("loads"));
  return (*loads)(value.dump());
}

py::dict wilcoxon_dict(const WilcoxonResult& r) {
  py::dict d;
  d["statistic"] = r.statistic;
  d["p_value"] = r.p_value;
  d["r_plus"] = r.r_plus;
  d["r_minus"] = r.r_minus;
  d["z"] = r.z;
  d["rank_biserial"] = r.rank_biserial;
  d["n"] = r.n;
  d["n_zero"] = r.n_zero;
  d["method"] = to_string(r.method);
  return d;
}

py::dict paired_t_dict(const PairedTResult& r) {
  py::dict d;
  d["statistic"] = r.statistic;
  d["p_value"] = r.p_value;
  d["df"] = r.df;
  d["mean_difference"] = r.mean_difference;
  d["cohen_dz"] = r.cohen_dz;
  d["n"] = r.n;
  return d;
}

py::dict mixed_model_dict(const MixedModelResult& r) {
  py::dict d;
  d["coefficients"] = r.coefficients;
  d["standard_errors"] = r.standard_errors;
  d["z_values"] = r.z_values;
  d["p_values"] = r.p_values;
  d["group_variance"] = r.group_variance;
  d["residual_variance"] = r.residual_variance;
  d["log_likelihood"] = r.log_likelihood;
  d["n_observations"] = r.n_observations;
  d["n_clusters"] = r.n_clusters;
  d["on_boundary"] = r.on_boundary;
  d["method"] = r.method;
  return d;
}

BootstrapOptions bootstrap_options(std::size_t replicates, double level, std::uint64_t seed) {
  BootstrapOptions options;
  options.replicates = replicates;
  options.level = level;
  options.seed = seed;
  return options;
}

}  // namespace

void bind_stats(py::module_& parent) {
  auto m = parent.def_submodule("stats", "Paired tests, vignette bootstrap, mixed model and fairness metrics");

  m.def(
      "friedman_test",
      [](const BlockTable& table) {
        const auto r = friedman_test(table);
        py::dict d;
        d["statistic"] = r.statistic;
        d["p_value"] = r.p_value;
        d["kendall_w"] = r.kendall_w;
        d["n_blocks"] = r.n_blocks;
        d["n_groups"] = r.n_groups;
        return d;
      },
      py::arg("table"), "Friedman test on a vignettes x groups table (list of rows), as scipy.stats.friedmanchisquare.");

  m.def(
      "cochran_q",
      [](const BlockTable& table) {
        const auto r = cochran_q(table);
        py::dict d;
        d["statistic"] = r.statistic;
        d["p_value"] = r.p_value;
        return d;
      },
      py::arg("table"), "Cochran's Q on a vignettes x groups table of 0/1 outcomes, as statsmodels' cochrans_q.");

  m.def(
      "wilcoxon_signed_rank",
      [](const std::vector<double>& x, const std::vector<double>& y) { return wilcoxon_dict(wilcoxon_signed_rank(x, y)); },
      py::arg("x"), py::arg("y"), "Wilcoxon signed-rank test of x - y with scipy.stats.wilcoxon's defaults.");

  m.def(
      "paired_t_test",
      [](const std::vector<double>& x, const std::vector<double>& y) { return paired_t_dict(paired_t_test(x, y)); },
      py::arg("x"), py::arg("y"), "Paired t-test of x - y, as scipy.stats.ttest_rel, with Cohen's d_z.");

  m.def(
      "holm_correction",
      [](const std::vector<double>& p, double alpha) {
        const auto r = holm_correction(p, alpha);
        return py::make_tuple(r.adjusted, std::vector<bool>(r.reject.begin(), r.reject.end()));
      },
      py::arg("p_values"), py::arg("alpha") = 0.05,
      "Holm-adjusted p-values and rejections, as statsmodels' multipletests(method='holm').");

  m.def("quantile", &quantile, py::arg("values"), py::arg("q"), "Quantile with numpy's default linear interpolation.");

  py::class_<SplitMix64>(m, "SplitMix64", "Portable SplitMix64 random number generator.")
      .def(py::init<std::uint64_t>(), py::arg("seed"))
      .def("next", &SplitMix64::next)
      .def("uniform_index", &SplitMix64::uniform_index, py::arg("n"));

  m.def(
      "cluster_bootstrap",
      [](std::size_t n_clusters, const std::function<double(const std::vector<std::size_t>&)>& statistic,
         std::size_t replicates, double level, std::uint64_t seed) {
        const auto r = cluster_bootstrap(n_clusters, statistic, bootstrap_options(replicates, level, seed));
        return py::make_tuple(r.low, r.high, r.replicates);
      },
      py::arg("n_clusters"), py::arg("statistic"), py::arg("replicates") = 2000, py::arg("level") = 0.95,
      py::arg("seed") = BootstrapOptions{}.seed,
      "Percentile interval (low, high, finite replicates) of statistic(indices) over cluster resamples.");

  m.def(
      "fit_random_intercept",
      [](const std::vector<double>& y, const std::vector<std::vector<double>>& design,
         const std::vector<std::size_t>& cluster, bool reml) {
        MixedModelOptions options;
        options.reml = reml;
        return mixed_model_dict(fit_random_intercept(y, design, cluster, options));
      },
      py::arg("y"), py::arg("design"), py::arg("cluster"), py::arg("reml") = true,
      "Random-intercept linear mixed model, as statsmodels' MixedLM(y, design, groups=cluster).fit(reml=reml).");

  m.def(
      "assess_fairness",
      [](const std::vector<std::string>& vignette_id, const std::vector<std::vector<std::string>>& group,
         const std::vector<std::vector<double>>& probabilities, const std::vector<std::size_t>& predicted,
         const std::vector<std::optional<std::size_t>>& reference, const std::vector<std::string>& axes,
         const std::vector<std::string>& options, std::size_t target_option,
         const std::vector<std::vector<std::string>>& expected_levels, const std::vector<std::string>& reference_group,
         std::size_t replicates, double level, std::uint64_t seed, double alpha, bool fit_mixed_model,
         double logit_clip) {
        const std::size_t n = vignette_id.size();
        if (group.size() != n || probabilities.size() != n || predicted.size() != n || reference.size() != n) {
          throw DataError(
              "assess_fairness: vignette_id, group, probabilities, predicted and reference must have one entry per row");
        }
        std::vector<AuditRecord> records(n);
        for (std::size_t i = 0; i < n; ++i) {
          records[i] = {vignette_id[i], group[i], probabilities[i], predicted[i], reference[i]};
        }
        FairnessOptions fairness;
        fairness.axes = axes;
        fairness.options = options;
        fairness.target_option = target_option;
        fairness.expected_levels = expected_levels;
        fairness.reference_group = reference_group;
        fairness.bootstrap = bootstrap_options(replicates, level, seed);
        fairness.alpha = alpha;
        fairness.fit_mixed_model = fit_mixed_model;
        fairness.logit_clip = logit_clip;
        FairnessReport report;
        {
          py::gil_scoped_release release;
          report = assess_fairness(records, fairness);
        }
        return json_to_python(to_json(report));
      },
      py::arg("vignette_id"), py::arg("group"), py::arg("probabilities"), py::arg("predicted"), py::arg("reference"),
      py::arg("axes"), py::arg("options"), py::arg("target_option") = 0,
      py::arg("expected_levels") = std::vector<std::vector<std::string>>{},
      py::arg("reference_group") = std::vector<std::string>{}, py::arg("replicates") = 2000, py::arg("level") = 0.95,
      py::arg("seed") = BootstrapOptions{}.seed, py::arg("alpha") = 0.05, py::arg("fit_mixed_model") = true,
      py::arg("logit_clip") = 1e-6,
      "Fairness metrics of an audit's long table (one entry per scored prompt), as the summary.json dict "
      "that docs/metrics.md describes.");

  m.def(
      "compare_vignette_gaps",
      [](const std::map<std::string, double>& before, const std::map<std::string, double>& after) {
        return json_to_python(to_json(compare_vignette_gaps(before, after)));
      },
      py::arg("before"), py::arg("after"),
      "Paired Wilcoxon and t tests of per-vignette gaps (dicts vignette id -> gap) between two runs.");
}

}  // namespace medfair::python
