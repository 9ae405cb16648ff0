// Binds the align layer: preference losses, preference data, and SimPOTrainer.

#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <torch/csrc/utils/pybind.h>

#include "bindings.hpp"
#include "medfair/align/losses.hpp"
#include "medfair/align/preference_data.hpp"
#include "medfair/align/process_group.hpp"
#include "medfair/align/simpo_trainer.hpp"

namespace medfair::python {

namespace {

py::dict loss_dict(const align::PreferenceLoss& loss) {
  py::dict out;
  out["loss"] = loss.loss;
  out["losses"] = loss.losses;
  out["chosen_rewards"] = loss.chosen_rewards;
  out["rejected_rewards"] = loss.rejected_rewards;
  return out;
}

py::dict step_dict(const align::StepLog& s) {
  py::dict out;
  out["step"] = s.step;
  out["epoch"] = s.epoch;
  out["loss"] = s.loss;
  out["chosen_reward"] = s.chosen_reward;
  out["rejected_reward"] = s.rejected_reward;
  out["reward_margin"] = s.reward_margin;
  out["reward_accuracy"] = s.reward_accuracy;
  out["learning_rate"] = s.learning_rate;
  out["grad_norm"] = s.grad_norm;
  out["tokens"] = s.tokens;
  out["tokens_per_second"] = s.tokens_per_second;
  out["elapsed_seconds"] = s.elapsed_seconds;
  return out;
}

}  // namespace

void bind_align(py::module_& m) {
  m.def("simpo_loss", [](const at::Tensor& chosen, const at::Tensor& rejected, double beta, double gamma_beta_ratio,
                         double label_smoothing) {
        return loss_dict(align::simpo_loss(chosen, rejected, beta, gamma_beta_ratio, label_smoothing));
      },
      py::arg("chosen_logps"), py::arg("rejected_logps"), py::arg("beta"), py::arg("gamma_beta_ratio"),
      py::arg("label_smoothing") = 0.0,
      "SimPO loss on mean log-probabilities [B]: a dict of loss, losses, chosen_rewards, rejected_rewards.");
  m.def("dpo_loss",
        [](const at::Tensor& policy_chosen, const at::Tensor& policy_rejected, const at::Tensor& reference_chosen,
           const at::Tensor& reference_rejected, double beta, double label_smoothing) {
          return loss_dict(align::dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta,
                                           label_smoothing));
        },
        py::arg("policy_chosen_logps"), py::arg("policy_rejected_logps"), py::arg("reference_chosen_logps"),
        py::arg("reference_rejected_logps"), py::arg("beta"), py::arg("label_smoothing") = 0.0,
        "DPO (sigmoid) loss on summed log-probabilities [B]: a dict as simpo_loss returns.");

  py::class_<align::PreferencePair>(m, "PreferencePair", "A preference pair as text, after the chat template.")
      .def(py::init([](std::string prompt, std::string chosen, std::string rejected) {
             return align::PreferencePair{std::move(prompt), std::move(chosen), std::move(rejected), 0};
           }),
           py::arg("prompt"), py::arg("chosen"), py::arg("rejected"))
      .def_readonly("prompt", &align::PreferencePair::prompt)
      .def_readonly("chosen", &align::PreferencePair::chosen)
      .def_readonly("rejected", &align::PreferencePair::rejected)
      .def_readonly("line", &align::PreferencePair::line);

  m.def(
      "render_preference",
      [](const py::dict& record, const CausalLM& model) {
        const std::string text = py::module_::import("json").attr("dumps")(record).cast<std::string>();
        return align::render_preference(nlohmann::json::parse(text), model, "preference record");
      },
      py::arg("record"), py::arg("model"),
      "Turn a {prompt, chosen, rejected} record (strings or message lists) into a PreferencePair.");
  m.def("read_preference_file", &align::read_preference_file, py::arg("path"), py::arg("model"),
        "Read a preference JSONL file, rendering message lists with the model's chat template.");

  m.def("rank_micro_batches", &align::rank_micro_batches, py::arg("pair_count"), py::arg("batch_size"),
        py::arg("grad_accumulation"), py::arg("step_in_epoch"), py::arg("rank"), py::arg("world_size"),
        "Positions in an epoch's pair order that `rank` trains on in one optimiser step, one list per forward pass.");

  py::class_<align::TruncationCounts>(m, "TruncationCounts")
      .def_readonly("pairs", &align::TruncationCounts::pairs)
      .def_readonly("prompts_truncated", &align::TruncationCounts::prompts_truncated)
      .def_readonly("responses_truncated", &align::TruncationCounts::responses_truncated)
      .def_readonly("empty_responses", &align::TruncationCounts::empty_responses);

  py::class_<align::TokenizedPair>(m, "TokenizedPair")
      .def_readonly("chosen_ids", &align::TokenizedPair::chosen_ids)
      .def_readonly("rejected_ids", &align::TokenizedPair::rejected_ids)
      .def_readonly("chosen_prompt_length", &align::TokenizedPair::chosen_prompt_length)
      .def_readonly("rejected_prompt_length", &align::TokenizedPair::rejected_prompt_length)
      .def_readonly("prompt_truncated", &align::TokenizedPair::prompt_truncated)
      .def_readonly("response_truncated", &align::TokenizedPair::response_truncated)
      .def_readonly("empty_response", &align::TokenizedPair::empty_response);

  using align::TrainerOptions;
  py::class_<TrainerOptions>(m, "TrainerOptions", "SimPOTrainer settings; the defaults are the \"simpo\" preset.")
      .def(py::init<>())
      .def_static("preset", &TrainerOptions::preset, py::arg("name"))
      .def("validate", &TrainerOptions::validate)
      .def_readwrite("method", &TrainerOptions::method)
      .def_readwrite("beta", &TrainerOptions::beta)
      .def_readwrite("gamma_beta_ratio", &TrainerOptions::gamma_beta_ratio)
      .def_readwrite("label_smoothing", &TrainerOptions::label_smoothing)
      .def_readwrite("sft_weight", &TrainerOptions::sft_weight)
      .def_readwrite("lora", &TrainerOptions::lora)
      .def_readwrite("learning_rate", &TrainerOptions::learning_rate)
      .def_readwrite("weight_decay", &TrainerOptions::weight_decay)
      .def_readwrite("warmup_steps", &TrainerOptions::warmup_steps)
      .def_readwrite("warmup_ratio", &TrainerOptions::warmup_ratio)
      .def_readwrite("scheduler", &TrainerOptions::scheduler)
      .def_readwrite("epochs", &TrainerOptions::epochs)
      .def_readwrite("max_steps", &TrainerOptions::max_steps)
      .def_readwrite("batch_size", &TrainerOptions::batch_size)
      .def_readwrite("grad_accumulation", &TrainerOptions::grad_accumulation)
      .def_readwrite("max_grad_norm", &TrainerOptions::max_grad_norm)
      .def_readwrite("seed", &TrainerOptions::seed)
      .def_readwrite("max_length", &TrainerOptions::max_length)
      .def_readwrite("max_prompt_length", &TrainerOptions::max_prompt_length)
      .def_readwrite("checkpoint_every", &TrainerOptions::checkpoint_every)
      .def_readwrite("log_path", &TrainerOptions::log_path)
      .def_readwrite("gradient_checkpointing", &TrainerOptions::gradient_checkpointing);

  py::class_<align::TrainResult>(m, "TrainResult")
      .def_readonly("adapter_dir", &align::TrainResult::adapter_dir)
      .def_readonly("log_path", &align::TrainResult::log_path)
      .def_readonly("steps", &align::TrainResult::steps)
      .def_readonly("resumed_from_step", &align::TrainResult::resumed_from_step)
      .def_readonly("truncation", &align::TrainResult::truncation)
      .def_property_readonly("log", [](const align::TrainResult& r) {
        py::list rows;
        for (const align::StepLog& s : r.log) rows.append(step_dict(s));
        return rows;
      });

  py::class_<align::SimPOTrainer>(m, "SimPOTrainer",
                                  "Preference optimisation (SimPO or DPO) of a CausalLM's LoRA adapters.")
      .def(py::init([](std::shared_ptr<CausalLM> model, const TrainerOptions& options) {
             return align::SimPOTrainer(*model, options);
           }),
           py::arg("model"), py::arg("options") = TrainerOptions())
      .def_property_readonly("options", &align::SimPOTrainer::options)
      .def("tokenize",
           [](const align::SimPOTrainer& trainer, const std::vector<align::PreferencePair>& pairs) {
             return trainer.tokenize(pairs);
           },
           py::arg("pairs"))
      .def(
          "compute_batch",
          [](align::SimPOTrainer& trainer, const std::vector<align::PreferencePair>& pairs, bool backward) {
            std::vector<align::TokenizedPair> tokenized = trainer.tokenize(pairs);
            std::vector<const align::TokenizedPair*> pointers;
            for (const auto& pair : tokenized) pointers.push_back(&pair);
            align::BatchResult result;
            {
              py::gil_scoped_release release;
              for (at::Tensor& parameter : trainer.model().adapter_parameters()) parameter.mutable_grad().reset();
              result = trainer.compute_batch(pointers);
              if (backward) result.loss.loss.backward();
            }
            py::dict out = loss_dict(result.loss);
            out["chosen_logps"] = result.chosen_logps.detach();
            out["rejected_logps"] = result.rejected_logps.detach();
            out["tokens"] = result.tokens;
            return out;
          },
          py::arg("pairs"), py::arg("backward") = true,
          "Loss, rewards and log-probabilities of one batch; with backward, the adapters' .grad holds its "
          "gradients (earlier gradients are cleared first).")
      .def(
          "set_data_parallel",
          [](align::SimPOTrainer& trainer, int64_t rank, int64_t world_size, std::optional<py::function> all_reduce_sum) {
            align::DataParallel parallel;
            parallel.rank = rank;
            parallel.world_size = world_size;
            if (all_reduce_sum) {
              py::function callback = *all_reduce_sum;
              // train() releases the GIL, so the collective takes it back. The
              // tensors reach Python as the trainer's own, not copies.
              parallel.all_reduce_sum = [callback](std::vector<at::Tensor>& tensors) {
                py::gil_scoped_acquire acquire;
                callback(py::cast(tensors));
              };
            }
            trainer.set_data_parallel(std::move(parallel));
          },
          py::arg("rank"), py::arg("world_size"), py::arg("all_reduce_sum") = py::none(),
          "Make train() one rank of data-parallel training. all_reduce_sum(tensors: list) must sum each tensor "
          "in place across the ranks (torch.distributed.all_reduce); only rank 0 writes files.")
      .def(
          "set_process_group",
          [](align::SimPOTrainer& trainer, const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
            trainer.set_data_parallel(align::process_group_data_parallel(group));
          },
          py::arg("group"),
          "Make train() one rank of data-parallel training over a torch.distributed process group "
          "(e.g. torch.distributed.group.WORLD); the all-reduce runs in C++ without the GIL.")
      .def(
          "train",
          [](align::SimPOTrainer& trainer, const std::vector<align::PreferencePair>& pairs,
             const std::filesystem::path& out, bool resume, std::optional<py::function> progress) {
            if (progress) {
              py::function callback = *progress;
              trainer.set_progress_callback([callback](const align::StepLog& step, int64_t total) {
                py::gil_scoped_acquire acquire;
                callback(step_dict(step), total);
              });
            } else {
              trainer.set_progress_callback({});
            }
            py::gil_scoped_release release;
            return trainer.train(pairs, out, resume);
          },
          py::arg("pairs"), py::arg("out"), py::arg("resume") = false, py::arg("progress") = py::none(),
          "Train and write the adapter (a PEFT folder), the step log and checkpoints to `out`. "
          "progress(step: dict, total_steps: int) is called after every optimiser step.");
}

}  // namespace medfair::python
