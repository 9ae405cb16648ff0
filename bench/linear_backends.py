"""Linear projections: libtorch's oneDNN kernel against at::linear's BLAS call.

Without gradients, medfair runs CausalLM's float32 projections through
libtorch's oneDNN operator (mkldnn::_linear_pointwise) instead of at::linear.
This script times both on SmolLM2-135M's projection shapes, 30 layers with
separate weights so that every weight comes from memory as in a decoding step,
and on its 49152-token output head. It prints milliseconds per pass and the
ratio for several row counts: 1 and 16 rows as in decoding, 115 and 230 as in
the prompt pass.

    python bench/linear_backends.py [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

LAYERS = 30
HIDDEN = 576
FEED_FORWARD = 1536
VOCAB = 49152
# (out, in) of q, k, v, o, gate, up and down in one SmolLM2-135M layer.
LAYER_SHAPES = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]


def onednn(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], None)


def blas(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.linear(x, weight)


def best_time(run, repeats: int) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per case; the best is kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    layers = [[torch.randn(shape) for shape in LAYER_SHAPES] for _ in range(LAYERS)]
    head = torch.randn(VOCAB, HIDDEN)
    print(f"threads: {args.threads}; times are the best of {args.repeats} passes")
    print(f"{'rows':>5} {'case':<26} {'at::linear':>11} {'oneDNN':>9} {'ratio':>6}")
    for rows in (1, 16, 115, 230):
        inputs = {HIDDEN: torch.randn(rows, HIDDEN), FEED_FORWARD: torch.randn(rows, FEED_FORWARD)}

        def all_layers(kernel):
            return lambda: [kernel(inputs[w.shape[1]], w) for layer in layers for w in layer]

        cases = [("30 layers' projections", all_layers)]
        if rows <= 16:
            cases.append(("output head", lambda kernel: lambda: kernel(inputs[HIDDEN], head)))
        for name, make in cases:
            reference = best_time(make(blas), args.repeats)
            ours = best_time(make(onednn), args.repeats)
            print(f"{rows:>5} {name:<26} {reference * 1e3:9.1f}ms {ours * 1e3:7.1f}ms {reference / ours:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
