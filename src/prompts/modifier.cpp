#include "medfair/prompts/modifier.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "medfair/error.hpp"

namespace medfair::prompts {

namespace {

// Fisher-Yates with the portable generator.
template <typename T>
void shuffle(std::vector<T>& items, SplitMix64& rng) {
  for (std::size_t i = items.size(); i > 1; --i) {
    std::size_t j = static_cast<std::size_t>(rng.below(i));
    std::swap(items[i - 1], items[j]);
  }
}

// Joins the parts that are not empty, each without trailing whitespace.
std::string join_nonempty(std::initializer_list<std::string> parts, const char* separator) {
  std::string out;
  for (std::string part : parts) {
    part.erase(part.find_last_not_of(" \t\r\n") + 1);
    if (part.empty()) continue;
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

}  // namespace

PromptModifier::PromptModifier(ModifierOptions options) : PromptModifier(AttributeCatalog::builtin(), std::move(options)) {}

PromptModifier::PromptModifier(AttributeCatalog catalog, ModifierOptions options)
    : catalog_(std::move(catalog)), options_(std::move(options)) {
  for (const auto& axis : options_.axes) catalog_.axis(axis);
  for (const auto& [axis, values] : options_.values) {
    if (values.empty()) throw ConfigError(fmt::format("the value list for axis {} is empty", axis));
    for (const auto& value : values) catalog_.value(axis, value);
  }
  for (const auto& [axis, value] : options_.fixed) catalog_.value(axis, value);
  if (options_.draws_per_vignette == 0) throw ConfigError("draws_per_vignette must be at least 1");
}

Assignment PromptModifier::with_fixed(Assignment assignment) const {
  for (const auto& [axis, value] : options_.fixed) {
    if (!find_value(assignment, axis)) assignment.emplace_back(axis, value);
  }
  return assignment;
}

std::vector<std::string> PromptModifier::axes_for(const Task& task) const {
  return options_.axes.empty() ? task.axes : options_.axes;
}

std::vector<Assignment> PromptModifier::grid(const std::vector<std::string>& requested) const {
  const auto& axes = options_.axes.empty() ? requested : options_.axes;
  std::vector<std::vector<std::string>> values;
  for (const auto& name : axes) {
    auto it = options_.values.find(name);
    values.push_back(it != options_.values.end() ? it->second : catalog_.axis(name).default_values);
  }
  std::vector<Assignment> cells;
  if (options_.grid == GridMode::marginal) {
    for (std::size_t a = 0; a < axes.size(); ++a) {
      for (const auto& value : values[a]) cells.push_back(with_fixed({{axes[a], value}}));
    }
    return cells;
  }
  // Intersectional: the Cartesian product, the last axis varying fastest.
  std::vector<std::size_t> index(axes.size(), 0);
  if (axes.empty()) return {with_fixed({})};
  for (;;) {
    Assignment cell;
    for (std::size_t a = 0; a < axes.size(); ++a) cell.emplace_back(axes[a], values[a][index[a]]);
    cells.push_back(with_fixed(std::move(cell)));
    std::size_t a = axes.size();
    while (a > 0) {
      --a;
      if (++index[a] < values[a].size()) break;
      index[a] = 0;
      if (a == 0) return cells;
    }
  }
}

Assignment PromptModifier::draw(const std::vector<std::string>& requested, SplitMix64& rng) const {
  const auto& axes = options_.axes.empty() ? requested : options_.axes;
  Assignment assignment;
  for (const auto& name : axes) {
    const Axis& axis = catalog_.axis(name);
    auto it = options_.values.find(name);
    const auto& ids = it != options_.values.end() ? it->second : axis.default_values;
    std::uint64_t total = 0;
    for (const auto& id : ids) total += axis.find(id)->weight;
    std::uint64_t ticket = rng.below(total);
    for (const auto& id : ids) {
      std::uint64_t weight = axis.find(id)->weight;
      if (ticket < weight) {
        assignment.emplace_back(name, id);
        break;
      }
      ticket -= weight;
    }
  }
  return with_fixed(std::move(assignment));
}

std::string PromptModifier::pick_name(const Assignment& assignment, SplitMix64& rng) const {
  if (!options_.use_names) return {};
  const auto* names = catalog_.names_for(assignment);
  if (!names) return {};
  return (*names)[static_cast<std::size_t>(rng.below(names->size()))];
}

std::string PromptModifier::render(const Template& tmpl, const Assignment& assignment, const std::string& name) const {
  return prompts::render(tmpl, catalog_, assignment, name);
}

std::string PromptModifier::render_neutral(const Template& tmpl) const {
  return prompts::render(tmpl, catalog_, with_fixed({}), {});
}

std::vector<const Vignette*> PromptModifier::pick_examples(const Task& task, const Vignette& vignette) const {
  const std::string& first_stage = vignette.stages.front().id;
  auto usable = [&](const Vignette& other) {
    return &other != &vignette && other.id != vignette.id && !other.expanded() && other.reference.count(first_stage);
  };
  std::vector<const Vignette*> same_group;
  std::vector<const Vignette*> all;
  for (const auto& other : task.vignettes) {
    if (!usable(other)) continue;
    all.push_back(&other);
    if (!vignette.group.empty() && other.group == vignette.group) same_group.push_back(&other);
  }

  auto& pool = same_group.size() >= options_.shots ? same_group : all;
  if (pool.size() < options_.shots) {
    throw ConfigError(fmt::format("few-shot prompts for task {} need {} solved examples besides vignette {}, but only {} "
                                  "have reference answers; lower shots or add reference answers",
                                  task.name, options_.shots, vignette.id, pool.size()));
  }

  SplitMix64 rng(derive_seed(options_.seed, "examples/" + task.name + "/" + vignette.id));
  // As in Q-Pain's design, the examples show each reference answer once
  // (for example one No and one Yes) before repeating any.
  std::map<std::string, std::vector<const Vignette*>> by_answer;
  for (const auto* other : pool) by_answer[other->reference.at(first_stage)].push_back(other);
  std::vector<const Vignette*> chosen;
  std::set<const Vignette*> already_chosen;
  for (auto& [answer, members] : by_answer) {
    if (chosen.size() == options_.shots) break;
    const Vignette* pick = members[static_cast<std::size_t>(rng.below(members.size()))];
    chosen.push_back(pick);
    already_chosen.insert(pick);
  }

  std::vector<const Vignette*> rest;
  for (const auto* other : pool) {
    if (!already_chosen.count(other)) rest.push_back(other);
  }
  shuffle(rest, rng);
  for (std::size_t i = 0; chosen.size() < options_.shots; ++i) chosen.push_back(rest[i]);
  shuffle(chosen, rng);
  return chosen;
}

std::string PromptModifier::example_text(const Vignette& example) const {
  // Examples are rendered neutrally, so every counterfactual variant of a
  // vignette shares them word for word and they carry no attribute.
  std::string text = render_neutral(example.text);
  std::string question = render_neutral(example.question);
  std::string out = join_nonempty({text, question}, "\n\n");
  for (const auto& stage : example.stages) {
    auto it = example.reference.find(stage.id);
    if (it == example.reference.end()) continue;
    const AnswerOption* option = stage.find_option(it->second);
    std::string label = stage.condition_stage.empty() ? std::string("Answer") : "Answer (" + stage.id + ")";
    out += "\n" + label + ": " + (option ? option->text : it->second);
  }
  if (!example.explanation.empty()) out += "\nExplanation: " + render_neutral(example.explanation);
  return out;
}

std::string PromptModifier::first_user_turn(const Task& task, const Vignette& vignette, const std::string& text,
                                            const std::string& question) const {
  std::string body = join_nonempty({text, question}, "\n\n");
  switch (options_.format) {
    case PromptFormat::zero_shot:
      return body;
    case PromptFormat::chain_of_thought:
      return join_nonempty({body, task.cot_instruction}, "\n\n");
    case PromptFormat::few_shot: {
      if (vignette.expanded()) {
        throw ConfigError(fmt::format("task {} holds expanded data without reference answers, so it has no few-shot "
                                      "form; use zero_shot or chain_of_thought",
                                      task.name));
      }
      std::string out = "Here are solved example cases, followed by the case to answer.";
      std::size_t number = 1;
      for (const auto* example : pick_examples(task, vignette)) {
        out += fmt::format("\n\nExample {}\n{}", number++, example_text(*example));
      }
      out += "\n\nCase to answer\n" + body;
      return out;
    }
  }
  return body;
}

PromptRecord PromptModifier::build(const Task& task, const Vignette& vignette, const Assignment& assignment,
                                   const std::string& name, const std::string& label) const {
  PromptRecord record;
  record.task = task.name;
  record.vignette_id = vignette.id;
  record.vignette_group = vignette.group;
  record.format = options_.format;
  record.set_id = fmt::format("{}/{}/{}", task.name, vignette.id, format_name(options_.format));
  record.prompt_id = record.set_id + "/" + label;
  record.group = assignment_label(assignment);
  record.attributes = assignment;
  record.name = name;

  std::string system = vignette.system.empty() ? task.system_prompt : vignette.system;
  std::string user;
  if (vignette.expanded()) {
    const Variant* variant = nullptr;
    for (const auto& candidate : vignette.variants) {
      if (candidate.attributes == assignment) variant = &candidate;
    }
    if (!variant) {
      throw ConfigError(fmt::format("vignette {} of task {} has no variant {}", vignette.id, task.name, record.group));
    }
    if (!variant->system.empty()) system = variant->system;
    user = first_user_turn(task, vignette, variant->text, vignette.question.text());
  } else {
    user = first_user_turn(task, vignette, render(vignette.text, assignment, name),
                           render(vignette.question, assignment, name));
  }

  Conversation base;
  if (options_.system_message && !system.empty()) base.push_back({"system", system});
  base.push_back({"user", user});
  for (const auto& stage : vignette.stages) {
    StagePrompt prompt;
    prompt.stage = stage.id;
    prompt.answer_prefix = stage.answer_prefix;
    prompt.options = stage.options;
    prompt.condition_stage = stage.condition_stage;
    prompt.condition_option = stage.condition_option;
    if (auto it = vignette.reference.find(stage.id); it != vignette.reference.end()) prompt.reference = it->second;
    if (stage.condition_stage.empty()) {
      prompt.conversation = base;
    } else {
      const StagePrompt* previous = nullptr;
      for (const auto& earlier : record.stages) {
        if (earlier.stage == stage.condition_stage) previous = &earlier;
      }
      if (!previous) {
        throw ConfigError(fmt::format("stage {} of vignette {} depends on stage {}, which does not come before it",
                                      stage.id, vignette.id, stage.condition_stage));
      }
      prompt.conversation = previous->conversation;
      prompt.conversation.push_back({"assistant", previous->answer_prefix + " " + stage.condition_option});
      prompt.conversation.push_back({"user", render(Template::parse(stage.question, TemplateSyntax::any), assignment, name)});
    }
    record.stages.push_back(std::move(prompt));
  }
  return record;
}

std::vector<PromptRecord> PromptModifier::counterfactuals(const Task& task) const {
  std::vector<PromptRecord> records;
  std::vector<Assignment> cells = grid(task.axes);
  for (const auto& vignette : task.vignettes) {
    if (vignette.expanded()) {
      for (const auto& variant : vignette.variants) {
        records.push_back(build(task, vignette, variant.attributes, {}, assignment_label(variant.attributes)));
      }
      continue;
    }
    for (const auto& cell : cells) {
      std::string label = assignment_label(cell);
      SplitMix64 rng(derive_seed(options_.seed, "name/" + task.name + "/" + vignette.id + "/" + label));
      records.push_back(build(task, vignette, cell, pick_name(cell, rng), label));
    }
  }
  return records;
}

std::vector<PromptRecord> PromptModifier::randomized(const Task& task) const {
  std::vector<PromptRecord> records;
  SplitMix64 rng(derive_seed(options_.seed, "random/" + task.name));
  std::vector<std::string> axes = axes_for(task);
  for (const auto& vignette : task.vignettes) {
    for (std::size_t d = 0; d < options_.draws_per_vignette; ++d) {
      std::string label = fmt::format("draw{}", d);
      if (vignette.expanded()) {
        const Variant& variant = vignette.variants[static_cast<std::size_t>(rng.below(vignette.variants.size()))];
        records.push_back(build(task, vignette, variant.attributes, {}, label));
        continue;
      }
      Assignment assignment = draw(axes, rng);
      std::string name = pick_name(assignment, rng);
      records.push_back(build(task, vignette, assignment, name, label));
    }
  }
  return records;
}

std::vector<PromptRecord> PromptModifier::neutral(const Task& task) const {
  std::vector<PromptRecord> records;
  for (const auto& vignette : task.vignettes) {
    if (vignette.expanded()) {
      throw ConfigError(fmt::format("task {} holds expanded data (vignette {}), which has no neutral form; neutral "
                                    "prompts need templates",
                                    task.name, vignette.id));
    }
    records.push_back(build(task, vignette, with_fixed({}), {}, "neutral"));
  }
  return records;
}

}  // namespace medfair::prompts
