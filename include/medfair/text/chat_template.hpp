#pragma once
// Chat templates: renders a Conversation into the prompt string a chat model
// was trained on. medfair does not run Jinja. It recognises the common template
// families from the model's tokenizer.chat_template string and renders them in
// C++, byte for byte as transformers' apply_chat_template(..., tokenize=False).

#include <optional>
#include <string>
#include <string_view>

#include "medfair/chat.hpp"

namespace medfair::text {

enum class ChatTemplateFamily {
  chatml,   ///< <|im_start|>role\n...<|im_end|>\n (SmolLM2, Qwen2)
  llama3,   ///< <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> (Llama 3 Instruct)
  llama2,   ///< <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] (Llama 2 chat)
  gemma,    ///< <start_of_turn>user\n...<end_of_turn>\n (Gemma)
  mistral,  ///< <s>[INST] ... [/INST] (Mistral Instruct v0.1)
};

/// Returns the family's name as from_family() accepts it ("chatml", "llama3", ...).
std::string_view family_name(ChatTemplateFamily family);

class ChatTemplate {
 public:
  /// Recognises the family of a Jinja chat template (e.g. the GGUF key
  /// tokenizer.chat_template). `bos_token` and `eos_token` are the strings the
  /// template's bos_token/eos_token variables hold. Throws ConfigError, naming
  /// the template's first 60 characters, when the family is not recognised.
  static ChatTemplate from_jinja(std::string_view jinja, std::string_view bos_token = "",
                                 std::string_view eos_token = "");

  /// Selects a family by name: "chatml", "smollm2" (ChatML with SmolLM2's
  /// default system message), "llama3", "llama2", "gemma" or "mistral"; throws
  /// ConfigError for other names. When bos/eos are empty, the family's usual
  /// tokens are used ("<s>"/"</s>", "<|begin_of_text|>", "<bos>"/"<eos>").
  static ChatTemplate from_family(std::string_view name, std::string_view bos_token = "",
                                  std::string_view eos_token = "");

  /// Accepts either a family name or a Jinja template.
  static ChatTemplate from_string(std::string_view template_or_family, std::string_view bos_token = "",
                                  std::string_view eos_token = "");

  /// Renders `messages`; with `add_generation_prompt`, appends the header that
  /// opens the assistant's turn. Throws DataError for a role the family rejects
  /// (e.g. a system message for Gemma, or roles that do not alternate for Llama 2).
  std::string render(const Conversation& messages, bool add_generation_prompt = true) const;

  ChatTemplateFamily family() const { return family_; }
  /// ChatML system message inserted when the first message is not a system message
  /// (SmolLM2 and Qwen2.5 templates have one).
  const std::optional<std::string>& default_system() const { return default_system_; }

 private:
  ChatTemplateFamily family_ = ChatTemplateFamily::chatml;
  std::optional<std::string> default_system_;
  std::string bos_token_;
  std::string eos_token_;
};

/// Shorthand for ChatTemplate::from_string(template_or_family, bos, eos).render(messages, add_generation_prompt).
std::string render_chat(std::string_view template_or_family, const Conversation& messages,
                        bool add_generation_prompt = true, std::string_view bos_token = "",
                        std::string_view eos_token = "");

}  // namespace medfair::text
