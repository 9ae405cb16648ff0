// LoRA adapters on the real SmolLM2-135M-Instruct GGUF file: initialisation,
// the PEFT folder round trip, disabling, gradients and the load errors. Logit
// parity with PEFT itself is checked in tests/python/test_align_lora.py.

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "medfair/error.hpp"
#include "medfair/models/causal_lm.hpp"
#include "test_support.hpp"

using medfair::CausalLM;
using medfair::LoraOptions;

namespace {

CausalLM load_smollm2() { return CausalLM::load(medfair::test::smollm2_gguf()); }

at::Tensor sample_ids() { return at::tensor(std::vector<int64_t>{1, 9690, 198, 2683, 314, 253, 5356, 30}).unsqueeze(0); }

at::Tensor logits_of(const CausalLM& model) {
  c10::NoGradGuard no_grad;
  return model.logits(sample_ids());
}

void randomize_b(CausalLM& model) {
  c10::NoGradGuard no_grad;
  at::Generator generator = at::detail::createCPUGenerator(11);
  for (auto& [name, tensor] : model.adapter_state_dict()) {
    if (name.find(".lora_B.") != std::string::npos) tensor.normal_(0.0, 0.05, generator);
  }
}

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream stream(path);
  return nlohmann::json::parse(stream);
}

void write_json(const std::filesystem::path& path, const nlohmann::json& value) {
  std::ofstream stream(path);
  stream << value.dump(2);
}

}  // namespace

TEST_CASE("lora init keeps logits", "[lora]") {
  CausalLM model = load_smollm2();
  const at::Tensor before = logits_of(model);
  model.add_lora(LoraOptions{8, 16.0, 0.0, false, medfair::lora_target_names(), 0});
  REQUIRE(model.has_lora());
  CHECK(model.lora_options().scaling() == Approx(2.0));
  CHECK(at::equal(logits_of(model), before));
  // 30 layers, seven projections, A and B each.
  CHECK(model.adapter_state_dict().size() == 30 * 7 * 2);
  CHECK(model.adapter_parameters().size() == 30 * 7 * 2);
  const at::Tensor a = model.adapter_state_dict().at("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
  CHECK(a.sizes() == at::IntArrayRef({8, 1536}));
  CHECK(a.abs().max().item<double>() <= 1.0 / std::sqrt(1536.0));
}

TEST_CASE("lora rslora scaling", "[lora]") {
  LoraOptions options{16, 32.0, 0.0, true, {"q_proj"}, 0};
  CHECK(options.scaling() == Approx(8.0));
  options.use_rslora = false;
  CHECK(options.scaling() == Approx(2.0));
}

TEST_CASE("lora adapter round trip", "[lora]") {
  const auto dir = medfair::test::scratch_dir("lora_round_trip");
  CausalLM model = load_smollm2();
  const at::Tensor base = logits_of(model);
  model.add_lora(LoraOptions{4, 8.0, 0.0, false, {"q_proj", "v_proj", "down_proj"}, 3});
  randomize_b(model);
  const at::Tensor adapted = logits_of(model);
  CHECK((adapted - base).abs().max().item<double>() > 1e-2);
  model.save_adapter(dir);

  nlohmann::json config = read_json(dir / "adapter_config.json");
  CHECK(config["peft_type"] == "LORA");
  CHECK(config["r"] == 4);
  CHECK(config["target_modules"] == nlohmann::json({"q_proj", "v_proj", "down_proj"}));

  medfair::LoadOptions options;
  options.adapter = dir;
  CausalLM reloaded = CausalLM::load(medfair::test::smollm2_gguf(), options);
  CHECK(at::equal(logits_of(reloaded), adapted));

  reloaded.set_adapters_enabled(false);
  CHECK_FALSE(reloaded.adapters_enabled());
  CHECK(at::equal(logits_of(reloaded), base));
  reloaded.set_adapters_enabled(true);
  CHECK(at::equal(logits_of(reloaded), adapted));

  reloaded.remove_lora();
  CHECK_FALSE(reloaded.has_lora());
  CHECK(at::equal(logits_of(reloaded), base));
}

TEST_CASE("lora gradients reach adapters only", "[lora]") {
  CausalLM model = load_smollm2();
  model.add_lora(LoraOptions{4, 8.0, 0.0, false, {"o_proj"}, 0});
  randomize_b(model);
  model.output_logits(model.hidden_states(sample_ids())).logsumexp(-1).sum().backward();
  const auto tensors = model.adapter_state_dict();
  const at::Tensor& a = tensors.at("base_model.model.model.layers.5.self_attn.o_proj.lora_A.weight");
  const at::Tensor& b = tensors.at("base_model.model.model.layers.5.self_attn.o_proj.lora_B.weight");
  REQUIRE(a.grad().defined());
  REQUIRE(b.grad().defined());
  CHECK(a.grad().abs().sum().item<double>() > 0.0);
  CHECK(b.grad().abs().sum().item<double>() > 0.0);
  CHECK_FALSE(model.state_dict().at("model.layers.5.self_attn.o_proj.weight").requires_grad());
}

TEST_CASE("lora option errors", "[lora]") {
  CausalLM model = load_smollm2();
  CHECK_THROWS_WITH(model.add_lora(LoraOptions{0, 8.0, 0.0, false, {"q_proj"}, 0}),
                    Catch::Contains("LoraOptions.r is 0"));
  CHECK_THROWS_WITH(model.add_lora(LoraOptions{4, 8.0, 1.0, false, {"q_proj"}, 0}),
                    Catch::Contains("LoraOptions.dropout is 1"));
  CHECK_THROWS_WITH(model.add_lora(LoraOptions{4, 8.0, 0.0, false, {"q_proj", "q_proj"}, 0}),
                    Catch::Contains("lists \"q_proj\" twice"));
  CHECK_THROWS_WITH(model.add_lora(LoraOptions{4, 8.0, 0.0, false, {"embed_tokens"}, 0}),
                    Catch::Contains("contains \"embed_tokens\""));
  CHECK_THROWS_WITH(model.save_adapter(medfair::test::scratch_dir("lora_none")),
                    Catch::Contains("has no LoRA adapters"));
  CHECK_THROWS_AS(model.set_adapters_enabled(true), medfair::ConfigError);
}

TEST_CASE("lora adapter load errors", "[lora]") {
  const auto dir = medfair::test::scratch_dir("lora_errors");
  CausalLM model = load_smollm2();
  CHECK_THROWS_WITH(model.load_adapter(dir / "absent"), Catch::Contains("adapter_config.json is missing"));

  model.add_lora(LoraOptions{4, 8.0, 0.0, false, {"k_proj"}, 0});
  model.save_adapter(dir);
  nlohmann::json config = read_json(dir / "adapter_config.json");

  nlohmann::json changed = config;
  changed["peft_type"] = "PREFIX_TUNING";
  write_json(dir / "adapter_config.json", changed);
  CHECK_THROWS_WITH(model.load_adapter(dir), Catch::Contains("medfair loads LORA adapters only"));

  changed = config;
  changed["layers_to_transform"] = {0, 1};
  write_json(dir / "adapter_config.json", changed);
  CHECK_THROWS_WITH(model.load_adapter(dir), Catch::Contains("layers_to_transform is set"));

  changed = config;
  changed["r"] = 8;
  write_json(dir / "adapter_config.json", changed);
  CHECK_THROWS_WITH(model.load_adapter(dir), Catch::Contains("k_proj.lora_A.weight has shape [4, 576]"));

  changed = config;
  changed["target_modules"] = {"q_proj"};
  write_json(dir / "adapter_config.json", changed);
  CHECK_THROWS_WITH(model.load_adapter(dir), Catch::Contains("q_proj.lora_A.weight is missing"));

  changed = config;
  changed.erase("target_modules");
  write_json(dir / "adapter_config.json", changed);
  CHECK_THROWS_WITH(model.load_adapter(dir), Catch::Contains("target_modules is missing"));

  std::ofstream(dir / "adapter_config.json") << "{not json";
  CHECK_THROWS_AS(model.load_adapter(dir), medfair::FormatError);
  // Every failed load left the k_proj adapter in place.
  CHECK(model.lora_options().target_modules == std::vector<std::string>{"k_proj"});
}
