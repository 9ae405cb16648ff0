#pragma once
// PromptModifier renders a task's vignettes under protected-attribute
// assignments: the full counterfactual grid, seeded random draws, or the
// neutral form without any protected attribute. Output depends only on the
// inputs and the seed (SplitMix64, see rng.hpp), so it is byte-identical on
// every platform.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "medfair/prompts/catalog.hpp"
#include "medfair/prompts/rng.hpp"
#include "medfair/prompts/task.hpp"

namespace medfair::prompts {

enum class GridMode {
  intersectional,  // every combination of the chosen axes' values
  marginal,        // each axis varied alone, the other axes unassigned or fixed
};

/// Options of PromptModifier.
struct ModifierOptions {
  /// Axes to vary; empty means the task's axes.
  std::vector<std::string> axes;
  /// Values to use per axis; an axis not listed uses its default_values.
  std::map<std::string, std::vector<std::string>> values;
  /// Values held fixed for axes that are not varied; other axes render
  /// neutrally.
  std::map<std::string, std::string> fixed;
  /// Combination of the chosen axes in the grid (default intersectional).
  GridMode grid = GridMode::intersectional;
  /// Seed of name choice, random draws and few-shot example choice (default 0).
  std::uint64_t seed = 0;
  /// Prompt format (default zero-shot).
  PromptFormat format = PromptFormat::zero_shot;
  /// Solved examples before the open vignette in few-shot prompts (default 2).
  std::size_t shots = 2;
  /// Prompts per vignette in random modification (default 1).
  std::size_t draws_per_vignette = 1;
  /// Whether name slots get a first name from the attribute cell (default
  /// true); false writes the catalog's neutral name.
  bool use_names = true;
  /// Whether prompts start with the task's system message (default true).
  bool system_message = true;
};

class PromptModifier {
 public:
  /// Uses the built-in catalog.
  explicit PromptModifier(ModifierOptions options = {});
  PromptModifier(AttributeCatalog catalog, ModifierOptions options);

  const AttributeCatalog& catalog() const { return catalog_; }
  const ModifierOptions& options() const { return options_; }

  /// The grid cells for `axes` (options' axes when set), in axis order and
  /// the listed value order, each with the fixed values appended.
  std::vector<Assignment> grid(const std::vector<std::string>& axes) const;
  /// Draws one value per axis, weighted by the catalog weights.
  Assignment draw(const std::vector<std::string>& axes, SplitMix64& rng) const;
  /// Picks a first name for the cell of `assignment`, or "" when the catalog
  /// has no name axes or one is unassigned.
  std::string pick_name(const Assignment& assignment, SplitMix64& rng) const;

  /// Renders one template; see prompts::render.
  std::string render(const Template& tmpl, const Assignment& assignment, const std::string& name = {}) const;
  /// Renders with no protected attribute: every axis neutral, the neutral
  /// name and pronouns. Throws ConfigError if a slot's axis has no neutral
  /// form and no fixed value.
  std::string render_neutral(const Template& tmpl) const;

  /// Every vignette under every grid cell. Expanded data returns its variants.
  std::vector<PromptRecord> counterfactuals(const Task& task) const;
  /// `draws_per_vignette` random assignments per vignette.
  std::vector<PromptRecord> randomized(const Task& task) const;
  /// One neutral prompt per vignette. Throws ConfigError for expanded data.
  std::vector<PromptRecord> neutral(const Task& task) const;

  /// Builds the prompt record of one vignette under `assignment`.
  PromptRecord build(const Task& task, const Vignette& vignette, const Assignment& assignment, const std::string& name,
                     const std::string& label) const;

 private:
  std::vector<std::string> axes_for(const Task& task) const;
  Assignment with_fixed(Assignment assignment) const;
  std::vector<const Vignette*> pick_examples(const Task& task, const Vignette& vignette) const;
  std::string example_text(const Vignette& example) const;
  std::string first_user_turn(const Task& task, const Vignette& vignette, const std::string& text,
                              const std::string& question) const;

  AttributeCatalog catalog_;
  ModifierOptions options_;
};

}  // namespace medfair::prompts
