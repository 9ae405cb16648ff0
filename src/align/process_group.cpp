// DataParallel over a c10d process group.

#include "medfair/align/process_group.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "medfair/error.hpp"

namespace medfair::align {

DataParallel process_group_data_parallel(c10::intrusive_ptr<c10d::ProcessGroup> group) {
  if (!group) throw ConfigError("process_group_data_parallel: the process group is null; pass an initialised group");
  DataParallel parallel;
  parallel.rank = group->getRank();
  parallel.world_size = group->getSize();
  // One allreduce per tensor, because c10d reads a list passed to a single
  // allreduce as one tensor per local device, all of the same shape.
  parallel.all_reduce_sum = [group](std::vector<at::Tensor>& tensors) {
    for (at::Tensor& tensor : tensors) {
      std::vector<at::Tensor> single = {tensor};
      c10d::AllreduceOptions options;
      options.reduceOp = c10d::ReduceOp::SUM;
      group->allreduce(single, options)->wait();
    }
  };
  return parallel;
}

}  // namespace medfair::align
