// JSON form of FairnessReport and GapChange. The metric keys are the schema
// of an audit's summary.json, and docs/metrics.md documents each one. A
// change here therefore needs a change there and a new schema_version.

#include <cmath>
#include <fmt/format.h>

#include "medfair/stats/fairness.hpp"

namespace medfair::stats {

namespace {

constexpr int schema_version = 1;

nlohmann::json number(double value) { return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr); }

void put_interval(nlohmann::json& out, const std::string& prefix, const BootstrapInterval& interval) {
  out[prefix + "/ci_low"] = number(interval.low);
  out[prefix + "/ci_high"] = number(interval.high);
}

void put_gap(nlohmann::json& out, const std::string& prefix, const GroupGap& gap, bool with_interval) {
  out[prefix + "/max_gap/value"] = number(gap.value);
  if (with_interval) put_interval(out, prefix + "/max_gap", gap.ci);
  out[prefix + "/max_gap/group_high"] = gap.group_high.empty() ? nlohmann::json(nullptr) : nlohmann::json(gap.group_high);
  out[prefix + "/max_gap/group_low"] = gap.group_low.empty() ? nlohmann::json(nullptr) : nlohmann::json(gap.group_low);
  out[prefix + "/ratio/between_groups"] = number(gap.ratio);
  out[prefix + "/difference/to_overall"] = number(gap.to_overall);
  out[prefix + "/ratio/to_overall"] = number(gap.ratio_to_overall);
}

nlohmann::json wilcoxon_json(const WilcoxonResult& w) {
  return {{"statistic", number(w.statistic)}, {"p_value", number(w.p_value)},    {"r_plus", number(w.r_plus)},
          {"r_minus", number(w.r_minus)},     {"z", number(w.z)},                {"rank_biserial", number(w.rank_biserial)},
          {"n", w.n},                         {"n_zero", w.n_zero},              {"method", to_string(w.method)}};
}

nlohmann::json paired_t_json(const std::optional<PairedTResult>& t) {
  if (!t) return nullptr;
  return {{"statistic", number(t->statistic)},
          {"p_value", number(t->p_value)},
          {"df", number(t->df)},
          {"mean_difference", number(t->mean_difference)},
          {"cohen_dz", number(t->cohen_dz)},
          {"n", t->n}};
}

nlohmann::json level_json(const LevelResult& level, const FairnessOptions& options) {
  const auto& names = options.options;
  nlohmann::json out;
  out["groups"] = nlohmann::json::array();
  for (const auto& g : level.groups) out["groups"].push_back(g.name);
  out["empty_groups"] = level.empty_groups;
  out["n_vignettes"] = level.n_vignettes;
  out["n_complete_vignettes"] = level.n_complete_vignettes;

  nlohmann::json overall;
  for (std::size_t o = 0; o < names.size(); ++o) overall["p/" + names[o] + "/mean"] = number(level.overall_mean[o]);
  overall["accuracy"] = number(level.overall_accuracy);
  out["overall"] = overall;

  nlohmann::json by_group = nlohmann::json::object();
  for (const auto& g : level.groups) {
    nlohmann::json entry;
    entry["n_rows"] = g.n_rows;
    entry["n_vignettes"] = g.n_vignettes;
    for (std::size_t o = 0; o < names.size(); ++o) {
      const std::string prefix = "p/" + names[o];
      entry[prefix + "/mean"] = number(g.mean[o]);
      put_interval(entry, prefix + "/mean", g.mean_ci[o]);
    }
    entry["accuracy"] = number(g.accuracy);
    entry["accuracy/n_vignettes"] = g.accuracy_vignettes;
    by_group[g.name] = entry;
  }
  out["by_group"] = by_group;

  nlohmann::json metrics;
  for (std::size_t o = 0; o < names.size(); ++o) put_gap(metrics, "p/" + names[o], level.option_gaps[o], true);
  put_gap(metrics, "accuracy", level.accuracy_gap, false);

  std::vector<double> gaps;
  std::string max_vignette;
  double max_gap = -1;
  for (const auto& g : level.vignette_gaps) {
    gaps.push_back(g.gap);
    if (g.gap > max_gap) {
      max_gap = g.gap;
      max_vignette = g.vignette_id;
    }
  }
  double gap_mean = std::nan("");
  if (!gaps.empty()) {
    gap_mean = 0;
    for (double g : gaps) gap_mean += g;
    gap_mean /= static_cast<double>(gaps.size());
  }
  metrics["gap/n_vignettes"] = gaps.size();
  metrics["gap/mean"] = number(gap_mean);
  put_interval(metrics, "gap/mean", level.mean_gap_ci);
  metrics["gap/median"] = number(quantile(gaps, 0.5));
  metrics["gap/q90"] = number(quantile(gaps, 0.9));
  metrics["gap/q95"] = number(quantile(gaps, 0.95));
  metrics["gap/max"] = number(quantile(gaps, 1.0));
  metrics["gap/max/vignette"] = max_vignette.empty() ? nlohmann::json(nullptr) : nlohmann::json(max_vignette);
  metrics["flip_rate"] = number(gaps.empty() ? std::nan("") : static_cast<double>(level.flips) / static_cast<double>(gaps.size()));
  metrics["flip_rate/n_flips"] = level.flips;
  metrics["friedman/statistic"] = level.friedman ? number(level.friedman->statistic) : nullptr;
  metrics["friedman/p_value"] = level.friedman ? number(level.friedman->p_value) : nullptr;
  metrics["friedman/kendall_w"] = level.friedman ? number(level.friedman->kendall_w) : nullptr;
  metrics["cochran_q/statistic"] = level.cochran_q ? number(level.cochran_q->statistic) : nullptr;
  metrics["cochran_q/p_value"] = level.cochran_q ? number(level.cochran_q->p_value) : nullptr;
  out["metrics"] = metrics;

  out["pairwise"] = nlohmann::json::array();
  for (const auto& c : level.pairwise) {
    out["pairwise"].push_back({{"group_a", c.group_a},
                               {"group_b", c.group_b},
                               {"n_vignettes", c.n_vignettes},
                               {"mean_difference", number(c.mean_difference)},
                               {"wilcoxon", wilcoxon_json(c.wilcoxon)},
                               {"wilcoxon/p_holm", number(c.wilcoxon_p_holm)},
                               {"wilcoxon/reject_holm", c.wilcoxon_reject},
                               {"paired_t", paired_t_json(c.paired_t)},
                               {"paired_t/p_holm", number(c.paired_t_p_holm)},
                               {"paired_t/reject_holm", c.paired_t_reject}});
  }

  if (level.discrimination) {
    const auto& d = *level.discrimination;
    nlohmann::json terms = nlohmann::json::object();
    for (const auto& t : d.terms) {
      terms[t.group] = {{"coefficient", number(t.coefficient)},
                        {"standard_error", number(t.standard_error)},
                        {"z", number(t.z)},
                        {"p_value", number(t.p_value)}};
    }
    out["discrimination"] = {{"reference_group", d.reference_group},
                             {"method", d.fit.method},
                             {"terms", terms},
                             {"group_variance", number(d.fit.group_variance)},
                             {"residual_variance", number(d.fit.residual_variance)},
                             {"log_likelihood", number(d.fit.log_likelihood)},
                             {"n_observations", d.fit.n_observations},
                             {"n_vignettes", d.fit.n_clusters},
                             {"on_boundary", d.fit.on_boundary}};
  } else {
    out["discrimination"] = nullptr;
    if (!level.discrimination_note.empty()) out["discrimination_note"] = level.discrimination_note;
  }

  nlohmann::json vignette_gaps = nlohmann::json::object();
  for (const auto& g : level.vignette_gaps) vignette_gaps[g.vignette_id] = number(g.gap);
  out["vignette_gaps"] = vignette_gaps;
  return out;
}

}  // namespace

nlohmann::json to_json(const FairnessReport& report) {
  const auto& options = report.options;
  nlohmann::json out;
  out["schema_version"] = schema_version;
  out["axes"] = options.axes;
  out["options"] = options.options;
  out["target_option"] = options.options.at(options.target_option);
  out["n_rows"] = report.n_rows;
  out["n_vignettes"] = report.n_vignettes;
  out["bootstrap"] = {{"replicates", options.bootstrap.replicates},
                      {"level", options.bootstrap.level},
                      {"seed", options.bootstrap.seed},
                      {"resampling_unit", "vignette"},
                      {"interval", "percentile"}};
  out["alpha"] = options.alpha;
  out["levels"] = nlohmann::json::object();
  for (const auto& level : report.levels) out["levels"][level.name] = level_json(level, options);
  return out;
}

nlohmann::json to_json(const GapChange& change) {
  return {{"n_vignettes", change.n_vignettes},   {"only_before", change.only_before},
          {"only_after", change.only_after},     {"mean_before", number(change.mean_before)},
          {"mean_after", number(change.mean_after)}, {"wilcoxon", wilcoxon_json(change.wilcoxon)},
          {"paired_t", paired_t_json(change.paired_t)}};
}

}  // namespace medfair::stats
