// Activation checkpointing for decoder layers. libtorch's C++ API has no
// torch.utils.checkpoint, so a custom autograd function does the same work.
// Its forward runs the layer without recording a graph and saves only the
// layer's input. Its backward runs the layer again with gradients on and
// backpropagates through that second run.

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/custom_class.h>

#include <mutex>
#include <vector>

#include "causal_lm_impl.hpp"

namespace medfair::detail {

namespace {

// State the backward pass needs to run a layer again. The model outlives the
// graph because the graph belongs to a forward call on it.
struct LayerReplay : torch::CustomClassHolder {
  const CausalLM::Impl* model = nullptr;
  int64_t layer_index = 0;
  LayerInputs shared;
  at::Tensor rng_state;  // the default CPU generator's state before the first run, for adapter dropout
};

at::Tensor cpu_generator_state() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_cpu_generator_state(const at::Tensor& state) {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

struct CheckpointedLayer : torch::autograd::Function<CheckpointedLayer> {
  // `parameters` are the layer's trainable adapter matrices: they are inputs
  // here so that autograd routes their gradients through this function.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                            at::TensorList parameters, const c10::intrusive_ptr<LayerReplay>& replay) {
    (void)parameters;
    ctx->save_for_backward({input});
    ctx->saved_data["replay"] = at::IValue::make_capsule(replay);
    // Autograd runs this under a no-grad guard, so no activations are kept.
    return decoder_layer(*replay->model, replay->layer_index, input, replay->shared, nullptr);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto replay = c10::static_intrusive_pointer_cast<LayerReplay>(ctx->saved_data["replay"].toCapsule());
    at::Tensor input = ctx->get_saved_variables()[0].detach().requires_grad_(true);

    // Run the layer again from the generator state of the first run, so that
    // dropout draws the same mask, then put back the state the caller had.
    at::Tensor caller_state = cpu_generator_state();
    set_cpu_generator_state(replay->rng_state);
    at::Tensor output;
    {
      at::AutoGradMode grad_on(true);
      output = decoder_layer(*replay->model, replay->layer_index, input, replay->shared, nullptr);
    }
    set_cpu_generator_state(caller_state);

    std::vector<at::Tensor> targets{input};
    const std::vector<at::Tensor> parameters =
        layer_parameters(*replay->model, replay->layer_index, replay->shared.mode);
    targets.insert(targets.end(), parameters.begin(), parameters.end());
    torch::autograd::variable_list grads =
        torch::autograd::grad({output}, targets, {grad_outputs[0]}, /*retain_graph=*/false,
                              /*create_graph=*/false, /*allow_unused=*/true);
    grads.push_back(at::Tensor());  // for `replay`, which is not a tensor
    return grads;
  }

  // The adapter matrices of one layer that require gradients, in a fixed order.
  static std::vector<at::Tensor> layer_parameters(const CausalLM::Impl& model, int64_t layer_index,
                                                  const AdapterMode& mode) {
    std::vector<at::Tensor> parameters;
    if (!mode.enabled) return parameters;
    const DecoderLayer& layer = model.weights.layers[layer_index];
    for (const Linear* projection : {&layer.q_proj, &layer.k_proj, &layer.v_proj, &layer.o_proj, &layer.gate_proj,
                                     &layer.up_proj, &layer.down_proj}) {
      if (!projection->lora) continue;
      for (const at::Tensor& matrix : {projection->lora->a, projection->lora->b}) {
        if (matrix.requires_grad()) parameters.push_back(matrix);
      }
    }
    return parameters;
  }
};

}  // namespace

at::Tensor checkpointed_layer(const CausalLM::Impl& model, int64_t layer_index, const at::Tensor& input,
                              const LayerInputs& shared) {
  auto replay = c10::make_intrusive<LayerReplay>();
  replay->model = &model;
  replay->layer_index = layer_index;
  replay->shared = shared;
  replay->rng_state = cpu_generator_state();
  const std::vector<at::Tensor> parameters = CheckpointedLayer::layer_parameters(model, layer_index, shared.mode);
  return CheckpointedLayer::apply(input, at::TensorList(parameters), replay);
}

}  // namespace medfair::detail
