#pragma once
// Counterfactual fairness metrics over an audit's long table, in the shape of
// fairlearn's MetricFrame: overall and per-group results, differences and
// ratios with a named comparison method, an explicit empty-group policy and a
// fixed schema of metric keys (docs/metrics.md lists them).
//
// Input: one AuditRecord per scored prompt, that is per (vignette, demographic
// variant[, paraphrase]). Results are computed for the intersectional groups
// (all axes together) and for each axis on its own.
//
// Aggregation rules:
// - A cell is (vignette, group). Its value is the mean over the cell's rows,
//   so repeated prompts of one variant count once per vignette.
// - A group's mean is the mean of its cells over vignettes: every vignette has
//   equal weight, and bootstrap intervals resample vignettes, not prompts.
// - Empty groups (declared in FairnessOptions::expected_levels but without
//   rows) get count 0 and null metrics, and are left out of every gap,
//   ratio, test and model.
// - A vignette is complete at a level when it has a cell for every non-empty
//   group. Paired statistics (per-vignette gaps, flip rate, Friedman,
//   Cochran's Q, pairwise tests) use complete vignettes only; per-group means,
//   accuracy and the mixed model use every row.

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "medfair/stats/bootstrap.hpp"
#include "medfair/stats/hypothesis.hpp"
#include "medfair/stats/mixed_model.hpp"

namespace medfair::stats {

/// One scored prompt of an audit.
struct AuditRecord {
  std::string vignette_id;                ///< Vignette the prompt was built from.
  std::vector<std::string> group;         ///< One label per axis, in FairnessOptions::axes order.
  std::vector<double> probabilities;      ///< Normalised probability of each option, in FairnessOptions::options order.
  std::size_t predicted = 0;              ///< Index of the model's most likely option.
  std::optional<std::size_t> reference;   ///< Index of the reference answer, when the vignette has one.
};

/// Options of assess_fairness.
struct FairnessOptions {
  std::vector<std::string> axes;                          ///< Demographic axis names, e.g. {"race", "gender"} (required).
  std::vector<std::string> options;                       ///< Answer option names, e.g. {"Yes", "No"} (required, at least 2).
  std::size_t target_option = 0;                          ///< Option whose probability the gaps, tests and model analyse (default 0).
  std::vector<std::vector<std::string>> expected_levels;  ///< Declared labels per axis; empty means the labels found in the data (default empty).
  std::vector<std::string> reference_group;               ///< Reference label per axis for the mixed model; empty means the first label in sorted order (default empty).
  BootstrapOptions bootstrap;                             ///< Vignette bootstrap settings (default 2000 replicates, 95 %).
  double alpha = 0.05;                                    ///< Family-wise error rate of the Holm correction (default 0.05).
  bool fit_mixed_model = true;                            ///< Fit the discrimination-score model (default true).
  double logit_clip = 1e-6;                               ///< Probabilities are clipped to [clip, 1 - clip] before the logit (default 1e-6).
};

/// Per-group results at one level.
struct GroupResult {
  std::string name;                           ///< Intersectional label "Black x female" or an axis label "Black".
  std::size_t n_rows = 0;
  std::size_t n_vignettes = 0;                ///< Vignettes with at least one row in the group; 0 marks an empty group.
  std::vector<double> mean;                   ///< Mean probability per option; NaN for an empty group.
  std::vector<BootstrapInterval> mean_ci;     ///< Vignette-bootstrap interval per option.
  double accuracy = 0;                        ///< Mean over vignettes with a reference answer of the share of correct rows; NaN when none.
  std::size_t accuracy_vignettes = 0;         ///< Vignettes behind `accuracy`.
};

/// Largest difference between two groups' values, with the groups behind it.
struct GroupGap {
  double value = 0;          ///< max - min over non-empty groups; NaN with fewer than 2.
  BootstrapInterval ci;      ///< Vignette-bootstrap interval of the value (NaN for accuracy).
  std::string group_high;    ///< Group with the largest value.
  std::string group_low;     ///< Group with the smallest value.
  double ratio = 0;          ///< min / max between groups (fairlearn's ratio, method "between_groups").
  double to_overall = 0;     ///< max |group - overall| (fairlearn's difference, method "to_overall").
  double ratio_to_overall = 0;  ///< min over groups of min(group / overall, overall / group).
};

/// Post-hoc comparison of two groups on the target option's cell values.
struct PairwiseComparison {
  std::string group_a;
  std::string group_b;
  std::size_t n_vignettes = 0;  ///< Complete vignettes used.
  double mean_difference = 0;   ///< mean(a - b).
  WilcoxonResult wilcoxon;
  double wilcoxon_p_holm = 0;   ///< Holm-adjusted over all pairs of the level.
  bool wilcoxon_reject = false;
  std::optional<PairedTResult> paired_t;  ///< Absent with fewer than 2 complete vignettes.
  double paired_t_p_holm = 0;
  bool paired_t_reject = false;
};

/// One coefficient of the discrimination-score model.
struct DiscriminationTerm {
  std::string group;   ///< Group whose indicator this is ("(intercept)" for the reference level).
  double coefficient = 0;
  double standard_error = 0;
  double z = 0;
  double p_value = 0;
};

/// discrim-eval style score: logit of the target probability regressed on
/// group indicators with a random intercept per vignette.
struct DiscriminationScore {
  std::string reference_group;
  std::vector<DiscriminationTerm> terms;
  MixedModelResult fit;
};

/// Per-vignette counterfactual gap of the target option.
struct VignetteGap {
  std::string vignette_id;
  double gap = 0;  ///< max - min of the cell values over the level's groups.
};

/// Results for one grouping: the intersectional groups or one axis.
struct LevelResult {
  std::string name;  ///< "intersectional" or the axis name.
  std::vector<GroupResult> groups;
  std::vector<std::string> empty_groups;
  std::size_t n_vignettes = 0;
  std::size_t n_complete_vignettes = 0;
  std::vector<double> overall_mean;      ///< Mean over vignettes of the mean over the vignette's cells, per option.
  std::vector<GroupGap> option_gaps;     ///< Max gap per option.
  double overall_accuracy = 0;
  GroupGap accuracy_gap;
  std::vector<VignetteGap> vignette_gaps;
  BootstrapInterval mean_gap_ci;         ///< Vignette-bootstrap interval of the mean per-vignette gap.
  std::size_t flips = 0;                 ///< Complete vignettes whose rows disagree on the most likely option.
  std::optional<FriedmanResult> friedman;    ///< Needs 3 or more non-empty groups.
  std::optional<CochranQResult> cochran_q;   ///< Needs 2 options, 2 or more groups and one row per cell.
  std::vector<PairwiseComparison> pairwise;
  std::optional<DiscriminationScore> discrimination;
  std::string discrimination_note;       ///< Why the model was not fitted, when it was not.
};

/// Results of assess_fairness.
struct FairnessReport {
  FairnessOptions options;
  std::size_t n_rows = 0;
  std::size_t n_vignettes = 0;
  std::vector<LevelResult> levels;  ///< "intersectional" first, then one per axis.
};

/// Computes every metric and test of docs/metrics.md from `records`.
/// Throws ConfigError on invalid options and DataError on a record that does
/// not fit them (wrong number of labels or probabilities, an index out of
/// range, a probability outside [0, 1], a label outside expected_levels).
FairnessReport assess_fairness(const std::vector<AuditRecord>& records, const FairnessOptions& options);

/// Serialises a report with the metric keys of docs/metrics.md. NaN values
/// become null.
nlohmann::json to_json(const FairnessReport& report);

/// Paired comparison of per-vignette gaps between two runs on the same vignettes.
struct GapChange {
  std::size_t n_vignettes = 0;       ///< Vignettes present in both runs.
  std::size_t only_before = 0;       ///< Vignettes present only in the first run (left out).
  std::size_t only_after = 0;        ///< Vignettes present only in the second run (left out).
  double mean_before = 0;
  double mean_after = 0;
  WilcoxonResult wilcoxon;           ///< On after - before.
  std::optional<PairedTResult> paired_t;  ///< On after - before; absent with fewer than 2 vignettes.
};

/// Tests whether the per-vignette gaps changed between two runs, pairing
/// vignettes by id. Throws DataError when no vignette is in both runs.
GapChange compare_vignette_gaps(const std::map<std::string, double>& before, const std::map<std::string, double>& after);

nlohmann::json to_json(const GapChange& change);

}  // namespace medfair::stats
