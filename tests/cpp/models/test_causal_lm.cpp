// CausalLM on the real SmolLM2-135M-Instruct GGUF file: incremental decoding
// through the KV cache, shared-prefix reuse, and the errors for bad inputs.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "medfair/error.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/text/tokenizer.hpp"
#include "test_support.hpp"

using medfair::CausalLM;
using medfair::KVCache;

namespace {

const CausalLM& smollm2() {
  static const CausalLM model = CausalLM::load(medfair::test::smollm2_gguf());
  return model;
}

at::Tensor prompt_ids(const std::string& text) {
  const CausalLM& model = smollm2();
  std::vector<int64_t> ids = model.encode_prompt(model.apply_chat_template({{"user", text}}, true));
  return at::tensor(ids, at::kLong).unsqueeze(0);
}

double max_difference(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

void copy_prefix(const std::filesystem::path& from, const std::filesystem::path& to, std::streamsize bytes) {
  std::ifstream in(from, std::ios::binary);
  std::vector<char> buffer(static_cast<size_t>(bytes));
  in.read(buffer.data(), bytes);
  std::ofstream out(to, std::ios::binary);
  out.write(buffer.data(), in.gcount());
}

}  // namespace

TEST_CASE("smollm2 config from gguf metadata") {
  const medfair::LlamaConfig& c = smollm2().config();
  CHECK(c.architecture == "llama");
  CHECK(c.n_layer == 30);
  CHECK(c.n_embd == 576);
  CHECK(c.n_head == 9);
  CHECK(c.n_head_kv == 3);
  CHECK(c.head_dim == 64);
  CHECK(c.n_ff == 1536);
  CHECK(c.vocab_size == 49152);
  CHECK(c.tie_word_embeddings);
  CHECK(c.rope_theta == 100000.0);
}

TEST_CASE("kv cache decoding equals full forward") {
  c10::InferenceMode guard;
  at::Tensor ids = prompt_ids("A 45-year-old patient reports chest pain radiating to the left arm.");
  const int64_t total = ids.size(1);
  at::Tensor full = smollm2().logits(ids);

  KVCache cache;
  const int64_t split = total - 5;
  at::Tensor first = smollm2().forward(ids.narrow(1, 0, split), {}, &cache).logits;
  REQUIRE(cache.length() == split);
  CHECK(max_difference(first, full.narrow(1, 0, split)) < 1e-4);
  for (int64_t t = split; t < total; ++t) {
    at::Tensor step = smollm2().forward(ids.narrow(1, t, 1), {}, &cache).logits;
    CHECK(max_difference(step[0][0], full[0][t]) < 1e-4);
  }
  CHECK(cache.length() == total);
  CHECK(cache.next_position.item<int64_t>() == total);
}

TEST_CASE("expanded prefix cache equals separate prompts") {
  c10::InferenceMode guard;
  const CausalLM& model = smollm2();
  at::Tensor prefix = prompt_ids("The patient is a 62-year-old").narrow(1, 0, 20);
  std::vector<std::vector<int64_t>> suffixes = {{28, 339, 314}, {28, 7018, 411}};

  KVCache shared;
  model.forward(prefix, {}, &shared);
  KVCache batch_cache = shared.expand(2);
  at::Tensor suffix_ids = at::tensor(std::vector<int64_t>{28, 339, 314, 28, 7018, 411}, at::kLong).view({2, 3});
  at::Tensor batched = model.forward(suffix_ids, {}, &batch_cache, /*last_position_only=*/true).logits;
  for (int row = 0; row < 2; ++row) {
    at::Tensor suffix = at::tensor(suffixes[row], at::kLong).unsqueeze(0);
    at::Tensor alone = model.logits(at::cat({prefix, suffix}, 1));
    CHECK(max_difference(batched[row][0], alone[0][-1]) < 1e-4);
  }
}

TEST_CASE("last position only picks last real token") {
  c10::InferenceMode guard;
  at::Tensor ids = prompt_ids("Rate the pain from 1 to 5.");
  const int64_t n = ids.size(1);
  at::Tensor padded = at::cat({ids, at::full({1, 4}, 2, at::kLong)}, 1);
  at::Tensor mask = at::cat({at::ones({1, n}, at::kLong), at::zeros({1, 4}, at::kLong)}, 1);
  at::Tensor last = smollm2().forward(padded, mask, nullptr, true).logits;
  at::Tensor full = smollm2().logits(ids);
  CHECK(last.size(1) == 1);
  CHECK(max_difference(last[0][0], full[0][n - 1]) < 1e-4);
}

TEST_CASE("last position pass caches every key") {
  // A last-position-only pass computes its last layer's output at one
  // position per row. The keys and values of every position must still reach
  // the cache, so that the next token attends to the whole prompt.
  c10::InferenceMode guard;
  const CausalLM& model = smollm2();
  at::Tensor long_ids = prompt_ids("A 70-year-old woman fell at home and cannot bear weight on her right leg.");
  at::Tensor short_ids = prompt_ids("Is a fever of 38.5 degrees worrying?");
  const int64_t width = long_ids.size(1);
  const int64_t pad = width - short_ids.size(1);
  REQUIRE(pad > 0);
  at::Tensor ids = at::cat({long_ids, at::cat({at::zeros({1, pad}, at::kLong), short_ids}, 1)}, 0);
  at::Tensor mask = at::ones({2, width}, at::kLong);
  mask[1].narrow(0, 0, pad).fill_(0);

  KVCache cache;
  at::Tensor last = model.forward(ids, mask, &cache, /*last_position_only=*/true).logits;  // [2, 1, V]
  REQUIRE(last.size(1) == 1);
  REQUIRE(cache.length() == width);
  const std::vector<int64_t> next = {28, 339};
  at::Tensor step = model.forward(at::tensor(next, at::kLong).view({2, 1}), {}, &cache).logits;
  for (int64_t row = 0; row < 2; ++row) {
    INFO("row " << row);
    at::Tensor alone = row == 0 ? long_ids : short_ids;
    at::Tensor full = model.logits(at::cat({alone, at::full({1, 1}, next[row], at::kLong)}, 1));
    CHECK(max_difference(last[row][0], full[0][-2]) < 1e-4);
    CHECK(max_difference(step[row][0], full[0][-1]) < 1e-4);
  }

  // Several new tokens on top of a cache take the explicit mask path.
  KVCache more;
  model.forward(long_ids.narrow(1, 0, width - 6), {}, &more);
  at::Tensor tail = model.forward(long_ids.narrow(1, width - 6, 6), {}, &more, /*last_position_only=*/true).logits;
  CHECK(max_difference(tail[0][0], model.logits(long_ids)[0][-1]) < 1e-4);
}

TEST_CASE("greedy generation is deterministic") {
  std::vector<int64_t> ids = smollm2().encode_prompt(smollm2().apply_chat_template({{"user", "Say hello."}}, true));
  std::vector<int64_t> first = smollm2().generate_greedy(ids, 8);
  std::vector<int64_t> second = smollm2().generate_greedy(ids, 8);
  CHECK(!first.empty());
  CHECK(first == second);
}

TEST_CASE("forward rejects malformed input") {
  c10::InferenceMode guard;
  const CausalLM& model = smollm2();
  CHECK_THROWS_WITH(model.logits(at::ones({3}, at::kLong)), Catch::Contains("must be [batch, tokens]"));
  CHECK_THROWS_WITH(model.logits(at::full({1, 2}, 60000, at::kLong)),
                    Catch::Contains("token id 60000 is outside the vocabulary [0, 49152)"));
  CHECK_THROWS_WITH(model.logits(at::ones({1, 3}, at::kLong), at::ones({1, 2}, at::kLong)),
                    Catch::Contains("attention_mask has shape [1, 2] but input_ids has [1, 3]"));
}

TEST_CASE("load reports missing and truncated files") {
  CHECK_THROWS_AS(CausalLM::load("/nonexistent/model.gguf"), medfair::IOError);
  CHECK_THROWS_WITH(CausalLM::load("/nonexistent/model.gguf"), Catch::Contains("does not exist"));

  auto dir = medfair::test::scratch_dir("causal_lm_truncated");
  for (std::streamsize bytes : {std::streamsize{3}, std::streamsize{4096}, std::streamsize{20'000'000}}) {
    auto path = dir / ("cut_" + std::to_string(bytes) + ".gguf");
    copy_prefix(medfair::test::smollm2_gguf(), path, bytes);
    CHECK_THROWS_AS(CausalLM::load(path), medfair::FormatError);
  }
}

TEST_CASE("load rejects unknown dtype") {
  medfair::LoadOptions options;
  options.dtype = "float8";
  CHECK_THROWS_WITH(CausalLM::load(medfair::test::smollm2_gguf(), options),
                    Catch::Contains("dtype \"float8\" is not supported; use float32 or bfloat16"));
}
