// libFuzzer target: template parsing in every syntax, the catalog check,
// neutral and assigned rendering, and the template check. Every input must
// either succeed or throw medfair::Error.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "medfair/error.hpp"
#include "medfair/prompts/lint.hpp"
#include "medfair/prompts/template.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace medfair::prompts;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const AttributeCatalog& catalog = AttributeCatalog::builtin();
  for (auto syntax : {TemplateSyntax::native, TemplateSyntax::qpain, TemplateSyntax::healer, TemplateSyntax::any}) {
    std::vector<TemplateIssue> issues;
    Template tmpl = Template::parse_lenient(text, syntax, issues);
    tmpl.check(catalog);
    try {
      render(tmpl, catalog, {}, "");
      render(tmpl, catalog, {{"race", "black"}, {"gender", "nonbinary"}, {"age", "40"}, {"insurance", "medicaid"}}, "Jordan");
    } catch (const medfair::Error&) {
    }
    LintOptions options;
    lint_template(text, catalog, syntax, "fuzz", options, {}, text.substr(0, size / 2));
  }
  return 0;
}
