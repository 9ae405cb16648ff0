#pragma once
// SimPOTrainer: preference optimisation of a CausalLM's LoRA adapters with
// SimPO or DPO, AdamW, a warmup-then-decay learning-rate schedule, gradient
// accumulation and clipping, data-parallel training across processes, a JSONL
// step log and resumable checkpoints.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "medfair/align/losses.hpp"
#include "medfair/align/preference_data.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/models/lora.hpp"

namespace medfair::align {

/// Training settings. The defaults are the "simpo" preset.
struct TrainerOptions {
  /// "simpo" (reference-free, mean log-probabilities) or "dpo" (summed
  /// log-probabilities against the model with adapters disabled).
  std::string method = "simpo";
  /// Inverse temperature beta of the loss; default 2.0 (the SimPO authors
  /// recommend 2.0 to 2.5). TRL's default for DPO is 0.1.
  double beta = 2.0;
  /// SimPO's target margin gamma divided by beta; default 0.5. TRL's
  /// simpo_gamma equals gamma_beta_ratio * beta.
  double gamma_beta_ratio = 0.5;
  /// Label smoothing eps in [0, 0.5]; default 0.
  double label_smoothing = 0.0;
  /// Weight of the SFT (NLL) term on the chosen responses; default 0 (TRL's cpo_alpha).
  double sft_weight = 0.0;
  /// Adapters to train when the model has none yet. Default: r 16, alpha 32,
  /// dropout 0.05 on all seven projections.
  LoraOptions lora = {16, 32.0, 0.05, false, lora_target_names(), 0};
  /// Peak learning rate of AdamW; default 5e-5.
  double learning_rate = 5e-5;
  /// AdamW's decoupled weight decay; default 0 (transformers' default).
  double weight_decay = 0.0;
  /// Optimiser steps of linear warmup; when 0, warmup_ratio of all steps (rounded up).
  int64_t warmup_steps = 0;
  /// Fraction of the optimiser steps used for warmup when warmup_steps is 0; default 0.1.
  double warmup_ratio = 0.1;
  /// Decay after warmup: "cosine" (default, to 0) or "linear" (to 0).
  std::string scheduler = "cosine";
  /// Passes over the data; default 1.
  int64_t epochs = 1;
  /// When positive, stop after this many optimiser steps (and size the schedule to it); default 0.
  int64_t max_steps = 0;
  /// Preference pairs per forward pass; default 2.
  int64_t batch_size = 2;
  /// Forward passes per optimiser step; default 4.
  int64_t grad_accumulation = 4;
  /// Clip the adapters' gradient norm to this value; 0 disables. Default 1.0.
  double max_grad_norm = 1.0;
  /// Seed of the data order, the adapter initialisation and dropout; default 0.
  uint64_t seed = 0;
  /// Maximum tokens of prompt + response; default 512.
  int64_t max_length = 512;
  /// Prompt tokens kept when a pair is too long (0, default, keeps the whole prompt).
  int64_t max_prompt_length = 0;
  /// Write a checkpoint every this many optimiser steps; 0 (default) writes none.
  int64_t checkpoint_every = 0;
  /// Step log (JSONL); empty (default) means train_log.jsonl in the output folder.
  std::filesystem::path log_path;
  /// Recompute each decoder layer's activations in the backward pass instead
  /// of storing them (CausalLM::set_gradient_checkpointing); default false.
  /// Lowers peak memory for about one more forward pass per step.
  bool gradient_checkpointing = false;

  /// The named settings: "simpo" (the SimPO authors' recommended loss
  /// settings, beta 2.0 and gamma/beta 0.5, with LoRA) or "notebook" (the
  /// released alignment notebook's TRL settings: CPOTrainer loss_type simpo,
  /// cpo_alpha 0, beta 0.1, LoRA r 18, alpha 32, dropout 0 on all seven
  /// projections, max length 256). Throws ConfigError for other names.
  static TrainerOptions preset(std::string_view name);
  /// Throws ConfigError naming the first invalid field.
  void validate() const;
};

/// A process's place in data-parallel training, and the collective that joins
/// the processes. Each optimiser step takes world_size x batch_size x
/// grad_accumulation pairs of the epoch's order, and rank r trains on the r-th
/// run of batch_size x grad_accumulation of them. Summing the ranks'
/// gradients gives the gradient of the mean loss over all of the step's pairs,
/// the same as one process with the combined batch.
struct DataParallel {
  /// This process's index in [0, world_size); default 0.
  int64_t rank = 0;
  /// Number of processes; default 1 (no data parallelism).
  int64_t world_size = 1;
  /// Collective that sums every tensor of the list in place across all ranks
  /// (an all-reduce with SUM, such as torch.distributed.all_reduce). All ranks
  /// call it at the same point with tensors of the same shapes, dtypes and
  /// order. Required when world_size > 1.
  std::function<void(std::vector<at::Tensor>&)> all_reduce_sum;

  /// Throws ConfigError naming the first invalid field.
  void validate() const;
};

/// Positions in an epoch's pair order that `rank` trains on in optimiser step
/// `step_in_epoch` (0-based), one list per forward pass. The list is empty
/// when the epoch's last step has no pairs left for this rank.
std::vector<std::vector<size_t>> rank_micro_batches(size_t pair_count, int64_t batch_size, int64_t grad_accumulation,
                                                     int64_t step_in_epoch, int64_t rank, int64_t world_size);

/// One optimiser step's record, as written to the JSONL log.
struct StepLog {
  int64_t step = 0;              ///< 1-based optimiser step
  double epoch = 0.0;            ///< fractional epoch at the end of the step
  double loss = 0.0;             ///< mean loss over the step's pairs (on all ranks)
  double chosen_reward = 0.0;    ///< mean reward of the chosen responses
  double rejected_reward = 0.0;  ///< mean reward of the rejected responses
  double reward_margin = 0.0;    ///< mean of chosen - rejected reward
  double reward_accuracy = 0.0;  ///< fraction of pairs with chosen reward > rejected reward
  double learning_rate = 0.0;    ///< learning rate used by this step
  double grad_norm = 0.0;        ///< gradient norm before clipping
  int64_t tokens = 0;            ///< real tokens processed in the step (on all ranks)
  double tokens_per_second = 0.0;
  double elapsed_seconds = 0.0;  ///< wall time since training (or this resumed run) began
};

/// Loss and rewards of one batch (see SimPOTrainer::compute_batch).
struct BatchResult {
  PreferenceLoss loss;            ///< loss.loss includes the SFT term
  at::Tensor chosen_logps;        ///< [B] mean (SimPO) or summed (DPO) log-probabilities
  at::Tensor rejected_logps;      ///< [B]
  int64_t tokens = 0;
};

/// Outcome of train().
struct TrainResult {
  std::filesystem::path adapter_dir;  ///< the output folder, a PEFT adapter folder
  std::filesystem::path log_path;
  int64_t steps = 0;                  ///< optimiser steps completed in total
  int64_t resumed_from_step = 0;      ///< 0 for a fresh run
  TruncationCounts truncation;
  std::vector<StepLog> log;           ///< every step's record, including those before a resume
};

class SimPOTrainer {
 public:
  using ProgressCallback = std::function<void(const StepLog& step, int64_t total_steps)>;

  /// Prepares training of `model`'s adapters (shared with the caller's
  /// CausalLM). Attaches fresh adapters from options.lora unless the model
  /// already has some. Throws ConfigError for invalid options.
  SimPOTrainer(CausalLM model, TrainerOptions options);
  ~SimPOTrainer();
  SimPOTrainer(SimPOTrainer&&) noexcept;
  SimPOTrainer& operator=(SimPOTrainer&&) noexcept;

  const TrainerOptions& options() const;
  CausalLM& model();
  /// Called after every optimiser step, from the training thread.
  void set_progress_callback(ProgressCallback callback);
  /// Makes train() one rank of data-parallel training. Every rank must run
  /// train() with the same model, options and pairs. Only rank 0 writes the
  /// step log, the checkpoints and the final adapter, and every rank reads
  /// the checkpoint when resuming. Throws ConfigError for invalid settings.
  /// NOTE: an exception on one rank leaves the others waiting in the
  /// collective until the launcher stops them (torchrun does) or the
  /// backend's timeout expires.
  void set_data_parallel(DataParallel data_parallel);

  /// Trains on `pairs` and writes the final adapter as a PEFT folder to `out`
  /// (created if needed), with the step log and, with checkpoint_every > 0,
  /// out/checkpoint (adapter, optimiser state and step; the data order and the
  /// dropout seed follow from the step). With `resume`, training continues from
  /// out/checkpoint and produces the same steps as an uninterrupted run. The
  /// checkpoint's fingerprint must match the tokenized pairs, the options
  /// (LoRA, loss, optimiser, schedule, batching and world size) and the base
  /// model's SHA-256, or ConfigError names what differs. Throws DataError
  /// when no pair is usable and IOError when files cannot be written.
  TrainResult train(const std::vector<PreferencePair>& pairs, const std::filesystem::path& out, bool resume = false);

  /// Tokenizes pairs with the options' limits.
  std::vector<TokenizedPair> tokenize(const std::vector<PreferencePair>& pairs, TruncationCounts* counts = nullptr) const;

  /// Loss, rewards and log-probabilities of one batch with autograd history,
  /// so loss.loss.backward() fills the adapters' gradients. No optimiser step.
  BatchResult compute_batch(const std::vector<const TokenizedPair*>& pairs);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace medfair::align
