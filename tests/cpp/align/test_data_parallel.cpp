// Data-parallel sharding of each optimiser step's pairs, and the checks of
// DataParallel. Equality of a two-process run with a one-process run is
// checked in tests/python/test_align_ddp.py.

#include <catch2/catch.hpp>
#include <set>
#include <vector>

#include "medfair/align/simpo_trainer.hpp"
#include "medfair/error.hpp"

using namespace medfair::align;

namespace {

using Batches = std::vector<std::vector<size_t>>;

// All positions of one step over every rank, in rank order.
std::vector<size_t> step_positions(size_t pairs, int64_t batch, int64_t accumulation, int64_t step, int64_t world) {
  std::vector<size_t> positions;
  for (int64_t rank = 0; rank < world; ++rank) {
    for (const auto& micro : rank_micro_batches(pairs, batch, accumulation, step, rank, world)) {
      positions.insert(positions.end(), micro.begin(), micro.end());
    }
  }
  return positions;
}

}  // namespace

TEST_CASE("rank_micro_batches: ranks take consecutive runs") {
  // 2 ranks, batch 2, accumulation 2: 8 pairs per step.
  CHECK(rank_micro_batches(20, 2, 2, 0, 0, 2) == Batches{{0, 1}, {2, 3}});
  CHECK(rank_micro_batches(20, 2, 2, 0, 1, 2) == Batches{{4, 5}, {6, 7}});
  CHECK(rank_micro_batches(20, 2, 2, 1, 0, 2) == Batches{{8, 9}, {10, 11}});
  CHECK(rank_micro_batches(20, 2, 2, 1, 1, 2) == Batches{{12, 13}, {14, 15}});
}

TEST_CASE("rank_micro_batches: short last step") {
  // Step 2 has pairs 16 to 19: rank 0 takes all four and rank 1 none.
  CHECK(rank_micro_batches(20, 2, 2, 2, 0, 2) == Batches{{16, 17}, {18, 19}});
  CHECK(rank_micro_batches(20, 2, 2, 2, 1, 2).empty());
  // 19 pairs: rank 0's second pass has one pair.
  CHECK(rank_micro_batches(19, 2, 2, 2, 0, 2) == Batches{{16, 17}, {18}});
  // 21 pairs: step 2 gives rank 1 the last pair.
  CHECK(rank_micro_batches(21, 2, 2, 2, 1, 2) == Batches{{20}});
}

TEST_CASE("rank_micro_batches: union equals one process") {
  // One process with batch 3 and accumulation 4 takes the same 12 pairs per
  // step as 2 ranks with accumulation 2 or 4 ranks with accumulation 1.
  for (size_t pairs : {12u, 25u, 37u}) {
    for (int64_t step = 0; step * 12 < static_cast<int64_t>(pairs); ++step) {
      const std::vector<size_t> single = step_positions(pairs, 3, 4, step, 1);
      CHECK(step_positions(pairs, 3, 2, step, 2) == single);
      CHECK(step_positions(pairs, 3, 1, step, 4) == single);
      CHECK(std::set<size_t>(single.begin(), single.end()).size() == single.size());
    }
  }
}

TEST_CASE("DataParallel: invalid settings") {
  DataParallel parallel;
  parallel.world_size = 2;
  CHECK_THROWS_WITH(parallel.validate(), Catch::Contains("all_reduce_sum is empty"));
  parallel.all_reduce_sum = [](std::vector<at::Tensor>&) {};
  parallel.rank = 2;
  CHECK_THROWS_WITH(parallel.validate(), Catch::Contains("DataParallel.rank is 2; use a value in [0, 2)"));
  parallel.rank = 1;
  CHECK_NOTHROW(parallel.validate());
  parallel.world_size = 0;
  CHECK_THROWS_AS(parallel.validate(), medfair::ConfigError);
}
