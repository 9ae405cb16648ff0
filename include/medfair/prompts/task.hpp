#pragma once
// Tasks: vignette templates with their question, answer options, answer
// stages and reference answers, and the prompt records rendered from them.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "medfair/chat.hpp"
#include "medfair/prompts/catalog.hpp"
#include "medfair/prompts/template.hpp"

namespace medfair::prompts {

/// One answer option and the strings a model may write for it.
struct AnswerOption {
  /// Identifier used for reference answers and scores ("Yes", "Low", "3").
  std::string id;
  /// Text shown in prompts ("Low (0.5 mg)", "3. Neutral").
  std::string text;
  /// Continuations accepted as this option after the answer prefix, most
  /// likely first ("Yes", " Yes", "yes", " yes").
  std::vector<std::string> surface_forms;
};

/// Builds an option whose surface forms are `id`, with and without a leading
/// space, in its written case and in lower case.
AnswerOption make_option(std::string id, std::string text = {});

/// One question a model answers for a vignette. A conditional stage is asked
/// only after the stage `condition_stage` was answered `condition_option`, and
/// its conversation contains that answer as an assistant turn.
struct Stage {
  std::string id;
  /// The user turn that asks this stage after the earlier ones; empty for the
  /// first stage, whose question is the vignette's question.
  std::string question;
  std::vector<AnswerOption> options;
  /// Text the model continues after, at the start of its answer.
  std::string answer_prefix = "Answer:";
  std::string condition_stage;
  std::string condition_option;

  const AnswerOption* find_option(std::string_view id) const;
};

/// One pre-rendered counterfactual variant of already expanded data.
struct Variant {
  Assignment attributes;
  /// The vignette text as the file wrote it.
  std::string text;
  /// A system prompt given by the file for this variant (may be empty).
  std::string system;
};

/// A clinical case with its question.
struct Vignette {
  /// Stable id, unique within the task ("acute_cancer-03").
  std::string id;
  /// A grouping such as the Q-Pain clinical context; few-shot examples come
  /// from the same group when it has enough.
  std::string group;
  Template text;
  Template question;
  /// A solved explanation, shown after the answer in few-shot examples.
  Template explanation;
  std::vector<Stage> stages;
  /// System message of this vignette; empty means the task's.
  std::string system;
  /// Reference answer per stage id (option id); absent when unknown.
  std::map<std::string, std::string> reference;
  /// Non-empty for already expanded data: the variants replace rendering.
  std::vector<Variant> variants;
  /// "file:line" of the row this came from.
  std::string origin;

  bool expanded() const { return !variants.empty(); }
};

/// A task definition with its vignettes.
struct Task {
  std::string name;
  std::string description;
  /// System message of every prompt, unless a variant gives its own.
  std::string system_prompt;
  /// Appended to the question for chain-of-thought prompts.
  std::string cot_instruction =
      "Think through the case step by step. Then give your final answer on its own line, starting with \"Answer:\".";
  /// Axes varied by default (race and gender for the shipped tasks).
  std::vector<std::string> axes = {"race", "gender"};
  TemplateSyntax syntax = TemplateSyntax::any;
  std::vector<Vignette> vignettes;

  /// The vignette with `id`. Throws ConfigError when there is none.
  const Vignette& vignette(std::string_view id) const;
};

enum class PromptFormat { zero_shot, few_shot, chain_of_thought };

/// Parses "zero_shot", "few_shot" or "chain_of_thought" (hyphens and the
/// short names "zero", "few", "cot" are accepted). Throws ConfigError.
PromptFormat parse_format(std::string_view name);
std::string_view format_name(PromptFormat format);

/// One stage of a rendered prompt, ready for scoring.
struct StagePrompt {
  std::string stage;
  /// The conversation to score; the model continues after `answer_prefix`
  /// at the start of the assistant turn that follows it.
  Conversation conversation;
  std::string answer_prefix;
  std::vector<AnswerOption> options;
  /// Reference option id, empty when the task gives none.
  std::string reference;
  std::string condition_stage;
  std::string condition_option;
};

/// One rendered prompt: a vignette under one attribute assignment.
struct PromptRecord {
  /// Stable id: task/vignette/format/label.
  std::string prompt_id;
  std::string task;
  std::string vignette_id;
  std::string vignette_group;
  /// All prompts with the same set_id are counterfactual variants of each
  /// other (same vignette, same format).
  std::string set_id;
  /// The attribute cell, as assignment_label() writes it.
  std::string group;
  Assignment attributes;
  /// The first name written into name slots (empty when none).
  std::string name;
  PromptFormat format = PromptFormat::zero_shot;
  std::vector<StagePrompt> stages;

  /// The user turn of the first stage's last message.
  const std::string& prompt_text() const;
  /// One JSON object with task, ids, attributes, system, prompt text,
  /// options, reference answer and all stages.
  nlohmann::ordered_json to_json() const;
};

/// Writes one JSON line per record. Throws IOError.
void write_prompts_jsonl(const std::filesystem::path& path, const std::vector<PromptRecord>& records);

}  // namespace medfair::prompts
