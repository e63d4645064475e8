"""PyTorch eager baseline for the seed encoder: the same random weights and the same
computation as the exported encoder (encoder, quant_conv, matmul distances, argmin),
float32, from tests/torch_reference.py. Prints `eager_s_per_frame <min seconds>`.

usage: seed_eager.py WEIGHTS MANIFEST RUNS THREADS
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import torch_reference as ref  # noqa: E402

weights, manifest, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
ref.setup(weights, manifest, torch.float32)
x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
with torch.no_grad():
    ref.encode(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        ref.encode(x)
        times.append(time.perf_counter() - t)
print(f"eager_s_per_frame {min(times):.4f}")
