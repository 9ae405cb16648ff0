// The preference builder: draw prompts, ask the teacher, sample candidates,
// rank them by sentence-embedding similarity to the reference, and append the
// pairs to a JSON Lines file that survives interruption.

#include "medfair/align/preference_builder.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <numeric>
#include <optional>
#include <set>
#include <unordered_map>

#include "medfair/error.hpp"
#include "medfair/eval/evaluator.hpp"
#include "medfair/io/atomic_file.hpp"
#include "medfair/io/jsonl.hpp"
#include "medfair/log.hpp"
#include "medfair/prompts/rng.hpp"

namespace medfair::align {

namespace {

constexpr const char* kWhere = "PreferenceBuilder";

// Seeds are kept below 2^63 so that every JSON reader, pyarrow included,
// reads them as signed 64-bit integers.
uint64_t seed_for(uint64_t seed, const std::string& key) { return prompts::derive_seed(seed, key) >> 1; }

std::string lower(std::string_view text) {
  std::string result(text);
  for (char& c : result) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return result;
}

std::string_view trim_left(std::string_view text, std::string_view characters = " \t\r\n") {
  size_t start = text.find_first_not_of(characters);
  return start == std::string_view::npos ? std::string_view() : text.substr(start);
}

// Whether `text` starts with one of the options' surface forms as a whole word.
bool starts_with_option(std::string_view text, const prompts::StagePrompt& stage) {
  const std::string lowered = lower(trim_left(text, " \t\r\n*_\"'"));
  for (const prompts::AnswerOption& option : stage.options) {
    std::vector<std::string> forms = option.surface_forms;
    forms.push_back(option.id);
    for (const std::string& form : forms) {
      const std::string word = lower(trim_left(form));
      if (word.empty() || lowered.compare(0, word.size(), word) != 0) continue;
      if (lowered.size() == word.size() || !std::isalnum(static_cast<unsigned char>(lowered[word.size()]))) {
        return true;
      }
    }
  }
  return false;
}

// Reads the records of an earlier run in their key order. A torn or
// unparsable last line (an interrupted append) is dropped with a warning.
// Throws FormatError naming the line for damage anywhere else.
std::vector<nlohmann::ordered_json> read_records(const std::filesystem::path& path) {
  std::vector<nlohmann::ordered_json> records;
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw IOError(fmt::format("cannot read {} to resume from it", path.string()));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(stream, line)) lines.push_back(line);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    try {
      records.push_back(nlohmann::ordered_json::parse(lines[i]));
    } catch (const nlohmann::json::exception& error) {
      if (i + 1 == lines.size()) {
        log::warning(kWhere, fmt::format("{}: dropping the torn last line {} from an interrupted run", path.string(),
                                         i + 1));
        break;
      }
      throw FormatError(fmt::format("{}:{}: invalid JSON record ({}); the file is damaged beyond a torn last line, "
                                    "so move it away and rerun",
                                    path.string(), i + 1, error.what()));
    }
  }
  return records;
}

nlohmann::ordered_json sampling_json(const SamplingOptions& options) {
  return nlohmann::ordered_json::parse(sampling_settings_json(options));
}

nlohmann::ordered_json messages_json(const Conversation& conversation) {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (const ChatMessage& message : conversation) {
    messages.push_back({{"role", message.role}, {"content", message.content}});
  }
  return messages;
}

nlohmann::ordered_json assistant_turn(const std::string& text) {
  return nlohmann::ordered_json::array({{{"role", "assistant"}, {"content", text}}});
}

// The outcome of ranking one prompt's candidates.
struct Ranking {
  std::vector<double> similarities;  // per candidate, to the reference
  std::vector<size_t> eligible;      // candidates in format, most similar first
};

Ranking rank_candidates(const at::Tensor& reference, const at::Tensor& candidates,
                        const std::vector<bool>& in_format) {
  Ranking ranking;
  at::Tensor similarity = cosine_similarity_matrix(reference.unsqueeze(0), candidates).squeeze(0).to(at::kDouble);
  for (int64_t j = 0; j < similarity.size(0); ++j) ranking.similarities.push_back(similarity[j].item<double>());
  for (size_t j = 0; j < in_format.size(); ++j) {
    if (in_format[j]) ranking.eligible.push_back(j);
  }
  std::stable_sort(ranking.eligible.begin(), ranking.eligible.end(),
                   [&](size_t a, size_t b) { return ranking.similarities[a] > ranking.similarities[b]; });
  return ranking;
}

}  // namespace

Pairing parse_pairing(std::string_view name) {
  if (name == "ranked") return Pairing::ranked;
  if (name == "reference") return Pairing::reference;
  throw ConfigError(fmt::format("unknown pairing \"{}\"; use ranked or reference", name));
}

TeacherSees parse_teacher_sees(std::string_view name) {
  if (name == "neutral") return TeacherSees::neutral;
  if (name == "modified") return TeacherSees::modified;
  throw ConfigError(fmt::format("unknown teacher_sees \"{}\"; use neutral or modified", name));
}

OutputFormat parse_output_format(std::string_view name) {
  if (name == "plain") return OutputFormat::plain;
  if (name == "conversational") return OutputFormat::conversational;
  throw ConfigError(fmt::format("unknown preference format \"{}\"; use plain or conversational", name));
}

bool answers_in_format(const std::string& text, const prompts::StagePrompt& stage) {
  if (starts_with_option(text, stage)) return true;
  if (stage.answer_prefix.empty()) return false;
  const std::string lowered = lower(text);
  const std::string prefix = lower(stage.answer_prefix);
  for (size_t at = lowered.find(prefix); at != std::string::npos; at = lowered.find(prefix, at + 1)) {
    if (starts_with_option(std::string_view(text).substr(at + prefix.size()), stage)) return true;
  }
  return false;
}

PreferenceBuilder::PreferenceBuilder(const CausalLM& target, const Teacher& teacher, const SentenceEncoder& encoder,
                                     PreferenceOptions options, std::shared_ptr<GenerationCache> cache)
    : target_(target), teacher_(teacher), encoder_(encoder), options_(std::move(options)), cache_(std::move(cache)) {
  if (options_.candidates < 2) {
    throw ConfigError(fmt::format("PreferenceOptions.candidates must be at least 2 to form a pair, got {}",
                                  options_.candidates));
  }
  if (options_.draws_per_vignette < 1) throw ConfigError("PreferenceOptions.draws_per_vignette must be at least 1");
  if (options_.prompts_per_step < 1) throw ConfigError("PreferenceOptions.prompts_per_step must be at least 1");
  if (options_.sampling.temperature == 0.0) {
    log::warning(kWhere, "candidates are sampled greedily (temperature 0), so all candidates of a prompt are equal "
                         "and drop_identical removes every pair; set a positive temperature");
  }
  target_id_ = eval::sha256_file(target_.source());
}

std::vector<prompts::PromptRecord> PreferenceBuilder::plan(const prompts::Task& task) const {
  prompts::ModifierOptions modifier_options = options_.prompts;
  modifier_options.seed = options_.seed;
  modifier_options.draws_per_vignette = options_.draws_per_vignette;
  prompts::PromptModifier modifier(options_.catalog ? *options_.catalog : prompts::AttributeCatalog::builtin(),
                                   modifier_options);
  std::vector<prompts::PromptRecord> records = modifier.randomized(task);
  if (!options_.vignettes.empty()) {
    std::set<std::string> wanted(options_.vignettes.begin(), options_.vignettes.end());
    for (const std::string& id : wanted) task.vignette(id);  // throws ConfigError naming an unknown id
    std::erase_if(records, [&](const prompts::PromptRecord& r) { return !wanted.contains(r.vignette_id); });
  }
  if (records.empty()) throw DataError(fmt::format("task {} produced no prompts for preference pairs", task.name));
  return records;
}

nlohmann::ordered_json PreferenceBuilder::settings_json(const prompts::Task& task) const {
  const PreferenceOptions& o = options_;
  return {
      {"task", task.name},
      {"target_sha256", target_id_},
      {"teacher", teacher_.kind()},
      {"teacher_model", teacher_.model_id()},
      {"candidates", o.candidates},
      {"pairing", o.pairing == Pairing::ranked ? "ranked" : "reference"},
      {"min_margin", o.min_margin},
      {"drop_identical", o.drop_identical},
      {"drop_off_format", o.drop_off_format},
      {"sampling", sampling_json(o.sampling)},
      {"teacher_sees", o.teacher_sees == TeacherSees::neutral ? "neutral" : "modified"},
      {"seed", o.seed},
      {"draws_per_vignette", o.draws_per_vignette},
      {"format", o.format == OutputFormat::plain ? "plain" : "conversational"},
      {"prompting", std::string(prompts::format_name(o.prompts.format))},
      {"axes", o.prompts.axes},
      {"encoder_sha256", eval::sha256_file(encoder_.source())},
  };
}

namespace {

// Keeps the records of `out` that belong to planned prompts, rewriting the
// file without a torn last line or records of prompts no longer planned.
// Creates an empty file when there is none.
std::unordered_map<std::string, nlohmann::ordered_json> resume_records(
    const std::filesystem::path& out, const std::vector<prompts::PromptRecord>& prompts,
    const std::string& settings_id) {
  std::unordered_map<std::string, nlohmann::ordered_json> found;
  if (!std::filesystem::exists(out)) {
    io::write_file_atomic(out, "");
    return found;
  }
  for (nlohmann::ordered_json& record : read_records(out)) {
    if (record.value("settings_id", "") != settings_id) {
      throw ConfigError(fmt::format("{} contains preference records built with other settings (settings_id {} "
                                    "instead of {}); write to a new file or delete that one",
                                    out.string(), record.value("settings_id", "none"), settings_id));
    }
    const std::string prompt_id = record.value("prompt_id", "");
    found[prompt_id] = std::move(record);
  }
  std::unordered_map<std::string, nlohmann::ordered_json> planned;
  std::string text;
  for (const prompts::PromptRecord& prompt : prompts) {
    auto it = found.find(prompt.prompt_id);
    if (it == found.end()) continue;
    text += io::to_jsonl_line(it->second) + "\n";
    planned.insert(found.extract(it));
  }
  if (!found.empty()) {
    log::warning(kWhere, fmt::format("{}: removing {} records whose prompts this run does not plan (first: {}); "
                                     "write to a new file to keep them",
                                     out.string(), found.size(), found.begin()->first));
  }
  io::write_file_atomic(out, text);
  log::info(kWhere, fmt::format("{}: resuming with {} finished records", out.string(), planned.size()));
  return planned;
}

}  // namespace

// One prompt's reference, candidates and their embeddings, ready for pairing.
struct PreferenceBuilder::PromptOutputs {
  const prompts::PromptRecord* prompt = nullptr;
  std::string reference;
  std::vector<std::string> candidates;
  std::vector<uint64_t> candidate_seeds;
  uint64_t teacher_seed = 0;
  at::Tensor reference_embedding;   // [D]
  at::Tensor candidate_embeddings;  // [N, D]
};

std::vector<std::string> PreferenceBuilder::answer_references(
    const std::vector<const prompts::PromptRecord*>& todo, const NeutralPrompts& neutral_prompts,
    std::unordered_map<std::string, std::string>& neutral_references) const {
  const bool neutral = options_.teacher_sees == TeacherSees::neutral;

  // One request per prompt, or per vignette without a reference yet when the
  // teacher answers the neutral form.
  std::vector<TeacherRequest> requests;
  std::vector<std::string> keys;
  for (const prompts::PromptRecord* prompt : todo) {
    const std::string key = neutral ? prompt->vignette_id : prompt->prompt_id;
    if (neutral && (neutral_references.contains(key) || std::find(keys.begin(), keys.end(), key) != keys.end())) {
      continue;
    }
    const Conversation& conversation = neutral ? neutral_prompts.at(key) : prompt->stages.at(0).conversation;
    requests.push_back({prompt->vignette_id, conversation, seed_for(options_.seed, "teacher/" + key)});
    keys.push_back(key);
  }
  std::vector<std::string> answers = requests.empty() ? std::vector<std::string>() : teacher_.answer(requests);

  std::unordered_map<std::string, std::string> fresh;
  for (size_t k = 0; k < requests.size(); ++k) {
    if (neutral) neutral_references[keys[k]] = answers[k];
    fresh[keys[k]] = answers[k];
  }
  std::vector<std::string> references;
  for (const prompts::PromptRecord* prompt : todo) {
    references.push_back(neutral ? neutral_references.at(prompt->vignette_id) : fresh.at(prompt->prompt_id));
  }
  return references;
}

std::optional<nlohmann::ordered_json> PreferenceBuilder::make_record(const PromptOutputs& outputs,
                                                                     const std::string& settings_id,
                                                                     PreferenceResult& result) const {
  const prompts::PromptRecord& prompt = *outputs.prompt;
  const prompts::StagePrompt& stage = prompt.stages.at(0);
  const std::vector<std::string>& texts = outputs.candidates;

  // Rank the candidates in format and pick the pair.
  std::vector<bool> in_format(texts.size(), true);
  if (options_.drop_off_format) {
    for (size_t j = 0; j < texts.size(); ++j) in_format[j] = answers_in_format(texts[j], stage);
  }
  Ranking ranking = rank_candidates(outputs.reference_embedding, outputs.candidate_embeddings, in_format);
  const bool by_reference = options_.pairing == Pairing::reference;
  if (ranking.eligible.size() < (by_reference ? 1u : 2u)) {
    ++result.dropped_format;
    return std::nullopt;
  }
  const size_t rejected = ranking.eligible.back();
  const int64_t chosen = by_reference ? -1 : static_cast<int64_t>(ranking.eligible.front());
  const std::string& chosen_text = by_reference ? outputs.reference : texts[static_cast<size_t>(chosen)];
  const double chosen_similarity = by_reference ? cosine(outputs.reference_embedding, outputs.reference_embedding)
                                                : ranking.similarities[static_cast<size_t>(chosen)];
  const double rejected_similarity = ranking.similarities[rejected];
  const double margin = chosen_similarity - rejected_similarity;
  if (options_.drop_identical && chosen_text == texts[rejected]) {
    ++result.dropped_identical;
    return std::nullopt;
  }
  if (margin < options_.min_margin) {
    ++result.dropped_margin;
    return std::nullopt;
  }

  // The record: the TRL fields first, then the metadata.
  nlohmann::ordered_json record;
  if (options_.format == OutputFormat::plain) {
    record["prompt"] = target_.apply_chat_template(stage.conversation, true);
    record["chosen"] = chosen_text;
    record["rejected"] = texts[rejected];
  } else {
    record["prompt"] = messages_json(stage.conversation);
    record["chosen"] = assistant_turn(chosen_text);
    record["rejected"] = assistant_turn(texts[rejected]);
  }
  nlohmann::ordered_json attributes = nlohmann::ordered_json::object();
  for (const auto& [axis, value] : prompt.attributes) attributes[axis] = value;
  record["prompt_id"] = prompt.prompt_id;
  record["task"] = prompt.task;
  record["vignette_id"] = prompt.vignette_id;
  record["group"] = prompt.group;
  record["attributes"] = attributes;
  record["name"] = prompt.name;
  record["pairing"] = by_reference ? "reference" : "ranked";
  record["teacher_sees"] = options_.teacher_sees == TeacherSees::neutral ? "neutral" : "modified";
  record["reference"] = outputs.reference;
  record["candidates"] = texts;
  record["similarities"] = ranking.similarities;
  record["chosen_index"] = chosen;
  record["rejected_index"] = rejected;
  record["chosen_similarity"] = chosen_similarity;
  record["rejected_similarity"] = rejected_similarity;
  record["margin"] = margin;
  record["teacher"] = teacher_.kind();
  record["teacher_model"] = teacher_.model_id();
  record["teacher_sha256"] =
      teacher_.kind() == "endpoint" ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(teacher_.model_id());
  record["target_sha256"] = target_id_;
  record["seeds"] = {{"run", options_.seed}, {"teacher", outputs.teacher_seed}, {"candidates", outputs.candidate_seeds}};
  record["settings_id"] = settings_id;
  return record;
}

PreferenceResult PreferenceBuilder::run(const prompts::Task& task, const std::filesystem::path& out,
                                        const PreferenceProgress& progress) const {
  c10::InferenceMode guard;
  const std::vector<prompts::PromptRecord> prompts = plan(task);
  const std::string settings_id = fmt::format("{:016x}", prompts::fnv1a(settings_json(task).dump()));
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());

  PreferenceResult result;
  result.path = out;
  result.prompts = prompts.size();
  std::unordered_map<std::string, nlohmann::ordered_json> kept = resume_records(out, prompts, settings_id);
  result.resumed = kept.size();

  // Neutral teacher prompts, one per vignette, and their references once answered.
  NeutralPrompts neutral_prompts;
  if (options_.teacher_sees == TeacherSees::neutral) {
    prompts::ModifierOptions modifier_options = options_.prompts;
    modifier_options.seed = options_.seed;
    prompts::PromptModifier modifier(options_.catalog ? *options_.catalog : prompts::AttributeCatalog::builtin(),
                                     modifier_options);
    for (const prompts::PromptRecord& record : modifier.neutral(task)) {
      neutral_prompts[record.vignette_id] = record.stages.at(0).conversation;
    }
  }
  std::unordered_map<std::string, std::string> neutral_references;

  const size_t n = options_.candidates;
  for (size_t start = 0; start < prompts.size(); start += options_.prompts_per_step) {
    const size_t end = std::min(prompts.size(), start + options_.prompts_per_step);
    std::vector<const prompts::PromptRecord*> todo;
    for (size_t i = start; i < end; ++i) {
      if (!kept.contains(prompts[i].prompt_id)) todo.push_back(&prompts[i]);
    }
    if (todo.empty()) {
      if (progress) progress(end, prompts.size());
      continue;
    }

    std::vector<std::string> references = answer_references(todo, neutral_prompts, neutral_references);

    // Target candidates, N per prompt, each with its own seed.
    std::vector<Conversation> conversations;
    std::vector<uint64_t> seeds;
    for (const prompts::PromptRecord* prompt : todo) {
      for (size_t j = 0; j < n; ++j) {
        conversations.push_back(prompt->stages.at(0).conversation);
        seeds.push_back(seed_for(options_.seed, fmt::format("candidate/{}/{}", prompt->prompt_id, j)));
      }
    }
    std::vector<CachedGeneration> candidates =
        generate_cached(target_, target_id_, conversations, options_.sampling, seeds, cache_.get());

    // Embeddings in one call: per prompt, the reference followed by its candidates.
    std::vector<std::string> sentences;
    for (size_t p = 0; p < todo.size(); ++p) {
      sentences.push_back(references[p]);
      for (size_t j = 0; j < n; ++j) sentences.push_back(candidates[p * n + j].text);
    }
    at::Tensor embeddings = encoder_.encode(sentences);

    std::string lines;
    for (size_t p = 0; p < todo.size(); ++p) {
      PromptOutputs outputs;
      outputs.prompt = todo[p];
      outputs.reference = references[p];
      for (size_t j = 0; j < n; ++j) {
        outputs.candidates.push_back(candidates[p * n + j].text);
        outputs.candidate_seeds.push_back(seeds[p * n + j]);
      }
      const bool neutral = options_.teacher_sees == TeacherSees::neutral;
      outputs.teacher_seed = seed_for(options_.seed, "teacher/" + (neutral ? todo[p]->vignette_id : todo[p]->prompt_id));
      const int64_t row = static_cast<int64_t>(p * (n + 1));
      outputs.reference_embedding = embeddings[row];
      outputs.candidate_embeddings = embeddings.narrow(0, row + 1, static_cast<int64_t>(n));
      std::optional<nlohmann::ordered_json> record = make_record(outputs, settings_id, result);
      if (!record) continue;
      lines += io::to_jsonl_line(*record) + "\n";
      kept[todo[p]->prompt_id] = std::move(*record);
    }
    if (!lines.empty()) io::append_file_durable(out, lines);
    if (progress) progress(end, prompts.size());
  }

  for (const prompts::PromptRecord& prompt : prompts) {
    auto it = kept.find(prompt.prompt_id);
    if (it != kept.end()) result.records.push_back(it->second);
  }
  return result;
}

}  // namespace medfair::align
