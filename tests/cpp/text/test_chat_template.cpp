// Chat template families; the Python tests compare the same families with
// transformers' Jinja rendering.

#include <catch2/catch.hpp>

#include "medfair/error.hpp"
#include "medfair/text/chat_template.hpp"
#include "text_test_support.hpp"

using medfair::Conversation;
using medfair::text::ChatTemplate;
using medfair::text::ChatTemplateFamily;
using Catch::Matchers::Contains;

namespace {

// SmolLM2-135M-Instruct's tokenizer.chat_template.
const char* const kSmolLM2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

}  // namespace

TEST_CASE("chat chatml default system", "[text][chat]") {
  const auto tpl = ChatTemplate::from_jinja(kSmolLM2);
  CHECK(tpl.family() == ChatTemplateFamily::chatml);
  REQUIRE(tpl.default_system());
  CHECK(*tpl.default_system() == "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  const Conversation user_only{{"user", "Rate the pain."}};
  CHECK(tpl.render(user_only) ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nRate the pain.<|im_end|>\n<|im_start|>assistant\n");
  const Conversation with_system{{"system", "Be brief."}, {"user", "Hi"}};
  CHECK(tpl.render(with_system, false) == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST_CASE("chat llama3 trims content", "[text][chat]") {
  const Conversation messages{{"system", " S "}, {"user", "\n Q\t"}};
  CHECK(medfair::text::render_chat("llama3", messages) ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_CASE("chat llama2 system block", "[text][chat]") {
  const Conversation messages{{"system", "Sys"}, {"user", " Q1 "}, {"assistant", "A1"}, {"user", "Q2"}};
  CHECK(medfair::text::render_chat("llama2", messages) ==
        "<s>[INST] <<SYS>>\nSys\n<</SYS>>\n\n Q1 [/INST] A1 </s><s>[INST] Q2 [/INST]");
  const Conversation bad{{"user", "a"}, {"user", "b"}};
  MEDFAIR_CHECK_THROWS(medfair::text::render_chat("llama2", bad), medfair::DataError, Contains("must alternate"));
}

TEST_CASE("chat gemma and mistral", "[text][chat]") {
  const Conversation messages{{"user", "Q"}, {"assistant", "A"}, {"user", "R"}};
  CHECK(medfair::text::render_chat("gemma", messages) ==
        "<bos><start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n<start_of_turn>user\n"
        "R<end_of_turn>\n<start_of_turn>model\n");
  CHECK(medfair::text::render_chat("mistral", messages) == "<s>[INST] Q [/INST]A</s>[INST] R [/INST]");
  const Conversation system{{"system", "S"}, {"user", "Q"}};
  MEDFAIR_CHECK_THROWS(medfair::text::render_chat("gemma", system), medfair::DataError,
                       Contains("system role is not supported"));
}

TEST_CASE("chat unknown template", "[text][chat]") {
  const std::string jinja = "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}### tail";
  MEDFAIR_CHECK_THROWS(ChatTemplate::from_jinja(jinja), medfair::ConfigError,
                       Contains("starts with \"{% for m in messages %}### {{ m['role'] }}: {{ m['content'] \")"));
  MEDFAIR_CHECK_THROWS(ChatTemplate::from_jinja(jinja), medfair::ConfigError,
                       Contains("Pass an already formatted prompt, or force a family by name"));
  MEDFAIR_CHECK_THROWS(ChatTemplate::from_family("vicuna"), medfair::ConfigError,
                       Contains("unknown chat template family \"vicuna\""));
}
