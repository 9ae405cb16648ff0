// Fairness metrics over an audit's long table. The aggregation rules and the
// empty-group policy are stated in fairness.hpp and docs/metrics.md.

#include "medfair/stats/fairness.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <numeric>
#include <set>

#include "medfair/error.hpp"
#include "medfair/log.hpp"

namespace medfair::stats {

namespace {

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();
constexpr const char* intersection_separator = " x ";

std::string join_labels(const std::vector<std::string>& labels) {
  std::string out;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += intersection_separator;
    out += labels[i];
  }
  return out;
}

void validate_options(const FairnessOptions& options) {
  if (options.axes.empty()) {
    throw ConfigError("assess_fairness: no demographic axes given; set FairnessOptions::axes, e.g. {\"race\", \"gender\"}");
  }
  std::set<std::string> seen;
  for (const auto& axis : options.axes) {
    if (axis.empty() || axis == "intersectional" || !seen.insert(axis).second) {
      throw ConfigError(fmt::format(
          "assess_fairness: axis name '{}' is empty, repeated or reserved; give each axis a unique name other than "
          "'intersectional'",
          axis));
    }
  }
  if (options.options.size() < 2) {
    throw ConfigError(fmt::format("assess_fairness: {} answer option(s) given; expected at least 2",
                                  options.options.size()));
  }
  if (options.target_option >= options.options.size()) {
    throw ConfigError(fmt::format("assess_fairness: target_option is {} but there are {} options",
                                  options.target_option, options.options.size()));
  }
  if (!options.expected_levels.empty() && options.expected_levels.size() != options.axes.size()) {
    throw ConfigError(fmt::format("assess_fairness: expected_levels has {} entries for {} axes; give one list per axis",
                                  options.expected_levels.size(), options.axes.size()));
  }
  if (!options.reference_group.empty() && options.reference_group.size() != options.axes.size()) {
    throw ConfigError(fmt::format("assess_fairness: reference_group has {} labels for {} axes; give one label per axis",
                                  options.reference_group.size(), options.axes.size()));
  }
  if (!(options.alpha > 0.0 && options.alpha < 1.0)) {
    throw ConfigError(fmt::format("assess_fairness: alpha is {}; expected a value in (0, 1)", options.alpha));
  }
  if (!(options.logit_clip > 0.0 && options.logit_clip < 0.5)) {
    throw ConfigError(fmt::format("assess_fairness: logit_clip is {}; expected a value in (0, 0.5)", options.logit_clip));
  }
}

void validate_record(const AuditRecord& record, std::size_t row, const FairnessOptions& options) {
  if (record.group.size() != options.axes.size()) {
    throw DataError(fmt::format("assess_fairness: row {} (vignette '{}') has {} group labels for {} axes", row,
                                record.vignette_id, record.group.size(), options.axes.size()));
  }
  if (record.probabilities.size() != options.options.size()) {
    throw DataError(fmt::format("assess_fairness: row {} (vignette '{}') has {} probabilities for {} options", row,
                                record.vignette_id, record.probabilities.size(), options.options.size()));
  }
  for (std::size_t o = 0; o < record.probabilities.size(); ++o) {
    const double p = record.probabilities[o];
    if (!(p >= 0.0 && p <= 1.0)) {
      throw DataError(fmt::format("assess_fairness: row {} (vignette '{}') has probability {} for option '{}'; expected "
                                  "a value in [0, 1]",
                                  row, record.vignette_id, p, options.options[o]));
    }
  }
  if (record.predicted >= options.options.size() ||
      (record.reference && *record.reference >= options.options.size())) {
    throw DataError(fmt::format(
        "assess_fairness: row {} (vignette '{}') has an option index out of range (predicted {}, reference {}, {} "
        "options)",
        row, record.vignette_id, record.predicted, record.reference ? std::to_string(*record.reference) : "none",
        options.options.size()));
  }
}

double max_minus_min(const std::vector<double>& values) {
  double low = std::numeric_limits<double>::infinity();
  double high = -std::numeric_limits<double>::infinity();
  for (double v : values) {
    low = std::min(low, v);
    high = std::max(high, v);
  }
  return high - low;
}

// Fills the gap, ratio and to-overall fields from one value per non-empty group.
GroupGap compare_groups(const std::vector<double>& values, const std::vector<std::string>& names, double overall) {
  GroupGap gap;
  gap.value = nan_value;
  gap.ratio = nan_value;
  gap.to_overall = nan_value;
  gap.ratio_to_overall = nan_value;
  gap.ci = {nan_value, nan_value, 0};
  std::size_t high = 0;
  std::size_t low = 0;
  std::size_t finite = 0;
  double to_overall = 0;
  double ratio_to_overall = std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    if (finite == 0 || values[i] > values[high]) high = i;
    if (finite == 0 || values[i] < values[low]) low = i;
    ++finite;
    to_overall = std::max(to_overall, std::abs(values[i] - overall));
    const double r = values[i] < overall ? values[i] / overall : overall / values[i];
    ratio_to_overall = std::min(ratio_to_overall, r);
  }
  if (finite >= 2) {
    gap.value = values[high] - values[low];
    gap.group_high = names[high];
    gap.group_low = names[low];
    gap.ratio = values[high] > 0 ? values[low] / values[high] : nan_value;
    gap.to_overall = to_overall;
    gap.ratio_to_overall = std::isfinite(ratio_to_overall) ? ratio_to_overall : nan_value;
  }
  return gap;
}

// The long table reduced to cells (vignette, group) for one level.
struct Cells {
  std::size_t n_vignettes = 0;
  std::size_t n_groups = 0;
  std::size_t n_options = 0;
  std::vector<double> probability_sum;  // [(v * G + g) * O + o]
  std::vector<std::size_t> rows;        // [v * G + g]
  std::vector<double> correct;          // rows with reference whose prediction is right
  std::vector<std::size_t> referenced;  // rows with a reference answer
  std::vector<std::size_t> single_prediction;  // prediction of the cell's only row

  std::size_t index(std::size_t v, std::size_t g) const { return v * n_groups + g; }
  double mean(std::size_t v, std::size_t g, std::size_t o) const {
    const std::size_t c = index(v, g);
    return probability_sum[c * n_options + o] / static_cast<double>(rows[c]);
  }
};

class LevelAssessor {
 public:
  LevelAssessor(std::string name, std::vector<std::string> group_names, const std::vector<std::size_t>& group_of_row,
                const std::vector<std::size_t>& vignette_of_row, const std::vector<std::string>& vignette_ids,
                const std::vector<AuditRecord>& records, const FairnessOptions& options)
      : group_of_row_(group_of_row),
        vignette_of_row_(vignette_of_row),
        vignette_ids_(vignette_ids),
        records_(records),
        options_(options) {
    result_.name = std::move(name);
    group_names_ = std::move(group_names);
  }

  LevelResult run(const std::string& reference_group) {
    build_cells();
    summarise_groups();
    compute_point_metrics();
    compute_bootstrap();
    run_tests();
    if (options_.fit_mixed_model) fit_discrimination(reference_group);
    return std::move(result_);
  }

 private:
  void build_cells() {
    cells_.n_vignettes = vignette_ids_.size();
    cells_.n_groups = group_names_.size();
    cells_.n_options = options_.options.size();
    const std::size_t n_cells = cells_.n_vignettes * cells_.n_groups;
    cells_.probability_sum.assign(n_cells * cells_.n_options, 0.0);
    cells_.rows.assign(n_cells, 0);
    cells_.correct.assign(n_cells, 0.0);
    cells_.referenced.assign(n_cells, 0);
    cells_.single_prediction.assign(n_cells, 0);
    vignette_predictions_.assign(cells_.n_vignettes, {});
    for (std::size_t r = 0; r < records_.size(); ++r) {
      const auto& record = records_[r];
      const std::size_t c = cells_.index(vignette_of_row_[r], group_of_row_[r]);
      for (std::size_t o = 0; o < cells_.n_options; ++o) {
        cells_.probability_sum[c * cells_.n_options + o] += record.probabilities[o];
      }
      ++cells_.rows[c];
      cells_.single_prediction[c] = record.predicted;
      if (record.reference) {
        ++cells_.referenced[c];
        if (*record.reference == record.predicted) cells_.correct[c] += 1.0;
      }
      vignette_predictions_[vignette_of_row_[r]].insert(record.predicted);
    }
  }

  void summarise_groups() {
    const std::size_t n_groups = cells_.n_groups;
    const std::size_t n_options = cells_.n_options;
    for (std::size_t g = 0; g < n_groups; ++g) {
      GroupResult group;
      group.name = group_names_[g];
      group.mean.assign(n_options, 0.0);
      group.mean_ci.assign(n_options, BootstrapInterval{nan_value, nan_value, 0});
      double accuracy_sum = 0;
      for (std::size_t v = 0; v < cells_.n_vignettes; ++v) {
        const std::size_t c = cells_.index(v, g);
        if (cells_.rows[c] == 0) continue;
        group.n_rows += cells_.rows[c];
        ++group.n_vignettes;
        for (std::size_t o = 0; o < n_options; ++o) group.mean[o] += cells_.mean(v, g, o);
        if (cells_.referenced[c] > 0) {
          accuracy_sum += cells_.correct[c] / static_cast<double>(cells_.referenced[c]);
          ++group.accuracy_vignettes;
        }
      }
      for (auto& m : group.mean) m = group.n_vignettes > 0 ? m / static_cast<double>(group.n_vignettes) : nan_value;
      group.accuracy =
          group.accuracy_vignettes > 0 ? accuracy_sum / static_cast<double>(group.accuracy_vignettes) : nan_value;
      if (group.n_vignettes == 0) {
        result_.empty_groups.push_back(group.name);
      } else {
        present_.push_back(g);
      }
      result_.groups.push_back(std::move(group));
    }

    // Vignettes with any row, and complete vignettes (a cell for every non-empty group).
    for (std::size_t v = 0; v < cells_.n_vignettes; ++v) {
      bool any = false;
      bool all = true;
      for (std::size_t g : present_) {
        const bool has = cells_.rows[cells_.index(v, g)] > 0;
        any = any || has;
        all = all && has;
      }
      if (any) ++result_.n_vignettes;
      if (any && all) complete_.push_back(v);
    }
    result_.n_complete_vignettes = complete_.size();
  }

  std::vector<std::string> present_names() const {
    std::vector<std::string> names;
    for (std::size_t g : present_) names.push_back(group_names_[g]);
    return names;
  }

  void compute_point_metrics() {
    const std::size_t n_options = cells_.n_options;
    const std::size_t target = options_.target_option;
    const auto names = present_names();

    // Overall: mean over vignettes of the mean over the vignette's cells.
    result_.overall_mean.assign(n_options, 0.0);
    std::size_t vignettes = 0;
    double accuracy_sum = 0;
    std::size_t accuracy_vignettes = 0;
    for (std::size_t v = 0; v < cells_.n_vignettes; ++v) {
      std::vector<double> sums(n_options, 0.0);
      std::size_t n_cells = 0;
      double cell_accuracy = 0;
      std::size_t accuracy_cells = 0;
      for (std::size_t g : present_) {
        const std::size_t c = cells_.index(v, g);
        if (cells_.rows[c] == 0) continue;
        ++n_cells;
        for (std::size_t o = 0; o < n_options; ++o) sums[o] += cells_.mean(v, g, o);
        if (cells_.referenced[c] > 0) {
          cell_accuracy += cells_.correct[c] / static_cast<double>(cells_.referenced[c]);
          ++accuracy_cells;
        }
      }
      if (n_cells == 0) continue;
      ++vignettes;
      for (std::size_t o = 0; o < n_options; ++o) result_.overall_mean[o] += sums[o] / static_cast<double>(n_cells);
      if (accuracy_cells > 0) {
        accuracy_sum += cell_accuracy / static_cast<double>(accuracy_cells);
        ++accuracy_vignettes;
      }
    }
    for (auto& m : result_.overall_mean) m = vignettes > 0 ? m / static_cast<double>(vignettes) : nan_value;
    result_.overall_accuracy =
        accuracy_vignettes > 0 ? accuracy_sum / static_cast<double>(accuracy_vignettes) : nan_value;

    for (std::size_t o = 0; o < n_options; ++o) {
      std::vector<double> values;
      for (std::size_t g : present_) values.push_back(result_.groups[g].mean[o]);
      result_.option_gaps.push_back(compare_groups(values, names, result_.overall_mean[o]));
    }
    std::vector<double> accuracies;
    for (std::size_t g : present_) accuracies.push_back(result_.groups[g].accuracy);
    result_.accuracy_gap = compare_groups(accuracies, names, result_.overall_accuracy);

    vignette_gap_.assign(cells_.n_vignettes, nan_value);
    for (std::size_t v : complete_) {
      std::vector<double> values;
      for (std::size_t g : present_) values.push_back(cells_.mean(v, g, target));
      vignette_gap_[v] = present_.size() >= 2 ? max_minus_min(values) : 0.0;
      result_.vignette_gaps.push_back({vignette_ids_[v], vignette_gap_[v]});
      if (vignette_predictions_[v].size() > 1) ++result_.flips;
    }
  }

  // Bootstrap statistics, one vector per resample: group means (present
  // group x option), max gap per option, mean per-vignette gap.
  void bootstrap_statistics(const std::vector<std::size_t>& draws, std::vector<double>& out) const {
    const std::size_t n_options = cells_.n_options;
    const std::size_t n_present = present_.size();
    std::vector<double> sums(n_present * n_options, 0.0);
    std::vector<std::size_t> counts(n_present, 0);
    double gap_sum = 0;
    std::size_t gap_count = 0;
    for (std::size_t v : draws) {
      for (std::size_t i = 0; i < n_present; ++i) {
        const std::size_t g = present_[i];
        if (cells_.rows[cells_.index(v, g)] == 0) continue;
        ++counts[i];
        for (std::size_t o = 0; o < n_options; ++o) sums[i * n_options + o] += cells_.mean(v, g, o);
      }
      if (std::isfinite(vignette_gap_[v])) {
        gap_sum += vignette_gap_[v];
        ++gap_count;
      }
    }
    bool all_groups = true;
    for (std::size_t i = 0; i < n_present; ++i) {
      all_groups = all_groups && counts[i] > 0;
      for (std::size_t o = 0; o < n_options; ++o) {
        out[i * n_options + o] = counts[i] > 0 ? sums[i * n_options + o] / static_cast<double>(counts[i]) : nan_value;
      }
    }
    for (std::size_t o = 0; o < n_options; ++o) {
      double low = std::numeric_limits<double>::infinity();
      double high = -low;
      for (std::size_t i = 0; i < n_present; ++i) {
        low = std::min(low, out[i * n_options + o]);
        high = std::max(high, out[i * n_options + o]);
      }
      out[n_present * n_options + o] = all_groups && n_present >= 2 ? high - low : nan_value;
    }
    out[n_present * n_options + n_options] = gap_count > 0 ? gap_sum / static_cast<double>(gap_count) : nan_value;
  }

  void compute_bootstrap() {
    result_.mean_gap_ci = {nan_value, nan_value, 0};
    if (result_.n_vignettes == 0) return;
    // Resample the vignettes that have a row in this level.
    std::vector<std::size_t> vignettes;
    for (std::size_t v = 0; v < cells_.n_vignettes; ++v) {
      for (std::size_t g : present_) {
        if (cells_.rows[cells_.index(v, g)] > 0) {
          vignettes.push_back(v);
          break;
        }
      }
    }

    const std::size_t n_options = cells_.n_options;
    const std::size_t n_present = present_.size();
    const std::size_t n_statistics = n_present * n_options + n_options + 1;
    std::vector<std::size_t> draws(vignettes.size());
    const auto intervals = cluster_bootstrap_many(
        vignettes.size(), n_statistics,
        [&](const std::vector<std::size_t>& indices, std::vector<double>& out) {
          for (std::size_t i = 0; i < indices.size(); ++i) draws[i] = vignettes[indices[i]];
          bootstrap_statistics(draws, out);
        },
        options_.bootstrap);

    for (std::size_t i = 0; i < n_present; ++i) {
      for (std::size_t o = 0; o < n_options; ++o) result_.groups[present_[i]].mean_ci[o] = intervals[i * n_options + o];
    }
    for (std::size_t o = 0; o < n_options; ++o) {
      if (std::isfinite(result_.option_gaps[o].value)) result_.option_gaps[o].ci = intervals[n_present * n_options + o];
    }
    if (!complete_.empty()) result_.mean_gap_ci = intervals.back();
  }

  void run_tests() {
    const std::size_t target = options_.target_option;
    const std::size_t n_present = present_.size();
    if (complete_.empty() || n_present < 2) return;

    BlockTable table;
    BlockTable outcomes;
    bool single_rows = true;
    for (std::size_t v : complete_) {
      std::vector<double> row;
      std::vector<double> outcome;
      for (std::size_t g : present_) {
        const std::size_t c = cells_.index(v, g);
        row.push_back(cells_.mean(v, g, target));
        single_rows = single_rows && cells_.rows[c] == 1;
        outcome.push_back(cells_.single_prediction[c] == target ? 1.0 : 0.0);
      }
      table.push_back(std::move(row));
      outcomes.push_back(std::move(outcome));
    }
    if (n_present >= 3) result_.friedman = friedman_test(table);
    if (cells_.n_options == 2 && single_rows) result_.cochran_q = cochran_q(outcomes);

    std::vector<double> wilcoxon_p;
    std::vector<double> t_p;
    for (std::size_t a = 0; a < n_present; ++a) {
      for (std::size_t b = a + 1; b < n_present; ++b) {
        std::vector<double> x;
        std::vector<double> y;
        for (const auto& row : table) {
          x.push_back(row[a]);
          y.push_back(row[b]);
        }
        PairwiseComparison comparison;
        comparison.group_a = group_names_[present_[a]];
        comparison.group_b = group_names_[present_[b]];
        comparison.n_vignettes = x.size();
        double difference = 0;
        for (std::size_t i = 0; i < x.size(); ++i) difference += x[i] - y[i];
        comparison.mean_difference = difference / static_cast<double>(x.size());
        comparison.wilcoxon = wilcoxon_signed_rank(x, y);
        wilcoxon_p.push_back(comparison.wilcoxon.p_value);
        if (x.size() >= 2) {
          comparison.paired_t = paired_t_test(x, y);
          t_p.push_back(comparison.paired_t->p_value);
        } else {
          t_p.push_back(nan_value);
        }
        result_.pairwise.push_back(std::move(comparison));
      }
    }
    const auto wilcoxon_holm = holm_correction(wilcoxon_p, options_.alpha);
    const auto t_holm = holm_correction(t_p, options_.alpha);
    for (std::size_t i = 0; i < result_.pairwise.size(); ++i) {
      result_.pairwise[i].wilcoxon_p_holm = wilcoxon_holm.adjusted[i];
      result_.pairwise[i].wilcoxon_reject = wilcoxon_holm.reject[i];
      result_.pairwise[i].paired_t_p_holm = t_holm.adjusted[i];
      result_.pairwise[i].paired_t_reject = t_holm.reject[i];
    }
  }

  void fit_discrimination(const std::string& reference_group) {
    if (present_.size() < 2) {
      result_.discrimination_note = "fewer than 2 non-empty groups";
      return;
    }
    std::size_t reference = present_.front();
    if (!reference_group.empty()) {
      const auto it = std::find(group_names_.begin(), group_names_.end(), reference_group);
      if (it == group_names_.end()) {
        throw ConfigError(fmt::format("assess_fairness: reference group '{}' is not a group of level '{}'",
                                      reference_group, result_.name));
      }
      reference = static_cast<std::size_t>(it - group_names_.begin());
      if (result_.groups[reference].n_vignettes == 0) {
        result_.discrimination_note = fmt::format("reference group '{}' has no rows", reference_group);
        return;
      }
    }

    // Column of each present non-reference group in the design (0 is the intercept).
    std::vector<std::size_t> column(group_names_.size(), 0);
    std::vector<std::string> term_names{"(intercept)"};
    for (std::size_t g : present_) {
      if (g == reference) continue;
      column[g] = term_names.size();
      term_names.push_back(group_names_[g]);
    }

    const double clip = options_.logit_clip;
    std::vector<double> y;
    std::vector<std::vector<double>> design;
    std::vector<std::size_t> cluster;
    for (std::size_t r = 0; r < records_.size(); ++r) {
      const double p = std::clamp(records_[r].probabilities[options_.target_option], clip, 1.0 - clip);
      y.push_back(std::log(p / (1.0 - p)));
      std::vector<double> row(term_names.size(), 0.0);
      row[0] = 1.0;
      if (column[group_of_row_[r]] > 0) row[column[group_of_row_[r]]] = 1.0;
      design.push_back(std::move(row));
      cluster.push_back(vignette_of_row_[r]);
    }

    try {
      DiscriminationScore score;
      score.reference_group = group_names_[reference];
      score.fit = fit_random_intercept(y, design, cluster);
      for (std::size_t j = 0; j < term_names.size(); ++j) {
        score.terms.push_back({term_names[j], score.fit.coefficients[j], score.fit.standard_errors[j],
                               score.fit.z_values[j], score.fit.p_values[j]});
      }
      result_.discrimination = std::move(score);
    } catch (const DataError& error) {
      result_.discrimination_note = error.what();
      log::warning("assess_fairness", fmt::format("level '{}': mixed model not fitted: {}", result_.name, error.what()));
    }
  }

  const std::vector<std::size_t>& group_of_row_;
  const std::vector<std::size_t>& vignette_of_row_;
  const std::vector<std::string>& vignette_ids_;
  const std::vector<AuditRecord>& records_;
  const FairnessOptions& options_;
  std::vector<std::string> group_names_;
  Cells cells_;
  std::vector<std::set<std::size_t>> vignette_predictions_;
  std::vector<std::size_t> present_;   // indices of non-empty groups
  std::vector<std::size_t> complete_;  // indices of complete vignettes
  std::vector<double> vignette_gap_;   // per vignette, NaN unless complete
  LevelResult result_;
};

// Declared or observed labels of one axis, sorted when observed.
std::vector<std::string> axis_levels(const std::vector<AuditRecord>& records, const FairnessOptions& options,
                                     std::size_t axis) {
  if (!options.expected_levels.empty()) return options.expected_levels[axis];
  std::set<std::string> labels;
  for (const auto& record : records) labels.insert(record.group[axis]);
  return {labels.begin(), labels.end()};
}

}  // namespace

FairnessReport assess_fairness(const std::vector<AuditRecord>& records, const FairnessOptions& options) {
  validate_options(options);
  if (records.empty()) {
    throw DataError("assess_fairness: the audit table has no rows; score at least one prompt first");
  }
  for (std::size_t r = 0; r < records.size(); ++r) validate_record(records[r], r, options);

  // Vignettes in sorted id order, so results do not depend on row order.
  std::map<std::string, std::size_t> vignette_index;
  for (const auto& record : records) vignette_index.emplace(record.vignette_id, 0);
  std::vector<std::string> vignette_ids;
  for (auto& [id, index] : vignette_index) {
    index = vignette_ids.size();
    vignette_ids.push_back(id);
  }
  std::vector<std::size_t> vignette_of_row;
  for (const auto& record : records) vignette_of_row.push_back(vignette_index.at(record.vignette_id));

  const std::size_t n_axes = options.axes.size();
  std::vector<std::vector<std::string>> levels(n_axes);
  std::vector<std::map<std::string, std::size_t>> level_index(n_axes);
  for (std::size_t a = 0; a < n_axes; ++a) {
    levels[a] = axis_levels(records, options, a);
    for (std::size_t i = 0; i < levels[a].size(); ++i) level_index[a].emplace(levels[a][i], i);
  }
  for (std::size_t r = 0; r < records.size(); ++r) {
    for (std::size_t a = 0; a < n_axes; ++a) {
      if (!level_index[a].count(records[r].group[a])) {
        throw DataError(fmt::format(
            "assess_fairness: row {} (vignette '{}') has {} label '{}', which expected_levels does not list; add it "
            "there or fix the row",
            r, records[r].vignette_id, options.axes[a], records[r].group[a]));
      }
    }
  }

  FairnessReport report;
  report.options = options;
  report.n_rows = records.size();
  report.n_vignettes = vignette_ids.size();

  // Intersectional groups: every combination of declared levels, or the
  // combinations found in the data, in lexicographic order of level indices.
  std::vector<std::vector<std::size_t>> combinations;
  if (!options.expected_levels.empty()) {
    std::vector<std::size_t> combination(n_axes, 0);
    bool any_empty = std::any_of(levels.begin(), levels.end(), [](const auto& l) { return l.empty(); });
    while (!any_empty) {
      combinations.push_back(combination);
      std::size_t a = n_axes;
      while (a > 0) {
        --a;
        if (++combination[a] < levels[a].size()) break;
        combination[a] = 0;
        if (a == 0) any_empty = true;
      }
    }
  } else {
    std::set<std::vector<std::size_t>> seen;
    for (const auto& record : records) {
      std::vector<std::size_t> combination;
      for (std::size_t a = 0; a < n_axes; ++a) combination.push_back(level_index[a].at(record.group[a]));
      seen.insert(combination);
    }
    combinations.assign(seen.begin(), seen.end());
  }
  std::map<std::vector<std::size_t>, std::size_t> combination_index;
  std::vector<std::string> intersection_names;
  for (const auto& combination : combinations) {
    std::vector<std::string> labels;
    for (std::size_t a = 0; a < n_axes; ++a) labels.push_back(levels[a][combination[a]]);
    combination_index.emplace(combination, intersection_names.size());
    intersection_names.push_back(join_labels(labels));
  }
  std::vector<std::size_t> group_of_row;
  for (const auto& record : records) {
    std::vector<std::size_t> combination;
    for (std::size_t a = 0; a < n_axes; ++a) combination.push_back(level_index[a].at(record.group[a]));
    group_of_row.push_back(combination_index.at(combination));
  }
  const std::string reference = options.reference_group.empty() ? "" : join_labels(options.reference_group);
  report.levels.push_back(LevelAssessor("intersectional", intersection_names, group_of_row, vignette_of_row,
                                        vignette_ids, records, options)
                              .run(reference));

  for (std::size_t a = 0; a < n_axes; ++a) {
    std::vector<std::size_t> axis_group;
    for (const auto& record : records) axis_group.push_back(level_index[a].at(record.group[a]));
    const std::string axis_reference = options.reference_group.empty() ? "" : options.reference_group[a];
    report.levels.push_back(
        LevelAssessor(options.axes[a], levels[a], axis_group, vignette_of_row, vignette_ids, records, options)
            .run(axis_reference));
  }
  return report;
}

GapChange compare_vignette_gaps(const std::map<std::string, double>& before, const std::map<std::string, double>& after) {
  GapChange change;
  std::vector<double> x;
  std::vector<double> y;
  for (const auto& [id, gap] : before) {
    const auto it = after.find(id);
    if (it == after.end()) {
      ++change.only_before;
      continue;
    }
    y.push_back(gap);
    x.push_back(it->second);
  }
  change.only_after = after.size() - x.size();
  change.n_vignettes = x.size();
  if (x.empty()) {
    throw DataError(fmt::format(
        "compare_vignette_gaps: no vignette id is in both runs ({} before, {} after); compare runs of the same vignettes",
        before.size(), after.size()));
  }
  const double n = static_cast<double>(x.size());
  change.mean_after = std::accumulate(x.begin(), x.end(), 0.0) / n;
  change.mean_before = std::accumulate(y.begin(), y.end(), 0.0) / n;
  change.wilcoxon = wilcoxon_signed_rank(x, y);
  if (x.size() >= 2) change.paired_t = paired_t_test(x, y);
  return change;
}

}  // namespace medfair::stats
