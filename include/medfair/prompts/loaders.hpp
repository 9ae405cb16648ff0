#pragma once
// Loaders for the three shipped clinical tasks and for users' own tasks.
//
//  - load_qpain: a folder with Q-Pain's five data_*.csv files (columns
//    Vignette, Question, Answer, Dosage, Explanation); 11 vignettes per
//    context, with a Yes/No stage and a Low/High dose stage asked after Yes.
//  - load_nurse: the expanded nurse triage and pain assessment CSV (columns
//    case, gender, race, text, system, prompt, options); rows are grouped back
//    into one vignette per case and statement with one variant per row.
//  - load_healer: a folder of NEJM Healer one-liner CSVs (columns title,
//    "Case one liner"); two Yes/No questions per case, specialist referral
//    and advanced imaging.
//  - load_generic: CSV or JSONL in the schema of docs/prompts.md.
//
// All of them accept UTF-8 with or without a byte-order mark, CRLF or LF and
// RFC 4180 quoting, and throw DataError or FormatError naming the file, row,
// column and the fix for malformed input.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "medfair/prompts/catalog.hpp"
#include "medfair/prompts/task.hpp"

namespace medfair::prompts {

/// The Q-Pain contexts in load order, as file stems without "data_".
const std::vector<std::string>& qpain_contexts();

Task load_qpain(const std::filesystem::path& folder);
Task load_nurse(const std::filesystem::path& csv_file, const AttributeCatalog& catalog = AttributeCatalog::builtin());
Task load_healer(const std::filesystem::path& folder);
/// Loads a CSV or JSONL task file (chosen by extension: .csv, .jsonl,
/// .ndjson). The task is named after the file stem unless `name` is given.
Task load_generic(const std::filesystem::path& file, const AttributeCatalog& catalog = AttributeCatalog::builtin(),
                  std::string name = {});

/// Loads a task by name: "qpain" (folder), "nurse" (CSV file, or a folder
/// holding unconscious_bias_nurses_final.csv), "healer" (folder) or "generic".
/// For qpain, nurse and healer, `path` may also be the shared data folder that
/// contains qpain/, nurse_bias/ and healer/.
Task load_task(std::string_view name, const std::filesystem::path& path,
               const AttributeCatalog& catalog = AttributeCatalog::builtin());

/// Parses an option list written as a JSON or Python list of strings
/// ("['a', 'b']", "[\"a\", \"b\"]"). Throws DataError naming `where` and
/// the character offset when it does not parse.
std::vector<std::string> parse_option_list(std::string_view text, const std::string& where);

/// Normalizes an answer spelling ("Yes", "Yes.", " no ") to an option id of
/// `options` by trimming, dropping a final period and ignoring case; returns
/// "" when nothing matches.
std::string normalize_answer(std::string_view text, const std::vector<AnswerOption>& options);

}  // namespace medfair::prompts
