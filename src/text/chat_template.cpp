// Chat template families rendered in C++. Each render function reproduces the
// output of the family's published Jinja template (the template strings of
// SmolLM2-Instruct, Qwen2, Meta-Llama-3-Instruct, Llama-2-chat, gemma-it and
// Mistral-7B-Instruct-v0.1 on the Hugging Face hub) for plain text messages.

#include "medfair/text/chat_template.hpp"

#include <fmt/format.h>

#include "internal.hpp"
#include "medfair/error.hpp"

namespace medfair::text {

namespace {

// Python's str.strip() with no argument, which Jinja's trim filter and
// .strip() call: removes leading and trailing characters for which
// str.isspace() is true.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string python_strip(std::string_view text) {
  std::size_t begin = 0;
  std::size_t end = text.size();
  while (begin < end) {
    std::size_t pos = begin;
    if (!is_python_space(detail::next_code_point(text, pos))) break;
    begin = pos;
  }
  // Walk back over whole characters: find each character's lead byte.
  while (end > begin) {
    std::size_t lead = end - 1;
    while (lead > begin && (static_cast<unsigned char>(text[lead]) & 0xC0) == 0x80) --lead;
    std::size_t pos = lead;
    if (!is_python_space(detail::next_code_point(text, pos))) break;
    end = lead;
  }
  return std::string(text.substr(begin, end - begin));
}

std::string preview(std::string_view jinja) {
  std::string head;
  std::size_t pos = 0;
  std::size_t count = 0;
  while (pos < jinja.size() && count < 60) {
    const std::size_t start = pos;
    detail::next_code_point(jinja, pos);
    head.append(jinja.substr(start, pos - start));
    ++count;
  }
  return head;
}

// Reads the literal default system message of a ChatML template: the text of a
// Jinja string literal that runs from "<|im_start|>system\n" to "<|im_end|>".
std::optional<std::string> find_default_system(std::string_view jinja) {
  static constexpr std::string_view kOpen = "<|im_start|>system";
  static constexpr std::string_view kClose = "<|im_end|>";
  for (std::size_t at = jinja.find(kOpen); at != std::string_view::npos; at = jinja.find(kOpen, at + 1)) {
    std::size_t start = at + kOpen.size();
    if (jinja.substr(start).starts_with("\n")) {
      start += 1;
    } else if (jinja.substr(start).starts_with("\\n")) {
      start += 2;
    } else {
      continue;
    }
    const std::size_t end = jinja.find(kClose, start);
    if (end == std::string_view::npos) continue;
    const std::string_view raw = jinja.substr(start, end - start);
    if (raw.find_first_of("'\"{}") != std::string_view::npos) continue;  // not one literal
    // Undo the escapes a Jinja string literal may use.
    std::string text;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) {
        const char escaped = raw[++i];
        if (escaped == 'n') {
          text.push_back('\n');
        } else if (escaped == 't') {
          text.push_back('\t');
        } else {
          text.push_back(escaped);
        }
      } else {
        text.push_back(raw[i]);
      }
    }
    return text;
  }
  return std::nullopt;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The alternation check of the Llama 2, Gemma and Mistral templates.
void require_alternation(const Conversation& messages, std::size_t first, std::string_view family) {
  for (std::size_t i = first; i < messages.size(); ++i) {
    const bool is_user = messages[i].role == "user";
    if (is_user != ((i - first) % 2 == 0)) {
      throw DataError(fmt::format("{} chat template: conversation roles must alternate user/assistant/user/"
                                  "assistant/..., but message {} has role {:?}",
                                  family, i, messages[i].role));
    }
  }
}

std::string render_chatml(const Conversation& messages, bool add_generation_prompt,
                          const std::optional<std::string>& default_system) {
  std::string out;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && default_system && messages[0].role != "system") {
      out += "<|im_start|>system\n" + *default_system + "<|im_end|>\n";
    }
    out += "<|im_start|>" + messages[i].role + "\n" + messages[i].content + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_llama3(const Conversation& messages, bool add_generation_prompt, const std::string& bos) {
  std::string out;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i == 0) out += bos;
    out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" + python_strip(messages[i].content) +
           "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Llama 2 ignores add_generation_prompt: its prompt already ends in " [/INST]".
std::string render_llama2(const Conversation& messages, const std::string& bos, const std::string& eos) {
  std::optional<std::string> system;
  std::size_t first = 0;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    first = 1;
  }
  require_alternation(messages, first, "llama2");
  std::string out;
  for (std::size_t i = first; i < messages.size(); ++i) {
    std::string content = messages[i].content;
    if (i == first && system) content = "<<SYS>>\n" + *system + "\n<</SYS>>\n\n" + content;
    if (messages[i].role == "user") {
      out += bos + "[INST] " + python_strip(content) + " [/INST]";
    } else if (messages[i].role == "assistant") {
      out += " " + python_strip(content) + " " + eos;
    }
  }
  return out;
}

std::string render_gemma(const Conversation& messages, bool add_generation_prompt, const std::string& bos) {
  if (!messages.empty() && messages[0].role == "system") {
    throw DataError("gemma chat template: the system role is not supported; put the instructions in the first user "
                    "message");
  }
  require_alternation(messages, 0, "gemma");
  std::string out = bos;
  for (const auto& message : messages) {
    const std::string role = message.role == "assistant" ? "model" : message.role;
    out += "<start_of_turn>" + role + "\n" + python_strip(message.content) + "<end_of_turn>\n";
  }
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

std::string render_mistral(const Conversation& messages, const std::string& bos, const std::string& eos) {
  require_alternation(messages, 0, "mistral");
  std::string out = bos;
  for (const auto& message : messages) {
    if (message.role == "user") {
      out += "[INST] " + message.content + " [/INST]";
    } else if (message.role == "assistant") {
      out += message.content + eos;
    } else {
      throw DataError(fmt::format("mistral chat template: only user and assistant roles are supported, got {:?}",
                                  message.role));
    }
  }
  return out;
}

}  // namespace

std::string_view family_name(ChatTemplateFamily family) {
  switch (family) {
    case ChatTemplateFamily::chatml:
      return "chatml";
    case ChatTemplateFamily::llama3:
      return "llama3";
    case ChatTemplateFamily::llama2:
      return "llama2";
    case ChatTemplateFamily::gemma:
      return "gemma";
    case ChatTemplateFamily::mistral:
      return "mistral";
  }
  return "unknown";
}

ChatTemplate ChatTemplate::from_family(std::string_view name, std::string_view bos_token, std::string_view eos_token) {
  ChatTemplate result;
  std::string default_bos, default_eos;
  if (name == "chatml") {
    result.family_ = ChatTemplateFamily::chatml;
  } else if (name == "smollm2") {
    result.family_ = ChatTemplateFamily::chatml;
    result.default_system_ = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
  } else if (name == "llama3") {
    result.family_ = ChatTemplateFamily::llama3;
    default_bos = "<|begin_of_text|>";
    default_eos = "<|eot_id|>";
  } else if (name == "llama2") {
    result.family_ = ChatTemplateFamily::llama2;
    default_bos = "<s>";
    default_eos = "</s>";
  } else if (name == "gemma") {
    result.family_ = ChatTemplateFamily::gemma;
    default_bos = "<bos>";
    default_eos = "<eos>";
  } else if (name == "mistral") {
    result.family_ = ChatTemplateFamily::mistral;
    default_bos = "<s>";
    default_eos = "</s>";
  } else {
    throw ConfigError(fmt::format("unknown chat template family {:?}; expected chatml, smollm2, llama3, llama2, gemma "
                                  "or mistral",
                                  std::string(name)));
  }
  result.bos_token_ = bos_token.empty() ? default_bos : std::string(bos_token);
  result.eos_token_ = eos_token.empty() ? default_eos : std::string(eos_token);
  return result;
}

ChatTemplate ChatTemplate::from_jinja(std::string_view jinja, std::string_view bos_token, std::string_view eos_token) {
  ChatTemplate result;
  if (contains(jinja, "<|im_start|>")) {
    // NOTE: templates that also handle tool calls (Qwen2.5) are rendered as
    // plain ChatML, which matches them only for messages without tools.
    result = from_family("chatml", bos_token, eos_token);
    result.default_system_ = find_default_system(jinja);
  } else if (contains(jinja, "<|start_header_id|>") && !contains(jinja, "Cutting Knowledge")) {
    result = from_family("llama3", bos_token, eos_token);
  } else if (contains(jinja, "<<SYS>>") && contains(jinja, "[INST]")) {
    result = from_family("llama2", bos_token, eos_token);
  } else if (contains(jinja, "<start_of_turn>")) {
    result = from_family("gemma", bos_token, eos_token);
  } else if (contains(jinja, "[INST]") && !contains(jinja, "system")) {
    result = from_family("mistral", bos_token, eos_token);
  } else {
    throw ConfigError(fmt::format("chat template not recognised (it starts with {:?}); medfair renders the ChatML, "
                                  "Llama 3, Llama 2, Gemma and Mistral v0.1 families. Pass an already formatted "
                                  "prompt, or force a family by name (chatml, llama3, llama2, gemma, mistral)",
                                  preview(jinja)));
  }
  return result;
}

ChatTemplate ChatTemplate::from_string(std::string_view template_or_family, std::string_view bos_token,
                                       std::string_view eos_token) {
  const bool is_name = !template_or_family.empty() &&
                       template_or_family.find_first_of("{}<> \n") == std::string_view::npos &&
                       template_or_family.size() <= 32;
  return is_name ? from_family(template_or_family, bos_token, eos_token)
                 : from_jinja(template_or_family, bos_token, eos_token);
}

std::string ChatTemplate::render(const Conversation& messages, bool add_generation_prompt) const {
  for (const auto& message : messages) {
    detail::require_utf8(message.content, "chat message");
  }
  switch (family_) {
    case ChatTemplateFamily::chatml:
      return render_chatml(messages, add_generation_prompt, default_system_);
    case ChatTemplateFamily::llama3:
      return render_llama3(messages, add_generation_prompt, bos_token_);
    case ChatTemplateFamily::llama2:
      return render_llama2(messages, bos_token_, eos_token_);
    case ChatTemplateFamily::gemma:
      return render_gemma(messages, add_generation_prompt, bos_token_);
    case ChatTemplateFamily::mistral:
      return render_mistral(messages, bos_token_, eos_token_);
  }
  return {};
}

std::string render_chat(std::string_view template_or_family, const Conversation& messages, bool add_generation_prompt,
                        std::string_view bos_token, std::string_view eos_token) {
  return ChatTemplate::from_string(template_or_family, bos_token, eos_token).render(messages, add_generation_prompt);
}

}  // namespace medfair::text
