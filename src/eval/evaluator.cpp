// The counterfactual audit: render, score set by set, write as it goes,
// resume, summarise.

#include "medfair/eval/evaluator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <unordered_map>

#include "medfair/error.hpp"
#include "medfair/io/atomic_file.hpp"
#include "medfair/log.hpp"
#include "medfair/stats/fairness.hpp"
#include "internal.hpp"

namespace medfair::eval {

namespace {

constexpr const char* kResultsFile = "results.jsonl";
constexpr const char* kSummaryFile = "summary.json";
constexpr const char* kSettingsFile = "settings.json";

// A counterfactual set: indices into the prompt list, in order.
struct PromptSet {
  std::string id;
  std::vector<size_t> members;
};

std::vector<PromptSet> group_sets(const std::vector<prompts::PromptRecord>& records) {
  std::vector<PromptSet> sets;
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < records.size(); ++i) {
    auto [it, inserted] = index.emplace(records[i].set_id, sets.size());
    if (inserted) sets.push_back(PromptSet{records[i].set_id, {}});
    sets[it->second].members.push_back(i);
  }
  return sets;
}

nlohmann::json make_record(const prompts::PromptRecord& prompt, const prompts::StagePrompt& stage,
                           const StageScores& scores) {
  nlohmann::json attributes = nlohmann::json::object();
  for (const auto& [axis, value] : prompt.attributes) attributes[axis] = value;
  nlohmann::json record = {
      {"prompt_id", prompt.prompt_id},
      {"task", prompt.task},
      {"question", stage.stage},
      {"vignette_id", prompt.vignette_id},
      {"set_id", prompt.set_id},
      {"format", std::string(prompts::format_name(prompt.format))},
      {"attributes", attributes},
      {"group", prompt.group},
      {"name", prompt.name},
      {"options", scores.options},
      {"probabilities", scores.probabilities},
      {"log_probs", scores.log_probs},
      {"coverage", scores.coverage},
      {"predicted", scores.options[scores.predicted]},
  };
  record["reference"] = stage.reference.empty() ? nlohmann::json(nullptr) : nlohmann::json(stage.reference);
  if (!scores.sample_counts.empty()) {
    record["sample_counts"] = scores.sample_counts;
    record["parse_failures"] = scores.parse_failures;
  }
  return record;
}

// Appends whole records durably, so a crash leaves at most one torn line at
// the end of the file, which read_results() drops.
void append_records(const std::filesystem::path& path, const std::vector<nlohmann::json>& records) {
  std::string text;
  for (const nlohmann::json& record : records) {
    text += record.dump();
    text += '\n';
  }
  io::append_file_durable(path, text);
}

std::vector<std::string> axes_of(const AuditOptions& options, const prompts::Task& task) {
  return options.prompts.axes.empty() ? task.axes : options.prompts.axes;
}

nlohmann::json settings_json(const SetScorer& scorer, const prompts::Task& task, const AuditOptions& options,
                             const std::vector<std::string>& axes) {
  nlohmann::json values = nlohmann::json::object();
  for (const auto& [axis, list] : options.prompts.values) values[axis] = list;
  nlohmann::json settings = scorer.describe();
  settings.update({
      {"task", task.name},
      {"prompting", std::string(prompts::format_name(options.prompts.format))},
      {"axes", axes},
      {"values", values},
      {"grid", options.prompts.grid == prompts::GridMode::intersectional ? "intersectional" : "marginal"},
      {"seed", options.prompts.seed},
      {"shots", options.prompts.shots},
      {"vignettes", options.vignettes},
  });
  return settings;
}

}  // namespace

std::string sha256_file(const std::filesystem::path& path) {
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(path)) {
    // A model folder: hash its weight and config files in name order.
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      const std::string ext = entry.path().extension().string();
      if (entry.is_regular_file() && (ext == ".safetensors" || ext == ".json")) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  detail::Sha256 hash;
  std::vector<char> buffer(1 << 20);
  for (const auto& file : files) {
    std::ifstream stream(file, std::ios::binary);
    if (!stream) throw IOError(fmt::format("cannot read {} to hash it", file.string()));
    while (stream) {
      stream.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      hash.update(buffer.data(), static_cast<size_t>(stream.gcount()));
    }
  }
  return hash.hex_digest();
}

std::vector<nlohmann::json> read_results(const std::filesystem::path& path) {
  std::vector<nlohmann::json> records;
  std::ifstream stream(path);
  if (!stream) return records;
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(stream, line)) lines.push_back(line);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    try {
      records.push_back(nlohmann::json::parse(lines[i]));
    } catch (const nlohmann::json::exception& error) {
      if (i + 1 == lines.size()) {
        log::warning("FairnessEvaluator", fmt::format("{}: dropping the torn last line {} from an interrupted run",
                                                      path.string(), i + 1));
        break;
      }
      throw FormatError(fmt::format("{}:{}: invalid JSON record ({}); the file is damaged beyond a torn last line, "
                                    "so move it away and rerun the audit",
                                    path.string(), i + 1, error.what()));
    }
  }
  return records;
}

FairnessEvaluator::FairnessEvaluator(const CausalLM& model, AuditOptions options)
    : FairnessEvaluator(std::make_shared<OptionScorer>(model, options.scorer), std::move(options)) {}

FairnessEvaluator::FairnessEvaluator(std::shared_ptr<const SetScorer> scorer, AuditOptions options)
    : scorer_(std::move(scorer)), options_(std::move(options)) {
  if (!scorer_) throw ConfigError("FairnessEvaluator needs a scorer, got a null pointer");
  if (options_.confidence <= 0 || options_.confidence >= 1) {
    throw ConfigError(fmt::format("AuditOptions.confidence must be in (0, 1), got {}", options_.confidence));
  }
}

std::vector<nlohmann::json> FairnessEvaluator::score(const std::vector<prompts::PromptRecord>& prompts,
                                                     const ProgressCallback& progress) const {
  const SetScorer& scorer = *scorer_;
  std::vector<nlohmann::json> records;
  size_t done = 0;
  for (const PromptSet& set : group_sets(prompts)) {
    const size_t n_stages = prompts[set.members.front()].stages.size();
    std::vector<std::vector<nlohmann::json>> by_prompt(set.members.size());
    StageCarry carry;
    for (size_t s = 0; s < n_stages; ++s) {
      std::vector<const prompts::StagePrompt*> stages;
      for (size_t m : set.members) stages.push_back(&prompts[m].stages.at(s));
      std::vector<StageScores> scores = scorer.score_set(stages, n_stages > 1 ? &carry : nullptr);
      for (size_t k = 0; k < set.members.size(); ++k) {
        by_prompt[k].push_back(make_record(prompts[set.members[k]], *stages[k], scores[k]));
      }
    }
    for (auto& list : by_prompt) {
      for (auto& record : list) records.push_back(std::move(record));
    }
    done += set.members.size();
    if (progress) progress(done, prompts.size());
  }
  return records;
}

nlohmann::json FairnessEvaluator::summarize(const std::vector<nlohmann::json>& records,
                                            const std::vector<std::string>& axes) const {
  // Questions: a stage's records, split by option set when vignettes offer
  // different options for the same stage (the nurse statements mix 5-point
  // Likert items with multiple-choice ones). The largest set keeps the stage's
  // name, the others become "stage [a/b/c/d]". Order of first appearance.
  std::vector<std::string> stage_ids;
  std::map<std::string, std::vector<std::pair<nlohmann::json, size_t>>> option_sets;  // stage -> (options, count)
  for (const auto& record : records) {
    const std::string stage = record.at("question").get<std::string>();
    if (std::find(stage_ids.begin(), stage_ids.end(), stage) == stage_ids.end()) stage_ids.push_back(stage);
    auto& sets = option_sets[stage];
    auto it = std::find_if(sets.begin(), sets.end(), [&](const auto& entry) { return entry.first == record.at("options"); });
    if (it == sets.end()) {
      sets.emplace_back(record.at("options"), 1);
    } else {
      ++it->second;
    }
  }
  struct Question {
    std::string name;
    std::string stage;
    nlohmann::json options;
  };
  std::vector<Question> list;
  for (const std::string& stage : stage_ids) {
    const auto& sets = option_sets[stage];
    size_t largest = 0;
    for (size_t i = 1; i < sets.size(); ++i) {
      if (sets[i].second > sets[largest].second) largest = i;
    }
    for (size_t i = 0; i < sets.size(); ++i) {
      std::string name = stage;
      if (i != largest) {
        name += " [";
        for (size_t o = 0; o < sets[i].first.size(); ++o) {
          if (o > 0) name += '/';
          name += sets[i].first[o].get<std::string>();
        }
        name += "]";
      }
      list.push_back({name, stage, sets[i].first});
    }
  }
  nlohmann::json questions = nlohmann::json::object();
  for (const Question& question : list) {
    const std::string& stage = question.stage;
    stats::FairnessOptions fairness;
    fairness.axes = axes;
    fairness.reference_group = options_.reference_group;
    fairness.bootstrap.replicates = options_.bootstrap_replicates;
    fairness.bootstrap.level = options_.confidence;
    fairness.bootstrap.seed = options_.bootstrap_seed;
    std::vector<stats::AuditRecord> rows;
    for (const auto& record : records) {
      if (record.at("question") != stage || record.at("options") != question.options) continue;
      std::vector<std::string> options = record.at("options").get<std::vector<std::string>>();
      if (fairness.options.empty()) fairness.options = options;
      stats::AuditRecord row;
      row.vignette_id = record.at("vignette_id").get<std::string>();
      for (const std::string& axis : axes) {
        auto value = record.at("attributes").find(axis);
        row.group.push_back(value == record.at("attributes").end() ? std::string("(none)") : value->get<std::string>());
      }
      row.probabilities = record.at("probabilities").get<std::vector<double>>();
      const std::string predicted = record.at("predicted").get<std::string>();
      row.predicted = static_cast<size_t>(std::find(options.begin(), options.end(), predicted) - options.begin());
      if (!record.at("reference").is_null()) {
        const std::string reference = record.at("reference").get<std::string>();
        auto it = std::find(options.begin(), options.end(), reference);
        if (it != options.end()) row.reference = static_cast<size_t>(it - options.begin());
      }
      rows.push_back(std::move(row));
    }
    questions[question.name] = stats::to_json(stats::assess_fairness(rows, fairness));
  }
  return questions;
}

AuditResult FairnessEvaluator::run(const prompts::Task& task, const std::filesystem::path& out_dir,
                                   const ProgressCallback& progress) const {
  std::filesystem::create_directories(out_dir);
  const std::vector<std::string> axes = axes_of(options_, task);

  // Prompts of the audited vignettes.
  const prompts::PromptModifier modifier = options_.catalog
                                               ? prompts::PromptModifier(*options_.catalog, options_.prompts)
                                               : prompts::PromptModifier(options_.prompts);
  std::vector<prompts::PromptRecord> prompts = modifier.counterfactuals(task);
  if (!options_.vignettes.empty()) {
    std::set<std::string> wanted(options_.vignettes.begin(), options_.vignettes.end());
    for (const std::string& id : wanted) task.vignette(id);  // throws ConfigError naming an unknown id
    std::erase_if(prompts, [&](const prompts::PromptRecord& p) { return !wanted.contains(p.vignette_id); });
  }
  if (prompts.empty()) throw DataError(fmt::format("task {} produced no prompts to audit", task.name));

  // Settings: a resumed run must have been started with the same ones.
  nlohmann::json settings = settings_json(*scorer_, task, options_, axes);
  const std::filesystem::path settings_path = out_dir / kSettingsFile;
  const std::filesystem::path results_path = out_dir / kResultsFile;
  if (std::filesystem::exists(results_path) && std::filesystem::exists(settings_path)) {
    std::ifstream stream(settings_path);
    nlohmann::json previous = nlohmann::json::parse(stream, nullptr, /*allow_exceptions=*/false);
    if (previous != settings) {
      throw ConfigError(fmt::format("{} contains results of an audit with other settings ({}); use a new output folder "
                                    "or delete that one",
                                    out_dir.string(), settings_path.string()));
    }
  }
  io::write_file_atomic(settings_path, settings.dump(2) + "\n");

  // Resume: keep the records of complete sets, drop partial ones.
  std::vector<PromptSet> sets = group_sets(prompts);
  std::unordered_map<std::string, size_t> expected;
  for (const PromptSet& set : sets) {
    expected[set.id] = set.members.size() * prompts[set.members.front()].stages.size();
  }
  std::unordered_map<std::string, std::vector<nlohmann::json>> kept;
  size_t resumed = 0;
  {
    std::unordered_map<std::string, std::vector<nlohmann::json>> found;
    for (auto& record : read_results(results_path)) {
      found[record.value("set_id", "")].push_back(std::move(record));
    }
    std::vector<nlohmann::json> complete;
    for (auto& [set_id, records] : found) {
      auto it = expected.find(set_id);
      if (it != expected.end() && records.size() == it->second) {
        resumed += records.size();
        kept[set_id] = records;
      }
    }
    if (!found.empty()) {
      std::string text;
      for (const PromptSet& set : sets) {
        auto it = kept.find(set.id);
        if (it == kept.end()) continue;
        for (const auto& record : it->second) text += record.dump() + "\n";
      }
      io::write_file_atomic(results_path, text);
      log::info("FairnessEvaluator", fmt::format("{}: resuming with {} records of complete counterfactual sets",
                                                 results_path.string(), resumed));
    }
  }

  // Score the remaining sets, appending each set's records as soon as it is done.
  size_t done = 0;
  for (const PromptSet& set : sets) {
    if (!kept.contains(set.id)) {
      std::vector<prompts::PromptRecord> members;
      for (size_t m : set.members) members.push_back(prompts[m]);
      std::vector<nlohmann::json> records = score(members);
      append_records(results_path, records);
      kept[set.id] = std::move(records);
    }
    done += set.members.size();
    if (progress) progress(done, prompts.size());
  }

  // Summary over all records in prompt order, so resumed and uninterrupted
  // runs summarise identical inputs.
  AuditResult result;
  result.results_path = results_path;
  result.summary_path = out_dir / kSummaryFile;
  result.resumed_records = resumed;
  for (const PromptSet& set : sets) {
    for (auto& record : kept[set.id]) result.records.push_back(record);
  }
  double coverage_sum = 0;
  double coverage_min = 1;
  for (const auto& record : result.records) {
    const double coverage = record.at("coverage").get<double>();
    coverage_sum += coverage;
    coverage_min = std::min(coverage_min, coverage);
  }
  nlohmann::json run_settings = settings;
  run_settings["n_prompts"] = prompts.size();
  run_settings["n_records"] = result.records.size();
  result.summary = {
      {"schema_version", 1},
      {"settings", run_settings},
      {"questions", summarize(result.records, axes)},
      {"coverage", {{"mean", coverage_sum / static_cast<double>(result.records.size())}, {"min", coverage_min}}},
  };
  // Sampled scoring: how often an answer matched no option.
  size_t sampled = 0;
  size_t failures = 0;
  for (const auto& record : result.records) {
    if (!record.contains("sample_counts")) continue;
    for (const auto& count : record.at("sample_counts")) sampled += count.get<size_t>();
    failures += record.at("parse_failures").get<size_t>();
    sampled += record.at("parse_failures").get<size_t>();
  }
  if (sampled > 0) {
    result.summary["sampling"] = {{"answers", sampled},
                                  {"parse_failures", failures},
                                  {"parse_failure_rate", static_cast<double>(failures) / static_cast<double>(sampled)}};
  }
  io::write_file_atomic(result.summary_path, result.summary.dump(2) + "\n");
  return result;
}

}  // namespace medfair::eval
