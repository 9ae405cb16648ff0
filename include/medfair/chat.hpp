#pragma once
// Chat messages, the form in which prompts travel from the prompt layer to a
// model's chat template.

#include <string>
#include <vector>

namespace medfair {

/// One turn of a conversation. `role` is "system", "user" or "assistant".
struct ChatMessage {
  std::string role;
  std::string content;

  bool operator==(const ChatMessage&) const = default;
};

using Conversation = std::vector<ChatMessage>;

}  // namespace medfair
