#include "medfair/prompts/task.hpp"

#include <fmt/format.h>

#include "medfair/error.hpp"
#include "medfair/io/jsonl.hpp"

namespace medfair::prompts {

namespace {

std::string lower_ascii(std::string text) {
  for (auto& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

nlohmann::ordered_json options_json(const std::vector<AnswerOption>& options) {
  auto json = nlohmann::ordered_json::array();
  for (const auto& option : options) {
    json.push_back({{"id", option.id}, {"text", option.text}, {"surface_forms", option.surface_forms}});
  }
  return json;
}

}  // namespace

AnswerOption make_option(std::string id, std::string text) {
  AnswerOption option;
  option.text = text.empty() ? id : std::move(text);
  std::string lower = lower_ascii(id);
  option.surface_forms = {id, " " + id};
  if (lower != id) {
    option.surface_forms.push_back(lower);
    option.surface_forms.push_back(" " + lower);
  }
  option.id = std::move(id);
  return option;
}

const AnswerOption* Stage::find_option(std::string_view id) const {
  for (const auto& option : options) {
    if (option.id == id) return &option;
  }
  return nullptr;
}

const Vignette& Task::vignette(std::string_view id) const {
  for (const auto& vignette : vignettes) {
    if (vignette.id == id) return vignette;
  }
  throw ConfigError(fmt::format("task {} has no vignette \"{}\"", name, id));
}

PromptFormat parse_format(std::string_view name) {
  std::string key(name);
  for (auto& c : key) {
    if (c == '-') c = '_';
  }
  if (key == "zero_shot" || key == "zero") return PromptFormat::zero_shot;
  if (key == "few_shot" || key == "few") return PromptFormat::few_shot;
  if (key == "chain_of_thought" || key == "cot") return PromptFormat::chain_of_thought;
  throw ConfigError(fmt::format("unknown prompt format \"{}\"; use zero_shot, few_shot or chain_of_thought", name));
}

std::string_view format_name(PromptFormat format) {
  switch (format) {
    case PromptFormat::zero_shot: return "zero_shot";
    case PromptFormat::few_shot: return "few_shot";
    case PromptFormat::chain_of_thought: return "chain_of_thought";
  }
  return "zero_shot";
}

const std::string& PromptRecord::prompt_text() const {
  static const std::string empty;
  if (stages.empty() || stages.front().conversation.empty()) return empty;
  return stages.front().conversation.back().content;
}

nlohmann::ordered_json PromptRecord::to_json() const {
  nlohmann::ordered_json json;
  json["prompt_id"] = prompt_id;
  json["task"] = task;
  json["vignette_id"] = vignette_id;
  json["vignette_group"] = vignette_group;
  json["set_id"] = set_id;
  json["group"] = group;
  json["format"] = format_name(format);
  json["attributes"] = nlohmann::ordered_json::object();
  for (const auto& [axis, value] : attributes) json["attributes"][axis] = value;
  json["name"] = name;
  std::string system;
  if (!stages.empty() && !stages.front().conversation.empty() && stages.front().conversation.front().role == "system") {
    system = stages.front().conversation.front().content;
  }
  json["system"] = system;
  json["prompt"] = prompt_text();
  json["options"] = stages.empty() ? nlohmann::ordered_json::array() : options_json(stages.front().options);
  json["reference_answer"] = stages.empty() ? std::string() : stages.front().reference;
  json["stages"] = nlohmann::ordered_json::array();
  for (const auto& stage : stages) {
    nlohmann::ordered_json entry;
    entry["stage"] = stage.stage;
    entry["messages"] = nlohmann::ordered_json::array();
    for (const auto& message : stage.conversation) {
      entry["messages"].push_back({{"role", message.role}, {"content", message.content}});
    }
    entry["answer_prefix"] = stage.answer_prefix;
    entry["options"] = options_json(stage.options);
    entry["reference"] = stage.reference;
    entry["condition_stage"] = stage.condition_stage;
    entry["condition_option"] = stage.condition_option;
    json["stages"].push_back(std::move(entry));
  }
  return json;
}

void write_prompts_jsonl(const std::filesystem::path& path, const std::vector<PromptRecord>& records) {
  std::vector<nlohmann::ordered_json> lines;
  lines.reserve(records.size());
  for (const auto& record : records) lines.push_back(record.to_json());
  io::write_jsonl(path, lines);
}

}  // namespace medfair::prompts
