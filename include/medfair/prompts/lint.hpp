#pragma once
// The template check behind `medfair lint-templates`: unbalanced brackets,
// unknown or malformed slots, slots that the vignette and its question do not
// share, and demographic words (a gendered pronoun, a race word, a catalog
// name) left outside the slots of a template.

#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "medfair/prompts/catalog.hpp"
#include "medfair/prompts/template.hpp"

namespace medfair::prompts {

enum class Severity { warning, error };

/// One finding, at a 1-based line and column of `file`.
struct LintIssue {
  std::string file;
  std::size_t line = 1;
  std::size_t column = 1;
  Severity severity = Severity::warning;
  /// "unbalanced-bracket", "unknown-slot", "nonstandard-slot",
  /// "slot-mismatch", "demographic-leak" or "no-templates".
  std::string code;
  std::string message;

  /// "file:line:col: warning: message [code]".
  std::string to_string() const;
};

/// Options of the template check.
struct LintOptions {
  /// Report warnings as errors (default false).
  bool strict = false;
  /// Slot syntax; nullopt chooses it from the file's columns (Q-Pain,
  /// Healer) or uses TemplateSyntax::any.
  std::optional<TemplateSyntax> syntax;
};

/// Maps a byte offset of a template to its 1-based line and column in the
/// file it came from.
using Locator = std::function<std::pair<std::size_t, std::size_t>(std::size_t offset)>;

/// Checks one template. With a `question`, also reports slots that the two do
/// not share. `locate` and `locate_question` map offsets into the file; when
/// empty, positions are taken within the text itself.
std::vector<LintIssue> lint_template(std::string_view text, const AttributeCatalog& catalog, TemplateSyntax syntax,
                                     const std::string& file, const LintOptions& options, const Locator& locate = {},
                                     std::optional<std::string_view> question = std::nullopt,
                                     const Locator& locate_question = {});

/// Checks every template in a file: Q-Pain and Healer CSVs, generic CSV or
/// JSONL task files, or any other file as one native template. I/O and format
/// errors of the file itself are thrown (IOError, FormatError).
std::vector<LintIssue> lint_file(const std::filesystem::path& path, const AttributeCatalog& catalog,
                                 const LintOptions& options = {});

/// The demographic words the leak check looks for, from the catalog.
std::vector<std::string> demographic_words(const AttributeCatalog& catalog);

}  // namespace medfair::prompts
