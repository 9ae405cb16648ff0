#pragma once
// Data-parallel training over a torch.distributed (c10d) process group, for
// C++ callers that build their own group and for the Python binding, which
// receives torch.distributed's group object.

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "medfair/align/simpo_trainer.hpp"

namespace medfair::align {

/// DataParallel settings for one member of `group`: its rank and size, and a
/// collective that runs the group's allreduce (SUM) on each tensor in turn
/// and waits for it. The group must outlive training. Throws ConfigError when
/// `group` is null.
DataParallel process_group_data_parallel(c10::intrusive_ptr<c10d::ProcessGroup> group);

}  // namespace medfair::align
