// SimPOTrainer: the training loop, learning-rate schedule, step log and
// checkpoints.

#include "medfair/align/simpo_trainer.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <numbers>
#include <nlohmann/json.hpp>
#include <random>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include "medfair/error.hpp"
#include "medfair/eval/evaluator.hpp"
#include "medfair/io/atomic_file.hpp"
#include "medfair/io/jsonl.hpp"
#include "medfair/log.hpp"
#include "medfair/prompts/rng.hpp"

namespace medfair::align {

// ---- Options -------------------------------------------------------------------

TrainerOptions TrainerOptions::preset(std::string_view name) {
  TrainerOptions options;
  if (name == "simpo") return options;
  if (name == "notebook") {
    // TRL CPOTrainer(loss_type="simpo", cpo_alpha=0, beta=0.1) with LoRA r 18,
    // alpha 32, dropout 0 on all seven projections and max_length 256. The
    // other values are CPOConfig's defaults (trl 1.16): simpo_gamma 0.5, so
    // gamma/beta = 5, and learning rate 1e-6.
    options.method = "simpo";
    options.beta = 0.1;
    options.gamma_beta_ratio = 0.5 / 0.1;
    options.sft_weight = 0.0;
    options.lora = LoraOptions{18, 32.0, 0.0, false, lora_target_names(), 0};
    options.max_length = 256;
    options.learning_rate = 1e-6;
    options.warmup_ratio = 0.0;
    options.scheduler = "linear";
    return options;
  }
  throw ConfigError(fmt::format("unknown training preset \"{}\"; use simpo or notebook", name));
}

void TrainerOptions::validate() const {
  auto fail = [](const std::string& message) { throw ConfigError("TrainerOptions." + message); };
  if (method != "simpo" && method != "dpo") fail(fmt::format("method is \"{}\"; use simpo or dpo", method));
  if (!(beta > 0.0)) fail(fmt::format("beta is {}; it must be positive", beta));
  if (!(label_smoothing >= 0.0 && label_smoothing <= 0.5)) {
    fail(fmt::format("label_smoothing is {}; use a value in [0, 0.5]", label_smoothing));
  }
  if (!(sft_weight >= 0.0)) fail(fmt::format("sft_weight is {}; it must be 0 or more", sft_weight));
  if (!(learning_rate > 0.0)) fail(fmt::format("learning_rate is {}; it must be positive", learning_rate));
  if (!(weight_decay >= 0.0)) fail(fmt::format("weight_decay is {}; it must be 0 or more", weight_decay));
  if (warmup_steps < 0) fail(fmt::format("warmup_steps is {}; it must be 0 or more", warmup_steps));
  if (!(warmup_ratio >= 0.0 && warmup_ratio < 1.0)) fail(fmt::format("warmup_ratio is {}; use [0, 1)", warmup_ratio));
  if (scheduler != "cosine" && scheduler != "linear") {
    fail(fmt::format("scheduler is \"{}\"; use cosine or linear", scheduler));
  }
  if (epochs <= 0) fail(fmt::format("epochs is {}; it must be positive", epochs));
  if (max_steps < 0) fail(fmt::format("max_steps is {}; use 0 for no limit", max_steps));
  if (batch_size <= 0) fail(fmt::format("batch_size is {}; it must be positive", batch_size));
  if (grad_accumulation <= 0) fail(fmt::format("grad_accumulation is {}; it must be positive", grad_accumulation));
  if (!(max_grad_norm >= 0.0)) fail(fmt::format("max_grad_norm is {}; use 0 to disable clipping", max_grad_norm));
  if (max_length <= 0) fail(fmt::format("max_length is {}; it must be positive", max_length));
  if (max_prompt_length < 0) fail(fmt::format("max_prompt_length is {}; use 0 for no limit", max_prompt_length));
  if (checkpoint_every < 0) fail(fmt::format("checkpoint_every is {}; use 0 for no checkpoints", checkpoint_every));
  lora.validate();
}

void DataParallel::validate() const {
  if (world_size < 1) {
    throw ConfigError(
        fmt::format("DataParallel.world_size is {}; use 1 or more (1 trains in one process)", world_size));
  }
  if (rank < 0 || rank >= world_size) {
    throw ConfigError(fmt::format("DataParallel.rank is {}; use a value in [0, {})", rank, world_size));
  }
  if (world_size > 1 && !all_reduce_sum) {
    throw ConfigError(fmt::format("DataParallel.all_reduce_sum is empty; world_size {} needs a collective that sums "
                                  "tensors across the ranks",
                                  world_size));
  }
}

std::vector<std::vector<size_t>> rank_micro_batches(size_t pair_count, int64_t batch_size, int64_t grad_accumulation,
                                                     int64_t step_in_epoch, int64_t rank, int64_t world_size) {
  const size_t per_rank = static_cast<size_t>(batch_size * grad_accumulation);
  const size_t begin = static_cast<size_t>(step_in_epoch * world_size + rank) * per_rank;
  const size_t end = std::min(begin + per_rank, pair_count);
  std::vector<std::vector<size_t>> batches;
  for (size_t first = begin; first < end; first += static_cast<size_t>(batch_size)) {
    std::vector<size_t> batch;
    for (size_t i = first; i < std::min(first + static_cast<size_t>(batch_size), end); ++i) batch.push_back(i);
    batches.push_back(std::move(batch));
  }
  return batches;
}

namespace {

// The options that must not change between a run and its resumption,
// including the adapters' settings and the number of ranks, since the ranks'
// share of each step follows from it.
nlohmann::json options_fingerprint(const TrainerOptions& o, const LoraOptions& lora, int64_t world_size) {
  return {{"method", o.method},          {"beta", o.beta},
          {"gamma_beta_ratio", o.gamma_beta_ratio}, {"label_smoothing", o.label_smoothing},
          {"sft_weight", o.sft_weight},  {"learning_rate", o.learning_rate},
          {"weight_decay", o.weight_decay}, {"warmup_steps", o.warmup_steps},
          {"warmup_ratio", o.warmup_ratio}, {"scheduler", o.scheduler},
          {"epochs", o.epochs},          {"max_steps", o.max_steps},
          {"batch_size", o.batch_size},  {"grad_accumulation", o.grad_accumulation},
          {"max_grad_norm", o.max_grad_norm}, {"seed", o.seed},
          {"max_length", o.max_length},  {"max_prompt_length", o.max_prompt_length},
          {"lora_r", lora.r},            {"lora_alpha", lora.alpha},
          {"lora_dropout", lora.dropout}, {"lora_use_rslora", lora.use_rslora},
          {"lora_target_modules", lora.target_modules},
          {"world_size", world_size}};
}

// The tokenized pairs: their count and a 64-bit FNV-1a hash of every pair's
// token ids and prompt lengths, so other pairs, another tokenizer or other
// length limits change it.
nlohmann::json data_fingerprint(const std::vector<TokenizedPair>& pairs) {
  uint64_t hash = prompts::fnv1a("");
  auto mix_ids = [&hash](const std::vector<int64_t>& ids) {
    const int64_t size = static_cast<int64_t>(ids.size());
    hash = prompts::fnv1a(std::string_view(reinterpret_cast<const char*>(&size), sizeof size), hash);
    hash = prompts::fnv1a(std::string_view(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int64_t)),
                          hash);
  };
  for (const TokenizedPair& pair : pairs) {
    mix_ids(pair.chosen_ids);
    mix_ids(pair.rejected_ids);
    mix_ids({pair.chosen_prompt_length, pair.rejected_prompt_length});
  }
  return {{"pairs", pairs.size()}, {"token_ids_fnv1a", fmt::format("{:016x}", hash)}};
}

// The base model: the SHA-256 of its weight file (or of a folder's weight and
// config files) and the dtype it was loaded in.
nlohmann::json model_fingerprint(const CausalLM& model) {
  return {{"sha256", eval::sha256_file(model.source())}, {"dtype", model.dtype()}};
}

// Compares a checkpoint's fingerprint with the current run's and throws
// ConfigError naming the first part (data, base model or options) that
// differs, with each differing key's old and new value.
void check_fingerprint(const std::filesystem::path& checkpoint, const nlohmann::json& stored,
                       const nlohmann::json& current) {
  if (!stored.is_object()) {
    throw ConfigError(fmt::format("{}: the checkpoint has no fingerprint of its data, model and options (it was "
                                  "written by an older medfair); start a new output folder or drop --resume",
                                  checkpoint.string()));
  }
  const std::pair<const char*, const char*> parts[] = {
      {"data", "other preference data"}, {"model", "another base model"}, {"options", "other options"}};
  for (const auto& [part, description] : parts) {
    const nlohmann::json old_part = stored.value(part, nlohmann::json::object());
    const nlohmann::json& new_part = current.at(part);
    if (old_part == new_part) continue;
    std::vector<std::string> changes;
    for (const auto& [key, value] : new_part.items()) {
      const nlohmann::json old_value = old_part.contains(key) ? old_part.at(key) : nlohmann::json("(missing)");
      if (old_value != value) changes.push_back(fmt::format("{} was {}, now {}", key, old_value.dump(), value.dump()));
    }
    throw ConfigError(fmt::format("{}: the checkpoint was written with {} ({}); resume with the same data, model "
                                  "and options, start a new output folder, or drop --resume (resume=False in Python)",
                                  checkpoint.string(), description, fmt::join(changes, "; ")));
  }
}

// Learning-rate factor of transformers' get_cosine_schedule_with_warmup and
// get_linear_schedule_with_warmup for the optimiser step `step` (0-based).
double schedule_factor(const std::string& kind, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  const double progress =
      static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  if (kind == "linear") return std::max(0.0, 1.0 - progress);
  return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

// Epoch `epoch`'s order of `count` pairs: Fisher-Yates with a generator seeded
// from the seed and the epoch, so any step's data follows from its position.
std::vector<size_t> epoch_order(size_t count, uint64_t seed, int64_t epoch) {
  std::vector<size_t> order(count);
  for (size_t i = 0; i < count; ++i) order[i] = i;
  std::mt19937_64 generator(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
  for (size_t i = count; i > 1; --i) {
    // NOTE: modulo reduction favours some j by at most i / 2^64 in
    // probability, which is negligible for any data set that fits in memory.
    size_t j = static_cast<size_t>(generator() % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

// Seed of the dropout generator for one rank's optimiser step (SplitMix64's
// finaliser over the seed, step and rank). Reseeding every step makes the
// masks follow from the position, so a resumed run needs no generator state,
// and ranks draw independent masks.
uint64_t dropout_seed(uint64_t seed, int64_t step, int64_t rank) {
  uint64_t z = seed ^ (static_cast<uint64_t>(step) * 0x9E3779B97F4A7C15ULL) ^
               (static_cast<uint64_t>(rank) * 0xD1B54A32D192ED03ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void fsync_path(const std::filesystem::path& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw IOError(fmt::format("cannot open {} to flush it to disk", path.string()));
  ::fsync(fd);
  ::close(fd);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw IOError(fmt::format("cannot open {}", path.string()));
  return std::string(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
}

nlohmann::ordered_json step_json(const StepLog& s) {
  return {{"step", s.step},
          {"epoch", s.epoch},
          {"loss", s.loss},
          {"chosen_reward", s.chosen_reward},
          {"rejected_reward", s.rejected_reward},
          {"reward_margin", s.reward_margin},
          {"reward_accuracy", s.reward_accuracy},
          {"learning_rate", s.learning_rate},
          {"grad_norm", s.grad_norm},
          {"tokens", s.tokens},
          {"tokens_per_second", s.tokens_per_second},
          {"elapsed_seconds", s.elapsed_seconds}};
}

StepLog step_from_json(const nlohmann::json& j) {
  StepLog s;
  s.step = j.at("step").get<int64_t>();
  s.epoch = j.at("epoch").get<double>();
  s.loss = j.at("loss").get<double>();
  s.chosen_reward = j.at("chosen_reward").get<double>();
  s.rejected_reward = j.at("rejected_reward").get<double>();
  s.reward_margin = j.at("reward_margin").get<double>();
  s.reward_accuracy = j.at("reward_accuracy").get<double>();
  s.learning_rate = j.at("learning_rate").get<double>();
  s.grad_norm = j.at("grad_norm").get<double>();
  s.tokens = j.at("tokens").get<int64_t>();
  s.tokens_per_second = j.at("tokens_per_second").get<double>();
  s.elapsed_seconds = j.at("elapsed_seconds").get<double>();
  return s;
}

// Turns adapter dropout on for a scope, so that an exception does not leave
// the caller's model in training mode.
class TrainingMode {
 public:
  explicit TrainingMode(CausalLM& model) : model_(model) { model_.set_training(true); }
  ~TrainingMode() { model_.set_training(false); }
  TrainingMode(const TrainingMode&) = delete;
  TrainingMode& operator=(const TrainingMode&) = delete;

 private:
  CausalLM& model_;
};

// Restores the adapters' enabled flag when a scope ends.
class AdaptersDisabled {
 public:
  explicit AdaptersDisabled(CausalLM& model) : model_(model) { model_.set_adapters_enabled(false); }
  ~AdaptersDisabled() { model_.set_adapters_enabled(true); }
  AdaptersDisabled(const AdaptersDisabled&) = delete;
  AdaptersDisabled& operator=(const AdaptersDisabled&) = delete;

 private:
  CausalLM& model_;
};

// Sums of one step's metrics over its pairs.
struct StepTotals {
  double loss = 0.0;
  double chosen = 0.0;
  double rejected = 0.0;
  double correct = 0.0;
  int64_t tokens = 0;

  void add(const BatchResult& batch, double pairs) {
    loss += batch.loss.loss.item<double>() * pairs;
    chosen += batch.loss.chosen_rewards.sum().item<double>();
    rejected += batch.loss.rejected_rewards.sum().item<double>();
    correct += batch.loss.chosen_rewards.gt(batch.loss.rejected_rewards).sum().item<double>();
    tokens += batch.tokens;
  }
};

// Sums the adapters' gradients and the step's metrics over all ranks, with one
// collective call on a flat gradient buffer and a float64 metrics vector. A
// rank without pairs in this step contributes zeros.
void all_reduce_step(const std::vector<at::Tensor>& parameters, StepTotals& totals, const DataParallel& parallel) {
  std::vector<at::Tensor> flat_grads;
  flat_grads.reserve(parameters.size());
  for (const at::Tensor& p : parameters) {
    flat_grads.push_back(p.grad().defined() ? p.grad().reshape(-1) : at::zeros({p.numel()}, p.options()));
  }
  const at::Tensor metrics_cpu = at::tensor({totals.loss, totals.chosen, totals.rejected, totals.correct,
                                             static_cast<double>(totals.tokens)},
                                            at::kDouble);
  std::vector<at::Tensor> buffers = {at::cat(flat_grads), metrics_cpu.to(parameters.front().device())};
  parallel.all_reduce_sum(buffers);

  int64_t offset = 0;
  for (const at::Tensor& p : parameters) {
    at::Tensor summed = buffers[0].narrow(0, offset, p.numel()).view(p.sizes());
    if (p.grad().defined()) {
      p.mutable_grad().copy_(summed);
    } else {
      p.mutable_grad() = summed.clone();
    }
    offset += p.numel();
  }
  const at::Tensor metrics = buffers[1].cpu();
  const double* values = metrics.data_ptr<double>();
  totals.loss = values[0];
  totals.chosen = values[1];
  totals.rejected = values[2];
  totals.correct = values[3];
  totals.tokens = static_cast<int64_t>(std::llround(values[4]));
}

// Reads the step log up to and including `last_step`, and the same records
// re-serialized into `kept_lines`. Reading stops at the first line that does
// not parse, which can only be a line torn by an interruption.
std::vector<StepLog> read_log_until(const std::filesystem::path& path, int64_t last_step, std::string* kept_lines) {
  std::vector<StepLog> steps;
  std::ifstream previous(path);
  std::string line;
  while (previous && std::getline(previous, line)) {
    if (line.empty()) continue;
    nlohmann::json value = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) break;
    StepLog entry = step_from_json(value);
    if (entry.step > last_step) break;
    steps.push_back(entry);
    *kept_lines += io::to_jsonl_line(step_json(entry)) + "\n";
  }
  return steps;
}

}  // namespace

// ---- Trainer -------------------------------------------------------------------

struct SimPOTrainer::State {
  CausalLM model;
  TrainerOptions options;
  ProgressCallback progress;
  DataParallel data_parallel;
};

SimPOTrainer::SimPOTrainer(CausalLM model, TrainerOptions options)
    : state_(std::make_unique<State>(State{std::move(model), std::move(options), {}, {}})) {
  state_->options.validate();
  if (!state_->model.has_lora()) {
    LoraOptions lora = state_->options.lora;
    lora.seed = state_->options.seed;
    state_->model.add_lora(lora);
  }
  state_->model.set_gradient_checkpointing(state_->options.gradient_checkpointing);
}

SimPOTrainer::~SimPOTrainer() = default;
SimPOTrainer::SimPOTrainer(SimPOTrainer&&) noexcept = default;
SimPOTrainer& SimPOTrainer::operator=(SimPOTrainer&&) noexcept = default;

const TrainerOptions& SimPOTrainer::options() const { return state_->options; }

CausalLM& SimPOTrainer::model() { return state_->model; }

void SimPOTrainer::set_progress_callback(ProgressCallback callback) { state_->progress = std::move(callback); }

void SimPOTrainer::set_data_parallel(DataParallel data_parallel) {
  data_parallel.validate();
  state_->data_parallel = std::move(data_parallel);
}

std::vector<TokenizedPair> SimPOTrainer::tokenize(const std::vector<PreferencePair>& pairs,
                                                  TruncationCounts* counts) const {
  TruncationOptions limits{state_->options.max_length, state_->options.max_prompt_length};
  std::vector<TokenizedPair> tokenized;
  tokenized.reserve(pairs.size());
  TruncationCounts found;
  for (const PreferencePair& pair : pairs) {
    tokenized.push_back(tokenize_pair(state_->model, pair, limits));
    const TokenizedPair& t = tokenized.back();
    found.pairs += 1;
    found.prompts_truncated += t.prompt_truncated;
    found.responses_truncated += t.response_truncated;
    found.empty_responses += t.empty_response;
  }
  if (counts != nullptr) *counts = found;
  return tokenized;
}

BatchResult SimPOTrainer::compute_batch(const std::vector<const TokenizedPair*>& pairs) {
  const TrainerOptions& o = state_->options;
  CausalLM& model = state_->model;
  PreferenceBatch batch = collate_pairs(pairs, pad_token_id(model));
  const int64_t count = batch.pairs;

  SequenceLogProbs policy = batch_log_probs(model, batch);
  const bool simpo = o.method == "simpo";
  const at::Tensor& per_sequence = simpo ? policy.mean : policy.sum;

  BatchResult result;
  result.tokens = batch.tokens;
  result.chosen_logps = per_sequence.narrow(0, 0, count);
  result.rejected_logps = per_sequence.narrow(0, count, count);
  if (simpo) {
    result.loss = simpo_loss(result.chosen_logps, result.rejected_logps, o.beta, o.gamma_beta_ratio, o.label_smoothing);
  } else {
    // DPO's reference is the same model with its adapters switched off.
    SequenceLogProbs reference;
    {
      c10::NoGradGuard no_grad;
      AdaptersDisabled disabled(model);
      reference = batch_log_probs(model, batch);
    }
    result.loss = dpo_loss(result.chosen_logps, result.rejected_logps, reference.sum.narrow(0, 0, count),
                           reference.sum.narrow(0, count, count), o.beta, o.label_smoothing);
  }
  if (o.sft_weight > 0.0) result.loss.loss = result.loss.loss + o.sft_weight * sft_loss(policy, count);
  return result;
}

TrainResult SimPOTrainer::train(const std::vector<PreferencePair>& pairs, const std::filesystem::path& out,
                                bool resume) {
  const TrainerOptions& o = state_->options;
  CausalLM& model = state_->model;
  const DataParallel& parallel = state_->data_parallel;
  const bool writer = parallel.rank == 0;  // only rank 0 writes files
  std::filesystem::create_directories(out);
  const std::filesystem::path checkpoint_dir = out / "checkpoint";
  const std::filesystem::path log_path = o.log_path.empty() ? out / "train_log.jsonl" : o.log_path;

  // Data: tokenize everything once; pairs left with an empty response have no
  // defined mean log-probability, so they are skipped.
  TrainResult result;
  result.adapter_dir = out;
  result.log_path = log_path;
  std::vector<TokenizedPair> tokenized = tokenize(pairs, &result.truncation);
  std::vector<const TokenizedPair*> usable;
  for (const TokenizedPair& pair : tokenized) {
    if (!pair.empty_response) usable.push_back(&pair);
  }
  if (result.truncation.empty_responses > 0 && writer) {
    log::warning("SimPOTrainer.train",
                 fmt::format("{} of {} pairs have a response that max_length {} leaves empty; they are skipped",
                             result.truncation.empty_responses, result.truncation.pairs, o.max_length));
  }
  if (usable.empty()) {
    throw DataError(fmt::format("SimPOTrainer.train: none of the {} pairs is usable; raise max_length (now {})",
                                pairs.size(), o.max_length));
  }

  // Schedule: each step takes world_size x batch_size x grad_accumulation
  // pairs of the epoch's order.
  const int64_t step_capacity = parallel.world_size * o.batch_size * o.grad_accumulation;
  const int64_t usable_count = static_cast<int64_t>(usable.size());
  const int64_t steps_per_epoch = (usable_count + step_capacity - 1) / step_capacity;
  const int64_t total_steps = o.max_steps > 0 ? o.max_steps : steps_per_epoch * o.epochs;
  const int64_t warmup = o.warmup_steps > 0 ? o.warmup_steps
                                            : static_cast<int64_t>(std::ceil(o.warmup_ratio * static_cast<double>(total_steps)));

  // Resume: adapter, optimiser state and log come from the checkpoint.
  int64_t start_step = 0;
  std::filesystem::path resume_dir;
  if (resume) {
    if (std::filesystem::is_directory(checkpoint_dir)) {
      resume_dir = checkpoint_dir;
    } else if (std::filesystem::is_directory(out / "checkpoint.old")) {
      resume_dir = out / "checkpoint.old";  // a crash between the two renames of a checkpoint swap
    }
  }
  // Hashing the base model reads its weights, so it happens only when a
  // checkpoint is written or read.
  nlohmann::json run_fingerprint;
  if (o.checkpoint_every > 0 || !resume_dir.empty()) {
    run_fingerprint = {{"data", data_fingerprint(tokenized)},
                       {"model", model_fingerprint(model)},
                       {"options", options_fingerprint(o, model.lora_options(), parallel.world_size)}};
  }
  if (!resume_dir.empty()) {
    nlohmann::json state;
    try {
      state = nlohmann::json::parse(read_file(resume_dir / "trainer_state.json"));
    } catch (const nlohmann::json::exception& error) {
      throw FormatError(fmt::format("{}: invalid JSON: {}", (resume_dir / "trainer_state.json").string(), error.what()));
    }
    check_fingerprint(resume_dir, state.value("fingerprint", nlohmann::json()), run_fingerprint);
    start_step = state.at("step").get<int64_t>();
    model.load_adapter(resume_dir);
  } else if (resume && writer) {
    log::info("SimPOTrainer.train", fmt::format("{} has no checkpoint; starting from step 0", out.string()));
  }
  result.resumed_from_step = start_step;

  std::vector<at::Tensor> parameters = model.adapter_parameters();
  torch::optim::AdamW optimizer(parameters, torch::optim::AdamWOptions(o.learning_rate)
                                                .betas({0.9, 0.999})
                                                .eps(1e-8)
                                                .weight_decay(o.weight_decay));
  if (!resume_dir.empty()) torch::load(optimizer, (resume_dir / "optimizer.pt").string());
  at::Generator generator = at::detail::getDefaultCPUGenerator();

  // The log keeps the steps up to the checkpoint; later lines were from the
  // interrupted run and are written again. Every rank reads the kept steps
  // for its result, and rank 0 rewrites the file.
  std::string kept_lines;
  if (start_step > 0) result.log = read_log_until(log_path, start_step, &kept_lines);
  if (writer) io::write_file_atomic(log_path, kept_lines);

  auto write_checkpoint = [&](int64_t step) {
    const std::filesystem::path staging = out / "checkpoint.tmp";
    std::filesystem::remove_all(staging);
    std::filesystem::create_directories(staging);
    model.save_adapter(staging);
    torch::save(optimizer, (staging / "optimizer.pt").string());
    fsync_path(staging / "optimizer.pt", false);
    nlohmann::json state = {{"step", step}, {"total_steps", total_steps}, {"fingerprint", run_fingerprint}};
    io::write_file_atomic(staging / "trainer_state.json", state.dump(2) + "\n");
    fsync_path(staging, true);
    // Swap: the old checkpoint stays readable until the new one is in place.
    const std::filesystem::path old = out / "checkpoint.old";
    std::filesystem::remove_all(old);
    if (std::filesystem::exists(checkpoint_dir)) std::filesystem::rename(checkpoint_dir, old);
    std::filesystem::rename(staging, checkpoint_dir);
    fsync_path(out, true);
    std::filesystem::remove_all(old);
  };

  const TrainingMode training(model);
  const auto started = std::chrono::steady_clock::now();
  for (int64_t step = start_step; step < total_steps; ++step) {
    const auto step_started = std::chrono::steady_clock::now();
    const int64_t epoch = step / steps_per_epoch;
    const int64_t step_in_epoch = step % steps_per_epoch;
    const std::vector<size_t> order = epoch_order(usable.size(), o.seed, epoch);

    // This rank's pairs of each forward pass, and the number of pairs the
    // step has on all ranks together, for weighting.
    std::vector<std::vector<const TokenizedPair*>> micro_batches;
    for (const std::vector<size_t>& positions :
         rank_micro_batches(usable.size(), o.batch_size, o.grad_accumulation, step_in_epoch, parallel.rank,
                            parallel.world_size)) {
      std::vector<const TokenizedPair*> batch;
      for (size_t position : positions) batch.push_back(usable[order[position]]);
      micro_batches.push_back(std::move(batch));
    }
    const int64_t step_begin = step_in_epoch * step_capacity;
    const int64_t step_pairs = std::min(step_begin + step_capacity, usable_count) - step_begin;

    const double lr = o.learning_rate * schedule_factor(o.scheduler, step, warmup, total_steps);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_current_seed(dropout_seed(o.seed, step, parallel.rank));
    }

    StepTotals totals;
    for (const auto& batch : micro_batches) {
      BatchResult batch_result = compute_batch(batch);
      // Each pass's mean loss is weighted by its share of the step's pairs
      // on all ranks, so the summed gradient is that of the mean over them.
      const double weight = static_cast<double>(batch.size()) / static_cast<double>(step_pairs);
      (batch_result.loss.loss * weight).backward();
      totals.add(batch_result, static_cast<double>(batch.size()));
    }
    if (parallel.world_size > 1) all_reduce_step(parameters, totals, parallel);

    double grad_norm = 0.0;
    if (o.max_grad_norm > 0.0) {
      grad_norm = torch::nn::utils::clip_grad_norm_(parameters, o.max_grad_norm);
    } else {
      std::vector<at::Tensor> norms;
      for (const at::Tensor& p : parameters) {
        if (p.grad().defined()) norms.push_back(p.grad().norm());
      }
      grad_norm = norms.empty() ? 0.0 : at::stack(norms).norm().item<double>();
    }
    optimizer.step();
    optimizer.zero_grad();

    const auto now = std::chrono::steady_clock::now();
    const double step_seconds = std::chrono::duration<double>(now - step_started).count();
    StepLog entry;
    entry.step = step + 1;
    entry.epoch = static_cast<double>(step + 1) / static_cast<double>(steps_per_epoch);
    entry.loss = totals.loss / static_cast<double>(step_pairs);
    entry.chosen_reward = totals.chosen / static_cast<double>(step_pairs);
    entry.rejected_reward = totals.rejected / static_cast<double>(step_pairs);
    entry.reward_margin = entry.chosen_reward - entry.rejected_reward;
    entry.reward_accuracy = totals.correct / static_cast<double>(step_pairs);
    entry.learning_rate = lr;
    entry.grad_norm = grad_norm;
    entry.tokens = totals.tokens;
    entry.tokens_per_second = step_seconds > 0.0 ? static_cast<double>(totals.tokens) / step_seconds : 0.0;
    entry.elapsed_seconds = std::chrono::duration<double>(now - started).count();
    if (writer) io::append_file_durable(log_path, io::to_jsonl_line(step_json(entry)) + "\n");
    result.log.push_back(entry);
    if (state_->progress) state_->progress(entry, total_steps);

    if (writer && o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) write_checkpoint(step + 1);
  }

  result.steps = total_steps;
  if (writer) model.save_adapter(out);
  return result;
}

}  // namespace medfair::align
